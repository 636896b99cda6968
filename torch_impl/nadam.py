"""NAdam (drop-in for torch.optim 2.13 nadam.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import Bucket, OptimizerBase, _saved, check, check_betas, check_lr

__all__ = ["NAdam"]


#: The μ-product is kept in float64 for every parameter dtype. It feeds the step sizes
#: through 1 − Π, a subtraction whose conditioning Π/(1 − Π) grows as β₁ → 1; torch keeps Π
#: in its default scalar dtype (float32), which loses up to ~6e-8·Π/(1 − Π) relative in the
#: step sizes of float32 and even float64 parameters. torch's ``load_state_dict`` casts it
#: to the parameter's dtype; loading restores float64.
MU_PRODUCT_DTYPE = torch.float64


class NAdam(OptimizerBase):
    r"""NAdam (Dozat 2016, Alg. 2) with the momentum schedule of torch.optim
    2.13 ``nadam.py`` and optional decoupled weight decay (Loshchilov & Hutter
    2019, as torch's "NAdamW"):

    ```text
    g_t   = ±∇f(θ_{t-1})  (+ λ θ_{t-1}   if L2 weight decay)
    θ     ← θ (1 − γλ)                       if decoupled_weight_decay
    μ_t   = β1 (1 − ½ · 0.96^{t ψ})           (ψ = momentum_decay)
    μ_{t+1} = β1 (1 − ½ · 0.96^{(t+1) ψ})
    Π_t   = Π_{t-1} μ_t                        (state 'mu_product', Π_0 = 1)
    m_t   = lerp(m_{t-1}, g_t, 1 − β1)
    v_t   = β2 v_{t-1} + (1 − β2) g_t²
    d_t   = sqrt(v_t / (1 − β2^t)) + ε
    θ_t   = θ − γ (1 − μ_t)/(1 − Π_t) · g_t/d_t − γ μ_{t+1}/(1 − Π_t μ_{t+1}) · m_t/d_t
    ```

    μ, μ_{t+1}, the step sizes and ``(1 − β2^t)`` are Python float64; ``Π_t`` is
    stored as a 0-d tensor of `MU_PRODUCT_DTYPE` and multiplied in place
    (``Π.mul_(μ_t)``) like torch.  ``d_t`` is ``sqrt(v/bc2)`` on the for-loop
    path and ``sqrt(v)/sqrt(bc2)`` on the foreach path, matching torch's paths.
    """

    _flag_defaults = {
        "maximize": False,
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "decoupled_weight_decay": False,
        "fused": None,
    }
    _sparse_error = "NAdam does not support sparse gradients"
    _tensor_state_keys = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        check_lr(lr)
        check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        check_betas(betas)
        check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        check(0.0 <= momentum_decay, f"Invalid momentum_decay value: {momentum_decay}")
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "state_dtype": state_dtype,
        }
        super().__init__(params, defaults)

    def _new_mu_product(self, group: dict[str, Any], p: Tensor, value: float = 1.0) -> Tensor:
        device = p.device if group["capturable"] else "cpu"
        return torch.tensor(value, dtype=MU_PRODUCT_DTYPE, device=device)

    def _init_state(self, group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        if "step" not in state:
            state["step"] = self._new_step(group, p)
        if "mu_product" not in state:
            state["mu_product"] = self._new_mu_product(group, p)
        for key in self._tensor_state_keys:
            if key not in state:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's loader casts every state tensor but ``step`` to the parameter's dtype;
        the μ-product is put back from the checkpoint at full precision afterwards."""
        saved = {key: s["mu_product"] for key, s in state_dict["state"].items() if "mu_product" in s}
        super().load_state_dict(state_dict)
        ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        for key, p in zip(ids, params):
            if key in saved:
                value = saved[key]
                value = float(value) if not torch.is_tensor(value) else value
                self.state[p]["mu_product"] = torch.as_tensor(
                    value, dtype=MU_PRODUCT_DTYPE, device=self.state[p]["mu_product"].device).clone()

    def _fix_loaded_state(self, group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        """``load_state_dict`` casts ``mu_product`` to the param dtype (and old
        checkpoints store a float): restore the precision policy."""
        mu = state.get("mu_product")
        if mu is None:
            return
        if not torch.is_tensor(mu):
            state["mu_product"] = self._new_mu_product(group, p, float(mu))
        elif mu.dtype != MU_PRODUCT_DTYPE:
            state["mu_product"] = mu.to(MU_PRODUCT_DTYPE)

    def _check_capturable(self, params: list[Tensor]) -> None:
        super()._check_capturable(params)
        for p in params:
            if self.state[p]["mu_product"].device.type != p.device.type:
                raise AssertionError(
                    "If capturable=True, params, mu_products and state_steps must be on "
                    "supported devices."
                )

    def _update(self, group: dict[str, Any], b: Bucket, ops) -> None:
        beta1, beta2 = group["betas"]
        psi, eps, lr = group["momentum_decay"], group["eps"], b.lr

        mus = [beta1 * (1.0 - 0.5 * (0.96 ** (t * psi))) for t in b.t]
        mu_nexts = [beta1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * psi))) for t in b.t]
        mu_products = []
        for state, mu in zip(b.states, mus):
            if torch.compiler.is_compiling():  # inductor 2.13 drops this in-place product
                state["mu_product"] = state["mu_product"] * mu
            else:
                state["mu_product"].mul_(mu)
            mp = state["mu_product"]
            mu_products.append(mp if b.capturable or b.differentiable else mp.item())

        ops.ema_(b.state["exp_avg"], b.grads, beta1)
        ops.mul_(b.state["exp_avg_sq"], beta2)
        ops.addcmul_(b.state["exp_avg_sq"], b.grads, b.grads, 1 - beta2)
        if ops.foreach:
            denom = ops.sqrt(b.state["exp_avg_sq"])
            ops.div_(denom, [(1 - beta2**t) ** 0.5 for t in b.t])
        else:
            denom = ops.div(b.state["exp_avg_sq"], [1 - beta2**t for t in b.t])
            ops.sqrt_(denom)
        denom = ops.add_scalar_unless_saved(denom, eps, b.differentiable)

        grad_step = [(-lr * (1.0 - mu)) / (1.0 - mp) for mu, mp in zip(mus, mu_products)]
        avg_step = [(-lr * mn) / (1.0 - mp * mn) for mn, mp in zip(mu_nexts, mu_products)]
        if b.differentiable:
            # torch 2.13 ``_single_tensor_nadam`` (``differentiable or capturable``): the 0-d
            # step sizes multiply the operands, then two plain addcdiv_; m is copied when its
            # factor requires grad (a Tensor lr): the product saves m, which the next step
            # updates in place (torch does not copy it, and its backward through lr fails)
            grads = [g * s for g, s in zip(b.grads, grad_step)]
            avgs = [_saved(m, s) * s for m, s in zip(b.state["exp_avg"], avg_step)]
            ops.addcdiv_(b.params, grads, denom)
            ops.addcdiv_(b.params, avgs, denom)
            return
        ops.addcdiv_(b.params, b.grads, denom, grad_step)
        ops.addcdiv_(b.params, b.state["exp_avg"], denom, avg_step)
