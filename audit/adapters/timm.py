"""timm targets (``timm.optim.SGDW``, ``timm.optim.RMSpropTF`` …): torch-style classes.

timm 1.0 imports torchvision at package import; where no torchvision matching the
installed torch exists, ``import timm`` fails and the audit reports it (exit 2). The
expected variants (timm ``optim/*.py`` @ 1.0.31):

| timm | expected variant | convention |
|---|---|---|
| SGDW | sgdw | θ ← θ(1 − γλ), then torch's momentum |
| RMSpropTF | rmsprop:keras-centered | ε inside the root, γ inside the momentum buffer |
| AdamWLegacy | adamw |  |
| NAdamLegacy | nadam |  |
"""

from __future__ import annotations

from .torch import TorchAdapter

__all__ = ["timm_adapter", "EXPECTED"]

EXPECTED = {"SGDW": "sgdw", "RMSpropTF": "rmsprop:keras-centered", "AdamWLegacy": "adamw",
            "NAdamLegacy": "nadam"}


def timm_adapter(target, name, extra=None) -> TorchAdapter:
    return TorchAdapter(target, name, framework="timm", expected_rule=EXPECTED.get(name),
                        extra=extra)
