"""SGD with (Nesterov) momentum (drop-in for torch.optim 2.13 sgd.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import Bucket, OptimizerBase, _saved, check

__all__ = ["SGD"]


class SGD(OptimizerBase):
    r"""Stochastic gradient descent with momentum / Nesterov momentum
    (Sutskever et al. 2013, eqs. 1-4, in PyTorch's "velocity absorbs the lr"
    form); semantics of torch.optim 2.13 ``sgd.py``:

    ```text
    g_t = ±∇f(θ_{t-1})  (+ λ θ_{t-1}   if L2 weight decay)
    θ   ← θ (1 − γλ)                  if decoupled_weight_decay
    b_1 = g_1                          (clone, no dampening on the first step)
    b_t = μ b_{t-1} + (1 − τ) g_t      (t > 1)
    d_t = g_t + μ b_t   if nesterov,  b_t if μ ≠ 0,  g_t otherwise
    θ_t = θ − γ d_t
    ```

    Sparse gradients are supported (per-tensor ops), complex parameters are
    updated natively (every op is linear).  Unlike torch's foreach path with
    ``nesterov=True``, ``p.grad`` is never modified in place.
    """

    _flag_defaults = {
        "nesterov": False,
        "maximize": False,
        "foreach": None,
        "differentiable": False,
        "fused": False,
        "decoupled_weight_decay": False,
    }
    _sparse_error = None
    _has_step = False
    _view_complex = False
    _foreach_differentiable = True

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        # torch writes these as ``x < 0.0`` (so NaN passes), keep it that way
        check(not lr < 0.0, f"Invalid learning rate: {lr}")
        check(not momentum < 0.0, f"Invalid momentum value: {momentum}")
        check(not weight_decay < 0.0, f"Invalid weight_decay value: {weight_decay}")
        check(
            not (nesterov and (momentum <= 0 or dampening != 0)),
            "Nesterov momentum requires a momentum and zero dampening",
        )
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
            "state_dtype": state_dtype,
        }
        super().__init__(params, defaults)

    def _needs_state(self, group: dict[str, Any]) -> bool:
        return group["momentum"] != 0

    def _init_state(self, group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        """The momentum buffer is created from the first gradient in `_update`."""

    def _update(self, group: dict[str, Any], b: Bucket, ops) -> None:
        momentum, dampening = group["momentum"], group["dampening"]
        direction = b.grads
        if momentum != 0:
            bufs = [s.get("momentum_buffer") for s in b.states]
            old = [i for i, buf in enumerate(bufs) if buf is not None]
            if old:
                old_bufs = [bufs[i] for i in old]
                ops.mul_(old_bufs, momentum)
                ops.add_(old_bufs, [b.grads[i] for i in old], alpha=1 - dampening)
            for i, buf in enumerate(bufs):
                if buf is None:
                    # b₁ = g₁. torch detaches it (``grad.detach().clone()``), which under
                    # differentiable drops ∂b₁/∂θ₀ and ∂b₁/∂λ when L2 decay puts θ in g₁; the
                    # copy stays on the graph here (same values, exact derivatives)
                    first = b.grads[i] if b.differentiable else b.grads[i].detach()
                    bufs[i] = b.states[i]["momentum_buffer"] = first.clone()
            direction = ops.add(b.grads, bufs, alpha=momentum) if group["nesterov"] else bufs
        if isinstance(b.lr, Tensor):  # requires grad (differentiable): torch's
            # θ.addcmul_(d, γ, value=-1), d copied as ``_saved`` says (torch does not copy)
            for param, d in zip(b.params, direction):
                param.addcmul_(_saved(d, b.lr), b.lr, value=-1)
        else:
            ops.add_(b.params, direction, alpha=-b.lr)
