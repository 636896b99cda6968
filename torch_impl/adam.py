"""Adam / AdamW (drop-in for torch.optim 2.13 adam.py / adamw.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import LOOP, Bucket, OptimizerBase, check, check_betas, check_lr

__all__ = ["Adam", "AdamW"]


class Adam(OptimizerBase):
    r"""Adam (Kingma & Ba 2015, Alg. 1), AMSGrad (Reddi et al. 2018, Alg. 2) and
    AdamW-style decoupled decay (Loshchilov & Hutter 2019, Alg. 2);
    semantics of torch.optim 2.13 ``adam.py``.

    For each parameter, with `t` the post-increment step count:

    ```text
    g_t   = ±∇f(θ_{t-1})  (+ λ θ_{t-1}   if L2 weight decay)
    θ     ← θ (1 − γλ)                   if decoupled_weight_decay
    m_t   = lerp(m_{t-1}, g_t, 1 − β1)    = β1 m_{t-1} + (1 − β1) g_t
    v_t   = β2 v_{t-1} + (1 − β2) g_t²     (mul_ then addcmul_)
    v̂_t   = max(v̂_{t-1}, v_t)             if amsgrad, else v_t
    θ_t   = θ − γ/(1 − β1^t) · m_t / (sqrt(v̂_t)/sqrt(1 − β2^t) + ε)
    ```

    Bias corrections ``1 − β^t``, their square root and ``γ/(1 − β1^t)`` are
    Python float64 (from ``step.item()``), as torch does.  Tensor ``betas`` are
    read with ``.item()``.
    """

    _flag_defaults = {
        "amsgrad": False,
        "maximize": False,
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "decoupled_weight_decay": False,
        "fused": None,
    }
    _sparse_error = "Adam does not support sparse gradients, please consider SparseAdam instead"
    _fused_differentiable_error = "Adam with fused=True does not support differentiable=True"
    _l2_complex_first = True

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        if isinstance(lr, Tensor) and foreach and not capturable:
            raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True")
        check_lr(lr)
        check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        check_betas(betas)
        check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        check(
            (isinstance(betas[0], float) and isinstance(betas[1], float))
            or (isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor)),
            "betas must be either both floats or both Tensors",
        )
        for i, beta in enumerate(betas):
            if isinstance(beta, Tensor):
                check(
                    capturable or not foreach,
                    f"betas[{i}] as a Tensor is not supported for capturable=False and foreach=True",
                )
                check(beta.numel() == 1, f"Tensor betas[{i}] must be 1-element")
        betas = tuple(b.squeeze() if isinstance(b, Tensor) and b.dim() else b for b in betas)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
            "state_dtype": state_dtype,
        }
        super().__init__(params, defaults)

    def _tensor_state_keys_for(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def _init_state(self, group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        if "step" not in state:
            state["step"] = self._new_step(group, p)
        for key in self._tensor_state_keys_for(group):
            if key not in state:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _step_group(self, group: dict[str, Any]) -> None:
        if group["foreach"] and isinstance(group["lr"], Tensor) and not group["capturable"]:
            if any(p.grad is not None for p in group["params"]):
                raise RuntimeError(
                    "lr as a Tensor is not supported for capturable=False and foreach=True"
                )
        if group["differentiable"] and any(
            getattr(self.state.get(p, {}).get("step"), "requires_grad", False)
            for p in group["params"] if p.grad is not None
        ):
            raise RuntimeError("`requires_grad` is not supported for `step` in differentiable mode")
        super()._step_group(group)

    def _update(self, group: dict[str, Any], b: Bucket, ops) -> None:
        if b.differentiable:
            return self._update_differentiable(group, b)
        beta1, beta2 = (x.item() if isinstance(x, Tensor) else x for x in group["betas"])
        exp_avgs, exp_avg_sqs = b.state["exp_avg"], b.state["exp_avg_sq"]

        ops.ema_(exp_avgs, b.grads, beta1)
        ops.mul_(exp_avg_sqs, beta2)
        ops.addcmul_(exp_avg_sqs, b.grads, b.grads, 1 - beta2)

        step_size = [-(b.lr / (1 - beta1**t)) for t in b.t]
        bias_correction2_sqrt = [(1 - beta2**t) ** 0.5 for t in b.t]

        if group["amsgrad"]:
            ops.maximum_(b.state["max_exp_avg_sq"], exp_avg_sqs)
            denom = ops.sqrt(b.state["max_exp_avg_sq"])
        else:
            denom = ops.sqrt(exp_avg_sqs)
        ops.div_(denom, bias_correction2_sqrt)
        ops.add_scalar_(denom, group["eps"])
        ops.addcdiv_(b.params, exp_avgs, denom, step_size)

    def _update_differentiable(self, group: dict[str, Any], b: Bucket) -> None:
        """The ``capturable or differentiable`` branch of torch 2.13 ``_single_tensor_adam``,
        per tensor: the bias corrections are 0-d tensors from ``state['step']`` (taken in
        float64, as optproof's capturable path does; torch uses the step's own dtype, which is
        float64 only under a float64 default dtype), the step size is folded into the
        denominator ``sqrt(v̂)/(sqrt(1 − β2^t)·(−γ/(1 − β1^t))) + ε/(−γ/(1 − β1^t))`` and
        ``θ.addcdiv_(m.clone(), denom)``; the AMSGrad maximum is written with ``copy_`` from
        a clone. Tensor ``betas`` that require grad enter as tensors (``m.lerp_(g, 1 − β1)``,
        ``v.lerp_(g², 1 − β2)``, ``1 − β^t``), so θ is differentiable in them; both EMAs are
        ``ema_``'s, which for a β < 1/2 keeps β where torch's lerp loses it."""
        beta1, beta2 = (x if isinstance(x, Tensor) and x.requires_grad
                        else x.item() if isinstance(x, Tensor) else x for x in group["betas"])
        eps = group["eps"]
        for i, param in enumerate(b.params):
            grad, exp_avg, exp_avg_sq = b.grads[i], b.state["exp_avg"][i], b.state["exp_avg_sq"][i]
            LOOP.ema_([exp_avg], [grad], beta1.to(device=param.device, dtype=param.dtype)
                      if isinstance(beta1, Tensor) else beta1)  # cast as torch (its #140601)
            if isinstance(beta2, Tensor):  # torch: v.lerp_(g², 1 − β2), here for β2 ≥ 1/2
                LOOP.ema_([exp_avg_sq], [torch.square(grad)], beta2)
            else:
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = b.states[i]["step"].to(torch.float64)
            bias_correction1 = 1 - beta1 ** (step.clone() if isinstance(beta1, Tensor) else step)
            bias_correction2 = 1 - beta2 ** (step.clone() if isinstance(beta2, Tensor) else step)
            step_size_neg = (b.lr / bias_correction1).neg()
            bias_correction2_sqrt = bias_correction2.sqrt()
            if group["amsgrad"]:
                max_exp_avg_sq = b.state["max_exp_avg_sq"][i]
                # torch clones only v̂; the maximum saves v too, which the next step updates
                # in place, so v is copied as well (torch's backward fails there when v
                # depends on θ, i.e. with L2 decay, or on betas)
                max_exp_avg_sq.copy_(torch.maximum(max_exp_avg_sq.clone(), exp_avg_sq.clone()))
                exp_avg_sq = max_exp_avg_sq
            denom = (exp_avg_sq.sqrt() / (bias_correction2_sqrt * step_size_neg)).add_(
                eps / step_size_neg)
            param.addcdiv_(exp_avg.clone(), denom)


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter 2019, Alg. 2): `Adam` with
    ``decoupled_weight_decay=True``, i.e. ``θ ← θ(1 − γλ)`` before the Adam
    update and no ``λθ`` in the gradient; torch.optim 2.13 ``adamw.py``
    (default ``weight_decay=1e-2``).  ``decoupled_weight_decay`` is accepted
    for API uniformity but must stay ``True``.
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = True,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        check(
            decoupled_weight_decay,
            "AdamW always uses decoupled weight decay; use Adam for L2 weight decay",
        )
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
            state_dtype=state_dtype,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
