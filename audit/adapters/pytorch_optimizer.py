"""pytorch-optimizer targets (``pytorch_optimizer.SGDW`` …): torch-style classes.

pytorch-optimizer 4.1 re-exports torch.optim's ``Adam``, ``AdamW``, ``NAdam``, ``SGD`` and
``RMSprop`` (audited as torch's) and has its own ``SGDW`` (``weight_decouple=True`` by
default: θ ← θ(1 − γλ), then torch's momentum) and ``AdaDelta``. Keywords are torch's;
the expected variant per class (``weight_decouple`` is read as torch's
``decoupled_weight_decay``: ``SGDW(weight_decouple=False)`` is expected to follow ``sgd``):
"""

from __future__ import annotations

from .torch import TorchAdapter

__all__ = ["pytorch_optimizer_adapter", "EXPECTED"]

EXPECTED = {"SGDW": "sgdw", "AdaDelta": "adadelta"}
FIXED = {"SGDW": {"weight_decouple": True}}
__doc__ += "\n".join(f"``{k}`` → ``{v}``" for k, v in EXPECTED.items())


RENAME = {"decoupled_weight_decay": ("weight_decouple", None)}


def _expected(name: str, args) -> str | None:
    if name == "SGDW" and args.get("weight_decouple") is False:
        return "sgd"
    return EXPECTED.get(name)


def pytorch_optimizer_adapter(target, name, extra=None) -> TorchAdapter:
    extra = dict(extra or {})
    return TorchAdapter(target, name, framework="pytorch-optimizer", rename=RENAME,
                        fixed=FIXED.get(name), expected_rule=_expected(name, extra), extra=extra)
