"""Adadelta (drop-in for torch.optim 2.13 adadelta.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import Bucket, OptimizerBase, check, check_lr

__all__ = ["Adadelta"]


class Adadelta(OptimizerBase):
    r"""Adadelta (Zeiler 2012, Alg. 1) with torch's extra learning rate γ;
    semantics of torch.optim 2.13 ``adadelta.py``:

    ```text
    g_t    = ±∇f(θ_{t-1})  (+ λ θ_{t-1}   if L2 weight decay)
    θ      ← θ (1 − γλ)                      if decoupled_weight_decay
    E[g²]_t  = ρ E[g²]_{t-1} + (1 − ρ) g_t²
    Δ_t      = sqrt(E[Δ²]_{t-1} + ε) / sqrt(E[g²]_t + ε) · g_t
    E[Δ²]_t  = ρ E[Δ²]_{t-1} + (1 − ρ) Δ_t²
    θ_t      = θ − γ Δ_t
    ```

    State: ``step``, ``square_avg`` (E[g²]), ``acc_delta`` (E[Δ²]).
    """

    _flag_defaults = {
        "foreach": None,
        "maximize": False,
        "differentiable": False,
        "capturable": False,
        "decoupled_weight_decay": False,
        "fused": None,
    }
    _sparse_error = "Adadelta does not support sparse gradients"
    _l2_complex_first = True
    _reads_step = False
    _tensor_state_keys = ("square_avg", "acc_delta")

    def __init__(
        self,
        params,
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
        decoupled_weight_decay: bool = False,
        fused: bool | None = None,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        check_lr(lr)
        check(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}")
        check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "capturable": capturable,
            "foreach": foreach,
            "differentiable": differentiable,
            "decoupled_weight_decay": decoupled_weight_decay,
            "fused": fused,
            "state_dtype": state_dtype,
        }
        super().__init__(params, defaults)

    def _init_state(self, group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        if "step" not in state:
            state["step"] = self._new_step(group, p)
        for key in self._tensor_state_keys:
            if key not in state:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, group: dict[str, Any], b: Bucket, ops) -> None:
        rho, eps = group["rho"], group["eps"]
        square_avgs, acc_deltas = b.state["square_avg"], b.state["acc_delta"]

        ops.mul_(square_avgs, rho)
        ops.addcmul_(square_avgs, b.grads, b.grads, 1 - rho)
        std = ops.add_scalar(square_avgs, eps)
        ops.sqrt_(std)
        deltas = ops.add_scalar(acc_deltas, eps)
        ops.sqrt_(deltas)
        if b.differentiable:  # sqrt_ saved its output: torch's ``delta = delta.clone()``
            deltas = [d.clone() for d in deltas]
        ops.div_(deltas, std)
        ops.mul_(deltas, b.grads)
        ops.mul_(acc_deltas, rho)
        ops.addcmul_(acc_deltas, deltas, deltas, 1 - rho)
        ops.add_(b.params, deltas, alpha=-b.lr)
