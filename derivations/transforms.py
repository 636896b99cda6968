"""Symbolic gradient transformations, composed with :func:`chain` into a rule.

The idea is optax's (a rule is a chain of small transformations of the update), done in
SymPy: each transformation appends lines to a :class:`~optproof.derivations.program.Builder`.
Where a transformation sits in the chain is part of the rule — ``add_l2`` before the moments
is L2 regularisation, ``add_decayed_weights`` on the parameter is decoupled decay.

Two quantities are derived here rather than typed in:

* the L2 term, as ``sympy.diff`` of the regularised loss L(θ) + λ/2·θ² (:func:`l2_gradient`);
* the bias correction, as the sum of the EMA weights computed by ``sympy.summation``
  (:func:`ema_weight_sum`), which gives 1 − βᵗ.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import sympy as sp

from .program import Builder
from .symbols import Hyper, t

__all__ = [
    "Transform", "chain", "negate_if", "add_l2", "l2_gradient", "ema", "ema_weight_sum",
    "bias_correct", "running_max", "divide_by_root", "adam_moments", "scale_by_adam", "add_decayed_weights",
    "scale_by_lr",
]

Transform = Callable[[Builder], None]


def chain(*transforms: Transform) -> Transform:
    """Apply ``transforms`` in order (optax ``chain``)."""

    def apply(b: Builder) -> None:
        for transform in transforms:
            transform(b)

    return apply


def negate_if(enabled: bool) -> Transform:
    """``maximize``: gₜ ← −gₜ, so that the step ascends (torch.optim ``maximize=True``)."""

    def apply(b: Builder) -> None:
        if enabled:
            b.update = b.let(b.update, -b.update, "maximize: ascend the objective")

    return apply


def l2_gradient(wd: sp.Symbol, theta: sp.Symbol, grad: sp.Symbol) -> sp.Expr:
    """∂/∂θ [L(θ) + λ/2·θ²] with ∂L/∂θ replaced by the gradient ``grad``: grad + λθ."""
    loss = sp.Function("L")
    regularised = loss(theta) + wd / 2 * theta**2
    return sp.diff(regularised, theta).subs(sp.Derivative(loss(theta), theta), grad)


def add_l2(wd: Hyper) -> Transform:
    """L2 regularisation (coupled decay): gₜ ← gₜ + λθₜ₋₁, derived by differentiating the
    regularised loss (torch.optim ``weight_decay`` of SGD, Adam, RMSprop, Adagrad, …)."""

    def apply(b: Builder) -> None:
        lam = b.hyper(wd)
        b.update = b.let(b.update, l2_gradient(lam, b.param, b.update), "∇θ [L(θ) + λ/2·θ²]")

    return apply


def ema(b: Builder, key: str, letter: str, beta: Hyper, of: sp.Expr, meaning: str,
        **assumptions) -> sp.Symbol:
    """Exponential moving average xₜ ← β·xₜ₋₁ + (1 − β)·``of``, stored under ``key``."""
    decay = b.hyper(beta)
    state = b.state(key, letter, meaning, **assumptions)
    return b.let(state.new, decay * state.prev + (1 - decay) * of, f"EMA, decay {sp.pretty(decay)}")


def _restrict_to_domain(expr: sp.Expr, symbol: sp.Symbol, domain: sp.Set) -> sp.Expr:
    """Drop the branches of ``expr`` whose condition ``a = b`` has no solution in ``domain``."""

    def decide(rel: sp.Eq) -> sp.Basic:
        solutions = sp.solveset(rel.lhs - rel.rhs, symbol, sp.S.Reals)
        return sp.false if solutions.intersect(domain) is sp.S.EmptySet else rel

    return expr.replace(lambda e: isinstance(e, sp.Eq), decide)


@lru_cache(maxsize=None)
def ema_weight_sum(beta: Hyper) -> sp.Expr:
    """Σᵢ₌₁ᵗ (1 − β)·βᵗ⁻ⁱ, the total weight an EMA started at 0 gives the t samples.

    Unrolled, xₜ = Σᵢ (1 − β)βᵗ⁻ⁱ·yᵢ; the weights sum to 1 − βᵗ (on the domain 0 ≤ β < 1),
    so dividing by the sum makes the weights a proper average (Kingma & Ba 2015, §3).
    """
    i = sp.Symbol("i", integer=True, positive=True)
    b = beta.symbol
    total = sp.summation((1 - b) * b ** (t - i), (i, 1, t))
    return sp.simplify(_restrict_to_domain(total, b, beta.domain))


def bias_correct(b: Builder, x: sp.Symbol, beta: Hyper, letter: str) -> sp.Symbol:
    """x̂ₜ ← xₜ / Σ(EMA weights) = xₜ / (1 − βᵗ)."""
    b.hyper(beta)
    return b.let(sp.Symbol(f"{letter}hat_t", real=True), x / ema_weight_sum(beta),
                 "bias correction: divide by the sum of the EMA weights")


def running_max(b: Builder, key: str, letter: str, of: sp.Symbol, meaning: str) -> sp.Symbol:
    """Running maximum xₜ ← max(xₜ₋₁, ``of``) (AMSGrad), stored under ``key``."""
    state = b.state(key, letter, meaning, nonnegative=True)
    return b.let(state.new, sp.Max(state.prev, of), "running maximum (AMSGrad)")


def divide_by_root(b: Builder, numerator: sp.Expr, square: sp.Expr, eps: Hyper,
                   *, eps_inside: bool = False) -> sp.Symbol:
    """The update uₜ ← numerator / (√square + ε), or / √(square + ε) with ``eps_inside``."""
    e = b.hyper(eps)
    denominator = sp.sqrt(square + e) if eps_inside else sp.sqrt(square) + e
    where = "inside" if eps_inside else "outside"
    b.update = b.let(sp.Symbol("u_t", real=True), numerator / denominator, f"ε {where} the root")
    return b.update


def adam_moments(b: Builder, beta1: Hyper, beta2: Hyper, *, amsgrad: bool
                 ) -> tuple[sp.Symbol, sp.Symbol]:
    """Adam's moments of the current update: mₜ (EMA of g) and vₜ (EMA of g²), or with
    ``amsgrad`` the running maximum ṽₜ of the raw vₜ in place of vₜ (Reddi et al. 2018;
    torch.optim 2.13 keeps the maximum of the uncorrected vₜ, as Keras does)."""
    grad = b.update
    m = ema(b, "exp_avg", "m", beta1, grad, "first moment (EMA of gradients)")
    v = ema(b, "exp_avg_sq", "v", beta2, grad**2, "second moment (EMA of squared gradients)",
            nonnegative=True)
    if amsgrad:
        v = running_max(b, "max_exp_avg_sq", "vtilde", v, "running maximum of the second moment")
    return m, v


def scale_by_adam(beta1: Hyper, beta2: Hyper, eps: Hyper, *, amsgrad: bool) -> Transform:
    """Adam's direction m̂ₜ/(√v̂ₜ + ε) with both moments bias-corrected (Kingma & Ba 2015,
    Algorithm 1); with ``amsgrad`` the maximum ṽₜ is bias-corrected in place of vₜ
    (torch.optim 2.13 ``adam.py``)."""

    def apply(b: Builder) -> None:
        m, v = adam_moments(b, beta1, beta2, amsgrad=amsgrad)
        divide_by_root(b, bias_correct(b, m, beta1, "m"), bias_correct(b, v, beta2, "v"), eps)

    return apply


def add_decayed_weights(wd: Hyper, scale: Hyper | sp.Expr | None) -> Transform:
    """Decoupled weight decay on the parameter: θₜ ← θₜ₋₁ − s·λ·θₜ₋₁, before the step.

    ``scale`` is the hyperparameter s multiplying λ: the learning rate γ (torch AdamW, optax,
    Keras), the schedule multiplier ηₜ (Loshchilov & Hutter 2019, Algorithm 2), or ``None``
    for decay independent of the learning rate (TF-Addons AdamW, "fully decoupled"). It may
    also be a symbol a preceding line assigned (Adagrad's decayed rate γₜ).
    """

    def apply(b: Builder) -> None:
        lam = b.hyper(wd)
        factor = lam if scale is None else _size(b, scale) * lam
        b.set_param(b.param - factor * b.param, "decoupled weight decay")

    return apply


def scale_by_lr(lr: Hyper) -> Transform:
    """The step itself: θₜ ← θ − γ·uₜ."""

    def apply(b: Builder) -> None:
        b.set_param(b.param - b.hyper(lr) * b.update, "step along the update direction")

    return apply
