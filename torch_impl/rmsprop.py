"""RMSprop (drop-in for torch.optim 2.13 rmsprop.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import Bucket, OptimizerBase, check, check_lr

__all__ = ["RMSprop"]


class RMSprop(OptimizerBase):
    r"""RMSprop (Hinton, Srivastava & Swersky, Coursera lecture 6e, 2012), the
    centered variant of Graves 2013 (eqs. 38-41), heavy-ball momentum on the
    normalised step; semantics of torch.optim 2.13 ``rmsprop.py``:

    ```text
    g_t  = ±∇f(θ_{t-1})  (+ λ θ_{t-1}   if L2 weight decay)
    θ    ← θ (1 − γλ)                      if decoupled_weight_decay
    v_t  = α v_{t-1} + (1 − α) g_t²
    ḡ_t  = lerp(ḡ_{t-1}, g_t, 1 − α)        if centered
    d_t  = sqrt(v_t − ḡ_t²) + ε   if centered,  sqrt(v_t) + ε otherwise
    b_t  = μ b_{t-1} + g_t / d_t;  θ_t = θ − γ b_t      if μ > 0
    θ_t  = θ − γ g_t / d_t                               otherwise
    ```

    (ε is added *after* the square root, as in torch.)  State: ``step``,
    ``square_avg``, ``momentum_buffer`` (μ > 0), ``grad_avg`` (centered).
    """

    _flag_defaults = {
        "momentum": 0,
        "centered": False,
        "foreach": None,
        "maximize": False,
        "differentiable": False,
        "capturable": False,
        "decoupled_weight_decay": False,
        "fused": None,
    }
    _sparse_error = "RMSprop does not support sparse gradients"
    _l2_complex_first = True
    _reads_step = False

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        decoupled_weight_decay: bool = False,
        fused: bool | None = None,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        check_lr(lr)
        check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        check(0.0 <= momentum, f"Invalid momentum value: {momentum}")
        check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        check(0.0 <= alpha, f"Invalid alpha value: {alpha}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "decoupled_weight_decay": decoupled_weight_decay,
            "fused": fused,
            "state_dtype": state_dtype,
        }
        super().__init__(params, defaults)

    def _tensor_state_keys_for(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("square_avg",)
        if group["momentum"] > 0:
            keys += ("momentum_buffer",)
        if group["centered"]:
            keys += ("grad_avg",)
        return keys

    def _init_state(self, group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        if "step" not in state:
            state["step"] = self._new_step(group, p)
        for key in self._tensor_state_keys_for(group):
            if key not in state:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, group: dict[str, Any], b: Bucket, ops) -> None:
        alpha, eps, momentum = group["alpha"], group["eps"], group["momentum"]
        square_avgs = b.state["square_avg"]

        ops.mul_(square_avgs, alpha)
        ops.addcmul_(square_avgs, b.grads, b.grads, 1 - alpha)
        if group["centered"]:
            grad_avgs = b.state["grad_avg"]
            ops.ema_(grad_avgs, b.grads, alpha)
            # under differentiable the product saves ḡ, which the next step updates in place:
            # a copy (torch 2.13 does not copy, and its backward then fails)
            saved = [a.clone() for a in grad_avgs] if b.differentiable else grad_avgs
            avg = ops.addcmul(square_avgs, saved, saved, -1)
            ops.sqrt_(avg)
        else:
            avg = ops.sqrt(square_avgs)
        avg = ops.add_scalar_unless_saved(avg, eps, b.differentiable)

        if momentum > 0:
            bufs = b.state["momentum_buffer"]
            ops.mul_(bufs, momentum)
            ops.addcdiv_(bufs, b.grads, avg)
            ops.add_(b.params, bufs, alpha=-b.lr)
        else:
            ops.addcdiv_(b.params, b.grads, avg, -b.lr)
