"""Loading the audited target from an import path and choosing its adapter.

``TARGET`` is ``package.module.Name`` (the longest importable module prefix is imported and
the rest read as attributes) or ``package.module:Name``. The adapter is chosen by what the
object is: a ``torch.optim.Optimizer`` subclass (or a callable returning one) is driven as
a torch-style target; an object from ``optax`` is an optax transformation; one from
``keras`` a Keras 3 optimizer. Classes of the libraries in `TORCH_STYLE` (timm,
pytorch-optimizer, bitsandbytes, torchao, DeepSpeed, heavyball) are torch-style with their
library's keyword translations, state keys and expected variants (one module per library in
``audit/adapters``).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from .adapters.base import Adapter, check_keywords

__all__ = ["TargetError", "Target", "load_target", "import_object", "TORCH_STYLE"]

#: top-level package → (adapter module in ``audit/adapters``, its factory); the one place a
#: torch-style library is registered
TORCH_STYLE: dict[str, tuple[str, str]] = {
    "timm": ("timm", "timm_adapter"),
    "pytorch_optimizer": ("pytorch_optimizer", "pytorch_optimizer_adapter"),
    "bitsandbytes": ("bitsandbytes", "bitsandbytes_adapter"),
    "torchao": ("torchao", "torchao_adapter"),
    "deepspeed": ("deepspeed", "deepspeed_adapter"),
    "heavyball": ("heavyball", "heavyball_adapter"),
}


class TargetError(Exception):
    """The target cannot be imported or is not an optimizer (a usage error, exit 2)."""


@dataclass
class Target:
    path: str
    obj: Any
    name: str
    adapter: Adapter

    @property
    def class_names(self) -> list[str]:
        names = [self.name]
        if isinstance(self.obj, type):
            names += [c.__name__ for c in self.obj.__mro__[1:]]
        return names


def import_object(path: str) -> Any:
    """Import ``a.b.C`` or ``a.b:C``; `TargetError` with the reason otherwise."""
    path = path.strip()
    if not path or path.startswith(".") or path.endswith((".", ":")):
        raise TargetError(f"TARGET must be an import path like torch.optim.AdamW, got {path!r}")
    if ":" in path:
        module_name, _, attrs = path.partition(":")
        candidates = [(module_name, attrs.split("."))]
    else:
        parts = path.split(".")
        candidates = [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
        if len(parts) == 1:
            raise TargetError(f"TARGET must name an object inside a module "
                              f"(module.Name), got {path!r}")
    if path.split(".")[0].split(":")[0] == "keras":
        import os  # Keras 3 picks its backend at import: torch, the one optproof has
        os.environ.setdefault("KERAS_BACKEND", "torch")
    if path.split(".")[0].split(":")[0] == "timm":
        from .adapters.timm import import_optim
        try:  # timm.optim without timm's vision imports where those fail
            import_optim()
        except ModuleNotFoundError as error:
            raise TargetError(f"cannot import {path!r}: {error}") from None
    first_error = None
    for module_name, attrs in candidates:
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name) or error.name == module_name:
                first_error = first_error or error
                continue  # a shorter prefix may be the module
            raise TargetError(f"importing {module_name!r} failed: {error}") from None
        except Exception as error:  # noqa: BLE001 - the target's own import error
            raise TargetError(f"importing {module_name!r} failed: "
                              f"{type(error).__name__}: {error}") from None
        for i, attr in enumerate(attrs):
            if not hasattr(obj, attr):
                where = ".".join([module_name, *attrs[:i]])
                names = [n for n in dir(obj) if not n.startswith("_")]
                close = difflib.get_close_matches(attr, names, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise TargetError(f"{where!r} has no attribute {attr!r}{hint}")
            obj = getattr(obj, attr)
        return obj
    raise TargetError(f"cannot import {path!r}: {first_error}")


def load_target(path: str, *, extra: dict[str, Any] | None = None) -> Target:
    """The target at ``path`` with the adapter that drives it."""
    obj = import_object(path)
    name = getattr(obj, "__name__", None) or path.replace(":", ".").rsplit(".", 1)[-1]
    module = getattr(obj, "__module__", "") or ""
    root = module.split(".")[0]
    given = path.replace(":", ".").split(".")[0]
    if given in ("optax", "keras", *TORCH_STYLE):
        root = given  # aliases and partials (optax.nadam) report other modules
    try:
        if root == "optax":
            from .adapters.optax import OptaxAdapter
            return Target(path, obj, name, OptaxAdapter(obj, name, extra))
        if root == "keras":
            from .adapters.keras import KerasAdapter
            return Target(path, obj, name, KerasAdapter(obj, name, extra))
        if extra:
            check_keywords(obj, extra, path)
    except ValueError as error:
        raise TargetError(str(error)) from None
    if not callable(obj):
        raise TargetError(f"{path!r} is not an optimizer class or factory (its type is "
                          f"{type(obj).__name__})")
    import torch
    if isinstance(obj, type) and not issubclass(obj, torch.optim.Optimizer):
        raise TargetError(f"{path!r} is a class but not a torch.optim.Optimizer subclass "
                          "(nor an optax transformation or Keras optimizer)")
    if root in TORCH_STYLE:
        module, factory = TORCH_STYLE[root]
        make = getattr(importlib.import_module(f"{__package__}.adapters.{module}"), factory)
        return Target(path, obj, name, make(obj, name, extra))
    from .adapters.torch import TorchAdapter
    return Target(path, obj, name, TorchAdapter(obj, name, extra=extra))
