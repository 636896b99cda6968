"""Adagrad (drop-in for torch.optim 2.13 adagrad.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import Bucket, OptimizerBase, check, check_lr

__all__ = ["Adagrad"]


class Adagrad(OptimizerBase):
    r"""Adagrad (Duchi, Hazan & Singer 2011, diagonal version, Fig. 1) with
    torch's learning-rate decay; semantics of torch.optim 2.13 ``adagrad.py``:

    ```text
    g_t   = ±∇f(θ_{t-1})  (+ λ θ_{t-1}   if L2 weight decay)
    clr_t = γ / (1 + (t − 1) η)                (η = lr_decay, Python float64)
    θ     ← θ (1 − clr_t λ)                    if decoupled_weight_decay
    s_t   = s_{t-1} + g_t²                      (s_0 = initial_accumulator_value)
    θ_t   = θ − clr_t · g_t / (sqrt(s_t) + ε)
    ```

    Decoupled weight decay uses the *decayed* rate ``clr_t`` (not ``γ``) in the
    decay factor, so decay and gradient step shrink together.

    As in torch, state is created eagerly in ``__init__`` and a lazily created
    accumulator uses ``self.defaults['initial_accumulator_value']`` (a per-group
    value is ignored).  The foreach path folds ``-clr`` into the numerator
    (``g·(−clr)`` then ``addcdiv_``), the for-loop path passes it as ``value=``,
    exactly like torch's two paths.  Sparse gradients use torch's sparse update
    (``s`` accumulates the coalesced squared values, only touched rows move).
    """

    _flag_defaults = {
        "foreach": None,
        "maximize": False,
        "differentiable": False,
        "fused": None,
        "decoupled_weight_decay": False,
    }
    _sparse_error = None
    _fused_differentiable_error = "adagrad with fused=True does not support differentiable=True"
    _l2_complex_first = True
    _tensor_state_keys = ("sum",)

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        check_lr(lr)
        check(0.0 <= lr_decay, f"Invalid lr_decay value: {lr_decay}")
        check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        check(
            0.0 <= initial_accumulator_value,
            f"Invalid initial_accumulator_value value: {initial_accumulator_value}",
        )
        check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
            "state_dtype": state_dtype,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(group, p, self.state[p])

    def share_memory(self) -> None:
        """Calls ``tensor.share_memory_()`` on the state sum tensors."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["sum"].share_memory_()

    def _init_state(self, group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        if "step" not in state:
            state["step"] = self._new_step(group, p)
        if "sum" not in state:
            v = self.defaults["initial_accumulator_value"]
            init = complex(v, v) if torch.is_complex(p) else v
            state["sum"] = torch.full_like(p, init, memory_format=torch.preserve_format)

    @staticmethod
    def _clr(group: dict[str, Any], b: Bucket) -> list[Any]:
        return [b.lr / (1 + (t - 1) * group["lr_decay"]) for t in b.t]

    def _decay_lrs(self, group: dict[str, Any], b: Bucket) -> list[Any]:
        return self._clr(group, b)

    def _run(self, group: dict[str, Any], params: list[Tensor], states, ops) -> None:
        if params[0].grad.is_sparse and group["weight_decay"] != 0:
            if not group["decoupled_weight_decay"]:
                raise RuntimeError("weight_decay option is not compatible with sparse gradients")
        super()._run(group, params, states, ops)

    def _update(self, group: dict[str, Any], b: Bucket, ops) -> None:
        clr = self._clr(group, b)
        sums, eps = b.state["sum"], group["eps"]
        if b.grads[0].is_sparse:
            return self._sparse_update(b.params[0], b.grads[0], sums[0], clr[0], eps)
        ops.addcmul_(sums, b.grads, b.grads, 1)
        std = ops.sqrt(sums)
        std = ops.add_scalar_unless_saved(std, eps, b.differentiable)
        minus_clr = [-c for c in clr]
        if ops.foreach:
            ops.addcdiv_(b.params, ops.mul(b.grads, minus_clr), std)
        else:
            ops.addcdiv_(b.params, b.grads, std, minus_clr)

    @staticmethod
    def _sparse_update(param: Tensor, grad: Tensor, state_sum: Tensor, clr: float, eps: float) -> None:
        """Sparse rows only: ``s[i] += g[i]²; θ[i] −= clr · g[i] / (sqrt(s[i]) + ε)``."""
        grad = grad.coalesce()  # the update is non-linear, indices must be unique
        indices, values = grad._indices(), grad._values()
        size = grad.size()
        state_sum.add_(torch.sparse_coo_tensor(indices, values.pow(2), size))
        std_values = state_sum.sparse_mask(grad)._values().sqrt_().add_(eps)
        param.add_(torch.sparse_coo_tensor(indices, values / std_values, size), alpha=-clr)
