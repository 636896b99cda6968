"""Symbolic gradient transformations, composed with `chain` into a rule.

The idea is optax's (a rule is a chain of small transformations of the update), done in
SymPy: each transformation appends lines to a `Builder`.
Where a transformation sits in the chain is part of the rule — ``add_l2`` before the moments
is L2 regularisation, ``add_decayed_weights`` on the parameter is decoupled decay.

Two quantities are derived here rather than typed in:

* the L2 term, as ``sympy.diff`` of the regularised loss L(θ) + λ/2·θ² (`l2_gradient`);
* the bias correction, as the sum of the EMA weights computed by ``sympy.summation``
  (`ema_weight_sum`), which gives 1 − βᵗ.
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
    "scale_by_lr", "weight_decay", "prepare_gradient",
    "trace", "sutskever_momentum", "scale_update", "descend", "DECAYED_LR", "inverse_time_decay",
    "scale_by_adagrad", "scale_by_adadelta", "scale_by_rms", "nadam_schedule", "MU_T", "MU_NEXT",
    "scale_by_nadam", "scale_by_adam_nesterov", "scale_by_amsgrad_corrected",
    "scale_by_nadamw_timm",
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
        init: sp.Expr = sp.S.Zero, **assumptions) -> sp.Symbol:
    """Exponential moving average xₜ ← β·xₜ₋₁ + (1 − β)·``of`` from x₀ = ``init`` (0 unless
    given), stored under ``key``."""
    decay = b.hyper(beta)
    state = b.state(key, letter, meaning, init, **assumptions)
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
                   *, eps_inside: bool = False, eps_root: Hyper | None = None,
                   eps_floor: bool = False) -> sp.Symbol:
    """The update uₜ ← numerator / (√square + ε), or / √(square + ε) with ``eps_inside``, or
    / max(√square, ε) with ``eps_floor`` (heavyball 3.2.1 ``utils.eps_sqrt``); ``eps_root``
    adds a second term inside the root, / (√(square + ε_root) + ε) (optax
    ``scale_by_adam(eps_root=…)``, ``optax/_src/transform.py`` 0.2.8)."""
    e = b.hyper(eps)
    if eps_root is not None:
        square = square + b.hyper(eps_root)
    if eps_floor:
        denominator, where = sp.Max(sp.sqrt(square), e), "ε as a floor of"
    else:
        denominator = sp.sqrt(square + e) if eps_inside else sp.sqrt(square) + e
        where = "ε inside" if eps_inside else "ε outside"
    if eps_root is not None:
        where += ", ε_root inside"
    b.update = b.let(sp.Symbol("u_t", real=True), numerator / denominator, f"{where} the root")
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


def scale_by_adam(beta1: Hyper, beta2: Hyper, eps: Hyper, *, amsgrad: bool,
                  eps_root: Hyper | None = None) -> Transform:
    """Adam's direction m̂ₜ/(√v̂ₜ + ε) with both moments bias-corrected (Kingma & Ba 2015,
    Algorithm 1); with ``amsgrad`` the maximum ṽₜ is bias-corrected in place of vₜ
    (torch.optim 2.13 ``adam.py``); with ``eps_root`` m̂ₜ/(√(v̂ₜ + ε_root) + ε) (optax)."""

    def apply(b: Builder) -> None:
        m, v = adam_moments(b, beta1, beta2, amsgrad=amsgrad)
        divide_by_root(b, bias_correct(b, m, beta1, "m"), bias_correct(b, v, beta2, "v"), eps,
                       eps_root=eps_root)

    return apply


def scale_by_amsgrad_corrected(beta1: Hyper, beta2: Hyper, eps: Hyper, eps_root: Hyper, *,
                               correct_m: bool, correct_v: bool) -> Transform:
    """optax ``scale_by_amsgrad`` (``optax/_src/transform.py`` 0.2.8): the running maximum is
    taken over the *bias-corrected* second moment, ṽₜ = max(ṽₜ₋₁, vₜ/(1 − β₂ᵗ)), and
    uₜ = m̂ₜ/(√(ṽₜ + ε_root) + ε). ``correct_m``/``correct_v`` are optax's
    ``bias_correction_mu``/``bias_correction_nu`` (both off: Reddi et al. 2018)."""

    def apply(b: Builder) -> None:
        grad = b.update
        m = ema(b, "exp_avg", "m", beta1, grad, "first moment (EMA of gradients)")
        v = ema(b, "exp_avg_sq", "v", beta2, grad**2, "second moment (EMA of squared gradients)",
                nonnegative=True)
        if correct_v:
            v = bias_correct(b, v, beta2, "v")
        vmax = running_max(b, "max_exp_avg_sq", "vtilde", v,
                           "running maximum of the (corrected) second moment")
        mhat = bias_correct(b, m, beta1, "m") if correct_m else m
        divide_by_root(b, mhat, vmax, eps, eps_root=eps_root)

    return apply


def add_decayed_weights(wd: Hyper, scale: Hyper | sp.Expr | None) -> Transform:
    """Decoupled weight decay on the parameter: θ ← θ − s·λ·θ, on the parameter as the chain
    has it there: before the step (torch AdamW), or after it on the stepped parameter
    (bitsandbytes' CUDA kernels, ``adamw:decay-after``).

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


# ---------------------------------------------------------------------------------------------
# The SGD → AdamW lineage: momentum, Adagrad, Adadelta, RMSprop, NAdam.
# ---------------------------------------------------------------------------------------------


def _size(b: Builder, size: Hyper | sp.Expr) -> sp.Expr:
    """A step size: a hyperparameter (declared) or an expression earlier lines assigned."""
    return b.hyper(size) if isinstance(size, Hyper) else size


def weight_decay(wd: Hyper, scale: Hyper | sp.Expr, *, decoupled: bool) -> Transform:
    """torch's two decays: L2, gₜ ← gₜ + λθₜ₋₁ (`add_l2`), or with
    ``decoupled_weight_decay=True`` θₜ ← θₜ₋₁(1 − s·λ) first (`add_decayed_weights`)."""
    return add_decayed_weights(wd, scale) if decoupled else add_l2(wd)


def prepare_gradient(wd: Hyper, scale: Hyper | sp.Expr, *, maximize: bool,
                     decoupled: bool) -> Transform:
    """What every torch.optim rule does first: negate for ``maximize``, then decay."""
    return chain(negate_if(maximize), weight_decay(wd, scale, decoupled=decoupled))


def trace(momentum: Hyper, dampening: Hyper | None = None, *, nesterov: bool = False,
          torch_start: bool = False, kept_at_zero: bool = True) -> Transform:
    """A momentum buffer bₜ of the current update u (torch key ``momentum_buffer``).

    optax ``trace``: bₜ ← μbₜ₋₁ + uₜ from b₀ = 0. With ``dampening`` τ and ``torch_start``
    (torch.optim 2.13 ``sgd.py``): bₜ ← μbₜ₋₁ + (1 − τₜ)uₜ where the effective dampening τₜ is
    0 at t = 1 (torch starts the buffer at a copy of g₁, skipping the dampening; from b₀ = 0
    that is the same line) and at μ = 0 (torch then has no buffer: the update is g), τ
    otherwise. ``nesterov``: uₜ ← uₜ + μbₜ (torch and optax alike); else uₜ ← bₜ. Unless
    ``kept_at_zero``, the buffer exists only for μ ≠ 0 (torch SGD, RMSprop; Keras SGD).
    """

    def apply(b: Builder) -> None:
        mu = b.hyper(momentum)
        exists = sp.true if kept_at_zero else sp.Ne(mu, 0)
        buf = b.state("momentum_buffer", "b", "momentum buffer", exists=exists)
        term = b.update
        if dampening is not None:
            tau = b.hyper(dampening)
            if torch_start:
                tau = b.let(sp.Symbol("tau_t", real=True),
                            sp.Piecewise((0, sp.Eq(t, 1) | sp.Eq(mu, 0)), (tau, True)),
                            "no dampening at the first step (b₁ = g₁) nor without momentum")
            term = (1 - tau) * term
        b.let(buf.new, mu * buf.prev + term, "momentum buffer")
        if nesterov:
            b.update = b.let(b.update, b.update + mu * buf.new, "Nesterov: look ahead")
        else:
            b.update = buf.new

    return apply


def sutskever_momentum(momentum: Hyper, lr: Hyper, *, nesterov: bool) -> Transform:
    """Velocity with the learning rate inside (Sutskever et al. 2013, eq. 1–4; Keras 3
    ``SGD``): vₜ ← μvₜ₋₁ − γgₜ, θₜ ← θₜ₋₁ + vₜ; Nesterov θₜ ← θₜ₋₁ + μvₜ − γgₜ. The velocity is
    stored under torch's key ``momentum_buffer`` and exists only for μ ≠ 0 (as in Keras)."""

    def apply(b: Builder) -> None:
        mu, gamma = b.hyper(momentum), b.hyper(lr)
        v = b.state("momentum_buffer", "v", "velocity (learning rate inside)", exists=sp.Ne(mu, 0))
        b.let(v.new, mu * v.prev - gamma * b.update, "velocity")
        step = mu * v.new - gamma * b.update if nesterov else v.new
        b.set_param(b.param + step, "Nesterov: look ahead" if nesterov else "move by the velocity")

    return apply


def scale_update(size: Hyper | sp.Expr) -> Transform:
    """uₜ ← s·uₜ: scale the update without stepping (optax ``scale_by_learning_rate`` placed
    before a ``trace``, which puts γ inside the momentum buffer)."""

    def apply(b: Builder) -> None:
        b.update = b.let(sp.Symbol("u_t", real=True), _size(b, size) * b.update,
                         "scale the update")

    return apply


def descend(size: Hyper | sp.Expr | None = None) -> Transform:
    """θₜ ← θ − s·uₜ with a step size s that may be a derived per-step symbol (Adagrad's γₜ),
    or θₜ ← θ − uₜ when the update already carries it (``size=None``)."""

    def apply(b: Builder) -> None:
        step = b.update if size is None else _size(b, size) * b.update
        b.set_param(b.param - step, "step along the update direction")

    return apply


DECAYED_LR = sp.Symbol("gamma_t", positive=True)


def inverse_time_decay(lr: Hyper, decay: Hyper) -> Transform:
    """torch Adagrad's rate γₜ ← γ/(1 + (t − 1)κ) (``clr`` in torch.optim 2.13 ``adagrad.py``);
    later transforms read it as `DECAYED_LR`."""

    def apply(b: Builder) -> None:
        b.let(DECAYED_LR, b.hyper(lr) / (1 + (t - 1) * b.hyper(decay)), "learning-rate decay")

    return apply


def scale_by_adagrad(eps: Hyper, initial: Hyper, *, eps_inside: bool) -> Transform:
    """Adagrad (Duchi et al. 2011, diagonal form): sₜ ← sₜ₋₁ + gₜ² from s₀ (torch key
    ``sum``), uₜ ← gₜ/(√sₜ + ε), or /√(sₜ + ε) with ``eps_inside`` (Keras 3, optax)."""

    def apply(b: Builder) -> None:
        grad = b.update
        s = b.state("sum", "s", "sum of squared gradients", init=b.hyper(initial),
                    nonnegative=True)
        b.let(s.new, s.prev + grad**2, "accumulate squared gradients")
        divide_by_root(b, grad, s.new, eps, eps_inside=eps_inside)

    return apply


def scale_by_adadelta(rho: Hyper, eps: Hyper) -> Transform:
    """Adadelta (Zeiler 2012, Algorithm 1): vₜ ← EMA_ρ(g²) (``square_avg``),
    Δₜ ← √(uₜ₋₁ + ε)/√(vₜ + ε)·gₜ, uₜ ← EMA_ρ(Δ²) (``acc_delta``); the update is Δₜ."""

    def apply(b: Builder) -> None:
        grad = b.update
        v = ema(b, "square_avg", "v", rho, grad**2, "EMA of squared gradients", nonnegative=True)
        acc = b.state("acc_delta", "u", "EMA of squared updates", nonnegative=True)
        e = b.hyper(eps)
        delta = b.let(sp.Symbol("Delta_t", real=True),
                      sp.sqrt(acc.prev + e) / sp.sqrt(v + e) * grad, "RMS[Δ]ₜ₋₁ / RMS[g]ₜ")
        ema(b, "acc_delta", "u", rho, delta**2, "EMA of squared updates")
        b.update = delta

    return apply


def scale_by_rms(alpha: Hyper, eps: Hyper, *, centered: bool, eps_inside: bool,
                 initial: Hyper | None = None) -> Transform:
    """RMSprop (Hinton, lecture 6e): vₜ ← EMA_α(g²) (``square_avg``), uₜ ← gₜ/(√vₜ + ε);
    ``centered`` (Graves 2013, §4): ḡₜ ← EMA_α(g) (``grad_avg``) and vₜ − ḡₜ² under the root;
    ``eps_inside``: √(vₜ + ε), centered √(vₜ − ḡₜ² + ε) (Keras 3; optax ``eps_in_sqrt``).
    ``initial``: v starts at v₀ instead of 0 (optax ``scale_by_rms(initial_scale=…)``;
    TensorFlow 1 ``RMSPropOptimizer`` and timm ``RMSpropTF`` start it at 1)."""

    def apply(b: Builder) -> None:
        grad = b.update
        square = ema(b, "square_avg", "v", alpha, grad**2, "EMA of squared gradients",
                     sp.S.Zero if initial is None else b.hyper(initial), nonnegative=True)
        if centered:
            mean = ema(b, "grad_avg", "gbar", alpha, grad, "EMA of gradients")
            square = square - mean**2
        divide_by_root(b, grad, square, eps, eps_inside=eps_inside)

    return apply


def nadam_schedule(beta1: Hyper, decay: Hyper | None) -> Transform:
    """NAdam's momentum schedule μₜ = β₁(1 − ½·0.96^{tψ}) and μₜ₊₁ (Dozat 2016, §3: ψ = 1/250),
    and the product Πₜ = Πₜ₋₁·μₜ from Π₀ = 1 (torch key ``mu_product``, one value per
    parameter tensor). ``decay=None`` drops ψ: μₜ = β₁(1 − ½·0.96ᵗ) (Keras 3)."""

    def apply(b: Builder) -> None:
        b1 = b.hyper(beta1)
        psi = sp.S.One if decay is None else b.hyper(decay)

        def mu(step):
            return b1 * (1 - sp.Rational(1, 2) * sp.Rational(24, 25) ** (step * psi))

        b.let(MU_T, mu(t), "momentum schedule")
        b.let(MU_NEXT, mu(t + 1), "next step's momentum")
        prod = b.state("mu_product", "Pi", "product of the momentum schedule", init=1,
                       per_step=True, nonnegative=True)
        b.let(prod.new, prod.prev * MU_T, "Πₜ = μ₁⋯μₜ")

    return apply


MU_T = sp.Symbol("mu_t", nonnegative=True)
MU_NEXT = sp.Symbol("mu_t+1", nonnegative=True)


def scale_by_nadam(beta1: Hyper, beta2: Hyper, eps: Hyper, *, eps_floor: bool = False) -> Transform:
    """NAdam's direction after `nadam_schedule` (Dozat 2016, Algorithm 2; torch.optim
    2.13 ``nadam.py``): m̂ₜ = μₜ₊₁mₜ/(1 − Πₜμₜ₊₁) + (1 − μₜ)gₜ/(1 − Πₜ), v̂ₜ = vₜ/(1 − β₂ᵗ),
    uₜ = m̂ₜ/(√v̂ₜ + ε)."""

    def apply(b: Builder) -> None:
        grad = b.update
        prod = b.states["mu_product"].new
        m, v = adam_moments(b, beta1, beta2, amsgrad=False)
        mhat = b.let(sp.Symbol("mhat_t", real=True),
                     MU_NEXT * m / (1 - prod * MU_NEXT) + (1 - MU_T) * grad / (1 - prod),
                     "Nesterov: next step's momentum on m, this step's on g")
        divide_by_root(b, mhat, bias_correct(b, v, beta2, "v"), eps, eps_floor=eps_floor)

    return apply


def scale_by_adam_nesterov(beta1: Hyper, beta2: Hyper, eps: Hyper,
                           eps_root: Hyper | None = None) -> Transform:
    """Adam with Nesterov momentum and constant β₁ (optax ``scale_by_adam(nesterov=True)``,
    ``optax/_src/transform.py`` 0.2.8): m̂ₜ = β₁mₜ/(1 − β₁ᵗ⁺¹) + (1 − β₁)gₜ/(1 − β₁ᵗ), each
    correction the derived EMA weight sum; uₜ = m̂ₜ/(√(v̂ₜ + ε_root) + ε)."""

    def apply(b: Builder) -> None:
        grad = b.update
        m, v = adam_moments(b, beta1, beta2, amsgrad=False)
        b1 = b.hyper(beta1)
        mhat = b.let(sp.Symbol("mhat_t", real=True),
                     b1 * m / ema_weight_sum(beta1).subs(t, t + 1)
                     + (1 - b1) * grad / ema_weight_sum(beta1),
                     "Nesterov: look-ahead, both terms bias-corrected")
        divide_by_root(b, mhat, bias_correct(b, v, beta2, "v"), eps, eps_root=eps_root)

    return apply


def scale_by_nadamw_timm(beta1: Hyper, beta2: Hyper, eps: Hyper) -> Transform:
    """timm ``NAdamW`` (``timm/optim/nadamw.py`` 1.0.31, after the MLCommons
    algorithmic-efficiency baseline): the look-ahead m̃ₜ = β₁mₜ + (1 − β₁)gₜ is divided by
    the *same* 1 − β₁ᵗ as mₜ would be, uₜ = m̃ₜ/(1 − β₁ᵗ) / (√v̂ₜ + ε); optax instead divides
    the two terms by 1 − β₁ᵗ⁺¹ and 1 − β₁ᵗ (`scale_by_adam_nesterov`)."""

    def apply(b: Builder) -> None:
        grad = b.update
        m, v = adam_moments(b, beta1, beta2, amsgrad=False)
        b1 = b.hyper(beta1)
        ahead = b.let(sp.Symbol("mtilde_t", real=True), b1 * m + (1 - b1) * grad,
                      "Nesterov: one more EMA step with the current gradient")
        divide_by_root(b, bias_correct(b, ahead, beta1, "m"), bias_correct(b, v, beta2, "v"), eps)

    return apply
