"""timm targets (``timm.optim.SGDW``, ``timm.optim.RMSpropTF`` …): torch-style classes.

timm imports torchvision at package import (``timm/__init__.py`` → ``timm.layers``), and
``timm.optim``'s own ``__init__`` reaches it through ``_param_groups`` → ``timm.models``.
Where no torchvision matching the installed torch exists (torch 2.13+cpu: torchvision 0.28
fails with ``operator torchvision::nms does not exist``), `import_optim` loads
``timm.optim`` without those imports: ``timm`` and ``timm.optim`` become bare packages over
timm's own directories, and each name ``timm/optim/__init__.py`` exports (read from its
``from .module import Name`` lines) is imported from its module on first access. The
optimizer modules themselves import only torch. The expected variants (timm ``optim/*.py``
@ 1.0.31):

```text
============  =======================  ================================================
timm          expected variant         convention
============  =======================  ================================================
SGDW          sgdw                     θ ← θ(1 − γλ), then torch's momentum
RMSpropTF     rmsprop:keras-centered   ε inside the root, γ inside the momentum buffer,
                                       v₀ = 1 (``square_avg = ones_like(p)``);
                                       ``lr_in_momentum=False``: rmsprop:eps-inside
AdamWLegacy   adamw
NAdamLegacy   nadam
NAdamW        nadamw:timm              m̃ = β₁mₜ + (1 − β₁)g, both over 1 − β₁ᵗ
============  =======================  ================================================
```
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

from .torch import TorchAdapter

__all__ = ["timm_adapter", "import_optim", "EXPECTED"]

EXPECTED = {"SGDW": "sgdw", "RMSpropTF": "rmsprop:keras-centered", "AdamWLegacy": "adamw",
            "NAdamLegacy": "nadam", "NAdamW": "nadamw:timm"}
#: what a class computes that its keywords do not say: RMSpropTF starts v at 1
IMPLIED_HYPER = {"RMSpropTF": {"initial_scale": 1.0}}


def _expected(name: str, args) -> str | None:
    if name == "RMSpropTF" and args.get("lr_in_momentum") is False:
        return "rmsprop:eps-inside"
    return EXPECTED.get(name)


def timm_adapter(target, name, extra=None) -> TorchAdapter:
    extra = dict(extra or {})
    return TorchAdapter(target, name, framework="timm", expected_rule=_expected(name, extra),
                        extra=extra, implied_hyper=IMPLIED_HYPER.get(name))


def _exports(init: Path) -> dict[str, str]:
    """``{name: module}`` for each ``from .module import Name`` (and ``from torch.optim
    import Name``) at the top of a package's ``__init__.py``."""
    out: dict[str, str] = {}
    for node in ast.walk(ast.parse(init.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = f"timm.optim.{node.module}" if node.level == 1 else node.module
            if node.level in (0, 1):
                out.update({a.asname or a.name: module for a in node.names})
    return out


def _bare_package(name: str, path: Path) -> types.ModuleType:
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(path)]
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path / "__init__.py")  # where inspect (torch, Keras) looks for it
    sys.modules[name] = module
    return module


def import_optim() -> types.ModuleType:
    """``timm.optim``: the package itself where it imports, else the bare loader above.

    Raises ``ModuleNotFoundError`` when timm is not installed.
    """
    try:
        return importlib.import_module("timm.optim")
    except ModuleNotFoundError as error:
        if error.name == "timm":
            raise
    except Exception:  # noqa: BLE001 - torchvision (or another vision import) fails
        pass
    for name in [m for m in sys.modules if m == "timm" or m.startswith("timm.")]:
        del sys.modules[name]  # half-initialised by the failed import
    found = importlib.util.find_spec("timm")  # locates the package without running it
    root = Path(next(iter(found.submodule_search_locations)))
    _bare_package("timm", root)
    optim = _bare_package("timm.optim", root / "optim")
    exports = _exports(root / "optim" / "__init__.py")

    def __getattr__(attr: str):
        if attr not in exports:
            raise AttributeError(f"module 'timm.optim' has no attribute {attr!r}")
        value = getattr(importlib.import_module(exports[attr]), attr)
        setattr(optim, attr, value)
        return value

    optim.__getattr__ = __getattr__
    optim.__dir__ = lambda: sorted(exports)
    optim.__doc__ = "timm.optim loaded without timm's vision imports (optproof.audit)"
    sys.modules["timm"].optim = optim
    return optim
