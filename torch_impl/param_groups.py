"""Parameter-group helper: weight decay off for biases and normalisation layers."""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["DEFAULT_NO_DECAY", "param_groups_no_decay"]

DEFAULT_NO_DECAY: tuple[type[nn.Module], ...] = tuple(
    cls
    for cls in (
        nn.LayerNorm,
        nn.modules.batchnorm._NormBase,  # BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm*
        nn.GroupNorm,
        getattr(nn, "RMSNorm", None),  # torch >= 2.4
        nn.LocalResponseNorm,
    )
    if cls is not None
)


def param_groups_no_decay(
    model: nn.Module,
    weight_decay: float,
    *,
    no_decay: tuple[type[nn.Module], ...] = DEFAULT_NO_DECAY,
) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters into a decayed and a non-decayed group.

    No weight decay for:

    * every parameter with ``ndim <= 1`` (biases, norm scales/shifts, scalars);
    * every parameter owned by a module that is an instance of ``no_decay``
      (default: LayerNorm, ``BatchNorm*``/``InstanceNorm*``, GroupNorm, RMSNorm,
      LocalResponseNorm).  Add ``nn.Embedding`` to also exempt embedding tables.

    Shared (tied) parameters appear once; a parameter exempted anywhere is
    exempted everywhere.  Empty groups are dropped.

    Example:

    ```python
    from optproof.torch_impl import AdamW, param_groups_no_decay
    from optproof.torch_impl.param_groups import DEFAULT_NO_DECAY

    groups = param_groups_no_decay(model, weight_decay=0.1)
    opt = AdamW(groups, lr=3e-4)
    # also exempt embeddings:
    groups = param_groups_no_decay(
        model, 0.1, no_decay=DEFAULT_NO_DECAY + (torch.nn.Embedding,))
    ```
    """
    exempt: set[int] = set()
    ordered: dict[int, nn.Parameter] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if not p.requires_grad:
                continue
            ordered.setdefault(id(p), p)
            if p.ndim <= 1 or isinstance(module, no_decay):
                exempt.add(id(p))
    decay = [p for i, p in ordered.items() if i not in exempt]
    keep = [p for i, p in ordered.items() if i in exempt]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
