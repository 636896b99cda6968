"""Theorems of the Adam family, proved from the specs ``adam``, ``adamw``, ``adamw:paper``,
``adamw:fully-decoupled`` and ``adam:eps-hat``.

Sources: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015 (Algorithm 1,
§2 on ε̂, §3 on the bias correction); Loshchilov & Hutter, "Decoupled Weight Decay
Regularization", ICLR 2019 (Algorithm 2, §2 on L2 ≢ decoupled decay for adaptive methods);
Wang & Aitchison, "How to set AdamW's weight decay as you scale model and dataset size",
arXiv:2405.13698 (2024) (AdamW as an EMA of updates); torch 2.13.0 ``torch/optim/adam.py``
(``_single_tensor_adam`` lines 456–546, ``_multi_tensor_adam`` lines 688–799).
"""

from __future__ import annotations

import random

import sympy as sp

from ..program import Line
from ..spec import rule
from ..symbols import g, hyper, t, theta, theta_prev
from ..transforms import ema_weight_sum
from ..unroll import unroll
from .common import H, opaque, reference_check, runs_compare, values, witness
from .core import Check, Claim, Equations, Text, Theorem

GAMMA, B1, B2, EPS, LAM, ETA = (H(k) for k in ("lr", "betas[0]", "betas[1]", "eps",
                                               "weight_decay", "schedule_multiplier"))
M_NEW, V_NEW = sp.Symbol("m_t", real=True), sp.Symbol("v_t", real=True, nonnegative=True)
VHAT = sp.Symbol("vhat_t", real=True)
MHAT = sp.Symbol("mhat_t", real=True)
U = sp.Symbol("u_t", real=True)
TORCH = "torch 2.13.0 torch/optim/adam.py"
KB = "Kingma & Ba 2015, Adam, Algorithm 1"
LH = "Loshchilov & Hutter 2019, Decoupled Weight Decay Regularization, Algorithm 2 and §2"


def _adam_hyper(rng: random.Random, **extra):
    return {"lr": rng.uniform(0.01, 0.5), "betas": (rng.uniform(0.1, 0.95), rng.uniform(0.5, 0.999)),
            "eps": rng.uniform(1e-3, 0.5), **extra}


# ------------------------------------------------------------------------------ adam-first-step

def _first_step(k: int) -> list:
    adam = rule("adam").program()
    plain = unroll(adam, 1, given={LAM: 0})
    coupled = unroll(adam, 1)
    decoupled = unroll(rule("adamw").program(), 1)
    th0, g1 = plain.theta[0], plain.grads[0]
    gl = g1 + LAM * th0
    return [
        Text("Unroll one step of `adam` from its initial state (m₀ = v₀ = 0, t = 1): the bias "
             "corrections divide by exactly the weight 1 − β the EMAs gave g₁, so m̂₁ = g₁ and "
             "v̂₁ = g₁², and √v̂₁ = |g₁|. The first step is sign-like: its size γ|g₁|/(|g₁| + ε) "
             "is below γ whatever the scale of g₁, and independent of β₁ and β₂."),
        Equations("the first step of adam (weight_decay = 0)", plain.steps[0]),
        Claim("first step, weight_decay = 0", plain.closed(), th0 - GAMMA * g1 / (sp.Abs(g1) + EPS),
              names=("θ₁ of adam", "θ₀ − γ·g₁/(|g₁| + ε)")),
        Claim("first step with L2 weight decay (adam)", coupled.closed(),
              th0 - GAMMA * gl / (sp.Abs(gl) + EPS), names=("θ₁ of adam", "statement")),
        Claim("first step with decoupled decay (adamw)", decoupled.closed(),
              th0 * (1 - GAMMA * LAM) - GAMMA * g1 / (sp.Abs(g1) + EPS),
              names=("θ₁ of adamw", "statement")),
    ]


def _first_step_wrong(k: int) -> list[Claim]:
    u = unroll(rule("adam").program(), 1, given={LAM: 0})
    th0, g1 = u.theta[0], u.grads[0]
    return [Claim("first step without the bias correction", u.closed(),
                  th0 - GAMMA * (1 - B1) * g1 / (sp.Abs(g1) * sp.sqrt(1 - B2) + EPS)),
            Claim("first step as pure sign descent", u.closed(), th0 - GAMMA * sp.sign(g1))]


def _first_step_check(rng: random.Random, k: int) -> list[Check]:
    adam = rule("adam").program()
    h = _adam_hyper(rng)
    return [reference_check("adam first step", unroll(adam, 1, given={LAM: 0}), "adam", h, rng),
            reference_check("adamw first step", unroll(rule("adamw").program(), 1), "adamw",
                            {**h, "weight_decay": rng.uniform(0.01, 0.5)}, rng)]


ADAM_FIRST_STEP = Theorem(
    name="adam-first-step",
    title="From the zero state the first Adam step is γ·g/(|g| + ε) elementwise",
    statement="For `adam` from m₀ = v₀ = 0 at t = 1 with weight_decay 0: θ₁ = θ₀ − γ·g₁/(|g₁| + ε) "
              "for every 0 ≤ β₁, β₂ < 1; with L2 decay g₁ is replaced by g₁ + λθ₀; for `adamw` "
              "θ₁ = (1 − γλ)θ₀ − γ·g₁/(|g₁| + ε).",
    sources=(f"{KB} (bias correction, §3)", TORCH),
    derive=_first_step, counterfeit=_first_step_wrong, crosscheck=_first_step_check,
    default_steps=1, uses_steps=False,
)


# ------------------------------------------------------------------------------ bias-correction

def _const_grads(u, c):
    return {gi: c for gi in u.grads}


def _bias(k: int) -> list:
    adam = rule("adam").program()
    u = unroll(adam, k, given={LAM: 0})
    c = sp.Symbol("c", real=True)
    m_k = u.closed("exp_avg")
    mhat = u.expand(u.named(MHAT, k))
    vhat = u.expand(u.named(sp.Symbol("vhat_t", real=True), k))
    weights = [sp.diff(m_k, gi) for gi in u.grads]
    return [
        Text("An EMA started at 0, xₜ = βxₜ₋₁ + (1 − β)yₜ, unrolls to xₜ = Σᵢ₌₁ᵗ (1 − β)βᵗ⁻ⁱ·yᵢ. "
             "Its weights sum to 1 − βᵗ, not 1: the missing βᵗ is the weight of the zero "
             "initial value. Dividing by the sum (the spec's bias correction, computed by "
             "`sympy.summation` in `transforms.ema_weight_sum`) turns m̂ₜ into a weighted "
             "average of the gradients whose weights sum to 1, so a constant gradient c gives "
             "m̂ₜ = c and v̂ₜ = c² at every t."),
        Claim("sum of the EMA weights (first moment)", ema_weight_sum(hyper("betas[0]")),
              1 - B1 ** t, names=("Σᵢ (1 − β₁)β₁ᵗ⁻ⁱ (transforms.ema_weight_sum)", "1 − β₁ᵗ"),
              conditions="0 ≤ β₁ < 1 (the branch β = 1 of the sum is outside the domain)"),
        Claim("sum of the EMA weights (second moment)", ema_weight_sum(hyper("betas[1]")),
              1 - B2 ** t, names=("Σᵢ (1 − β₂)β₂ᵗ⁻ⁱ", "1 − β₂ᵗ")),
        Equations(f"the weights ∂m_{k}/∂gᵢ of the unrolled adam",
                  tuple(Line(sp.Symbol(f"w_{k},{n}"), w) for n, w in enumerate(weights, 1)),
                  relation="="),
        Claim(f"the unrolled weights of m_{k} sum to 1 − β₁^{k}", sp.Add(*weights), 1 - B1 ** k,
              names=(f"Σᵢ ∂m_{k}/∂gᵢ", f"1 − β₁^{k}")),
        Claim("a constant gradient: m̂ is its average", mhat.xreplace(_const_grads(u, c)), c,
              names=(f"m̂_{k} with g₁ = … = g_{k} = c", "c")),
        Claim("a constant gradient: v̂ is its square", vhat.xreplace(_const_grads(u, c)), c ** 2,
              names=(f"v̂_{k} with g₁ = … = g_{k} = c", "c²")),
        Text(f"(For comparison, without the correction m_{k} = {sp.factor(m_k.xreplace(_const_grads(u, c)))}: "
             f"biased towards the zero start by the factor 1 − β₁^{k}; v_{k} likewise.)"
             if k else ""),
    ]


def _bias_wrong(k: int) -> list[Claim]:
    u = unroll(rule("adam").program(), k, given={LAM: 0})
    c = sp.Symbol("c", real=True)
    return [Claim("weights summing to 1 − βᵗ⁻¹", ema_weight_sum(hyper("betas[0]")), 1 - B1 ** (t - 1)),
            Claim("weights summing to 1", ema_weight_sum(hyper("betas[0]")), sp.S.One),
            Claim("the uncorrected m is the average", u.closed("exp_avg").xreplace(_const_grads(u, c)), c)]


def _bias_check(rng: random.Random, k: int) -> list[Check]:
    from optproof.reference import run
    import mpmath

    b1, b2 = rng.uniform(0.1, 0.99), rng.uniform(0.1, 0.999)
    c = rng.uniform(-2, 2)
    with mpmath.workdps(50):
        records = run("adam", {"betas": (b1, b2)}, [0.5], [[c]] * max(k, 1))
        worst = max(max(abs(r["exp_avg"][0] / (1 - mpmath.mpf(b1) ** r["step"]) - c),
                        abs(r["exp_avg_sq"][0] / (1 - mpmath.mpf(b2) ** r["step"]) - mpmath.mpf(c) ** 2))
                    for r in records)
    return [Check("reference.run with a constant gradient: m/(1 − β₁ᵗ) = c, v/(1 − β₂ᵗ) = c²",
                  float(worst), bool(worst < mpmath.mpf(10) ** -40)),
            reference_check("adam m_k", unroll(rule("adam").program(), k, given={LAM: 0}), "adam",
                            {"betas": (b1, b2)}, rng, name="exp_avg")]


BIAS_CORRECTION = Theorem(
    name="bias-correction",
    title="The EMA weights sum to 1 − βᵗ, so the bias-corrected moments are proper averages",
    statement="For 0 ≤ β < 1 and t ≥ 1: Σᵢ₌₁ᵗ (1 − β)βᵗ⁻ⁱ = 1 − βᵗ. Hence m̂ₜ = mₜ/(1 − β₁ᵗ) "
              "= Σᵢ wᵢgᵢ with Σᵢ wᵢ = 1 (likewise v̂ₜ for gᵢ²): a constant gradient c gives "
              "m̂ₜ = c and v̂ₜ = c² at every step; checked on the unrolled `adam` for k steps.",
    sources=(f"{KB}, §3 (initialization bias correction)", TORCH),
    derive=_bias, counterfeit=_bias_wrong, crosscheck=_bias_check, default_steps=3, max_steps=26,
)


# ------------------------------------------------------------------------------ adam-eps-hat

def _eps_hat_values():
    torch_form = rule("adam").program().closed_form["param"]
    keras_form = rule("adam:eps-hat").program().closed_form["param"]
    eps_hat = next(h.symbol for h in rule("adam:eps-hat").program().hypers if h.key == "eps")
    return torch_form, keras_form, eps_hat


def _eps_hat(k: int) -> list:
    torch_form, keras_form, eps_hat = _eps_hat_values()
    conversion = eps_hat / sp.sqrt(1 - B2 ** t)
    b2 = sp.Rational(999, 1000)
    first = sp.N(1 / sp.sqrt(1 - b2), 6)
    return [
        Text("Keras/TF add ε̂ to √vₜ before the bias corrections, which they fold into the step "
             "size αₜ = √(1 − β₂ᵗ)/(1 − β₁ᵗ) (Kingma & Ba, end of §2); torch adds ε to "
             "√v̂ₜ = √vₜ/√(1 − β₂ᵗ). Multiplying torch's denominator by √(1 − β₂ᵗ) gives "
             "√vₜ + ε√(1 − β₂ᵗ): the two agree exactly when ε√(1 − β₂ᵗ) = ε̂."),
        Equations("adam:eps-hat (the spec's lines)", rule("adam:eps-hat").program().lines),
        Claim("torch with ε = ε̂/√(1 − β₂ᵗ) is Keras/TF with ε̂", torch_form.xreplace({EPS: conversion}),
              keras_form, names=("θₜ of adam, ε → ε̂/√(1 − β₂ᵗ)", "θₜ of adam:eps-hat"),
              conditions="1 − β₂ᵗ > 0 (β₂ < 1), for √(vₜ/(1 − β₂ᵗ)) = √vₜ/√(1 − β₂ᵗ)",
              show=False),
        Claim("Keras/TF with ε̂ = ε√(1 − β₂ᵗ) is torch with ε",
              keras_form.xreplace({eps_hat: EPS * sp.sqrt(1 - B2 ** t)}), torch_form,
              names=("θₜ of adam:eps-hat, ε̂ → ε√(1 − β₂ᵗ)", "θₜ of adam"), show=False),
        Text(f"The conversion depends on t: a constant ε̂ is torch with εₜ = ε̂/√(1 − β₂ᵗ), which "
             f"decreases from ε̂/√(1 − β₂) at t = 1 ({first}·ε̂ for β₂ = 0.999) to ε̂ as t → ∞; "
             f"no constant ε makes the two rules equal at every step."),
    ]


def _eps_hat_wrong(k: int) -> list[Claim]:
    torch_form, keras_form, eps_hat = _eps_hat_values()
    return [Claim("ε = ε̂ (no √(1 − β₂ᵗ) factor)", torch_form.xreplace({EPS: eps_hat}), keras_form),
            Claim("ε = ε̂·√(1 − β₂ᵗ) (factor inverted)",
                  torch_form.xreplace({EPS: eps_hat * sp.sqrt(1 - B2 ** t)}), keras_form)]


def _eps_hat_check(rng: random.Random, k: int) -> list[Check]:
    import mpmath

    h = _adam_hyper(rng)
    eps_hat, b2 = h["eps"], h["betas"][1]
    with mpmath.workdps(60):
        schedule = [float(mpmath.mpf(eps_hat) / mpmath.sqrt(1 - mpmath.mpf(b2) ** s))
                    for s in range(1, k + 1)]
    # the schedule is rounded to doubles; compare at the precision that survives
    a = runs_compare("adam with εₜ = ε̂/√(1 − β₂ᵗ) vs adam:eps-hat",
                     ("adam", {**h, "eps": schedule}), ("adam:eps-hat", h), k, rng)
    ok = a.discrepancy < 1e-14
    return [Check(a.what + " (to the doubles' precision of εₜ)", a.discrepancy, ok),
            runs_compare("adam with ε = ε̂ vs adam:eps-hat", ("adam", h), ("adam:eps-hat", h), k,
                         rng, agree=False)]


ADAM_EPS_HAT = Theorem(
    name="adam-eps-hat",
    title="Keras/TF's ε̂ form equals torch's Adam with ε = ε̂/√(1 − β₂ᵗ)",
    statement="For all t ≥ 1 and 0 ≤ β₂ < 1: the step of `adam:eps-hat` with ε̂ equals the step "
              "of `adam` with εₜ = ε̂/√(1 − β₂ᵗ) (equivalently torch's ε is Keras's "
              "ε̂ₜ = ε√(1 − β₂ᵗ)); the conversion depends on t, so no constant ε matches a "
              "constant ε̂.",
    sources=(f"{KB}, end of §2", "Keras 3 keras/src/optimizers/adam.py",
             "tf.compat.v1.train.AdamOptimizer docs (epsilon hat)", TORCH),
    derive=_eps_hat, counterfeit=_eps_hat_wrong, crosscheck=_eps_hat_check,
    default_steps=3, uses_steps=False,
)


# ------------------------------------------------------------------------------ adam-l2-vs-adamw

def _l2_vs_w_unrolled(k: int):
    return unroll(rule("adam").program(), k), unroll(rule("adamw").program(), k)


def _l2_vs_w(k: int) -> list:
    l2, w = _l2_vs_w_unrolled(k)
    th0, g1 = l2.theta[0], l2.grads[0]
    gl = g1 + LAM * th0
    blocks = [
        Text("Adam + L2 adds λθ to the gradient before the moments, so the decay is divided by "
             "√v̂ₜ + ε like the gradient is; AdamW multiplies θ by 1 − γλ outside the adaptive "
             "step. Unrolled from the zero state:"),
        Equations(f"adam (L2), {k} steps", l2.lines()),
        Equations(f"adamw (decoupled), {k} steps", w.lines()),
        Claim("the exact first step of Adam + L2", l2.closed(step=1),
              th0 - GAMMA * gl / (sp.Abs(gl) + EPS), names=("θ₁ of adam", "statement")),
        Claim("the exact first step of AdamW", w.closed(step=1),
              (1 - GAMMA * LAM) * th0 - GAMMA * g1 / (sp.Abs(g1) + EPS),
              names=("θ₁ of adamw", "statement")),
        Claim("Adam + L2 ≢ AdamW after one step", l2.closed(step=1), w.closed(step=1), equal=False,
              witness=witness([l2.closed(step=1), w.closed(step=1)], g_1=0, theta_0=1,
                              **{"lambda": sp.Rational(1, 2)}),
              names=("θ₁ of adam", "θ₁ of adamw")),
    ]
    if k > 1:
        a, b = l2.closed(), w.closed()
        blocks.append(Claim(f"Adam + L2 ≢ AdamW after {k} steps", a, b, equal=False,
                            witness=witness([a, b], **{"lambda": sp.Rational(1, 2)}),
                            names=(f"θ_{k} of adam", f"θ_{k} of adamw"), show=False))
    # one step from an arbitrary state, t symbolic: the decay term of Adam + L2
    p_l2, p_w = rule("adam").program(), rule("adamw").program()
    env = values(p_l2)
    vhat = env[VHAT]
    bc1 = 1 - B1 ** t
    m_prev = p_l2.states[0].prev
    grad_part = GAMMA * (B1 * m_prev + (1 - B1) * g) / (bc1 * (sp.sqrt(vhat) + EPS))
    decay_part = GAMMA * LAM * (1 - B1) / bc1 * theta_prev / (sp.sqrt(vhat) + EPS)
    env_w = values(p_w)
    blocks += [
        Text("One step from any state (mₜ₋₁, vₜ₋₁, t): the L2 step splits, by linearity of the "
             "first moment, into the gradient's part and a decay part γλ·(1 − β₁)/(1 − β₁ᵗ)·"
             "θₜ₋₁/(√v̂ₜ + ε), where v̂ₜ is computed from g + λθ; AdamW's decay is γλθₜ₋₁ for "
             "every coordinate. The effective decay coefficient of Adam + L2 is therefore "
             "λ·(1 − β₁)/((1 − β₁ᵗ)(√v̂ₜ + ε)) — preconditioned by 1/(√v̂ₜ + ε), weak where "
             "gradients are large — plus the decay of earlier steps carried in mₜ₋₁ "
             "(Loshchilov & Hutter 2019, §2)."),
        Claim("Adam + L2, one step: the decay is preconditioned by 1/(√v̂ₜ + ε)",
              p_l2.closed_form["param"], theta_prev - grad_part - decay_part,
              names=("θₜ of adam", "θₜ₋₁ − γ·(β₁mₜ₋₁ + (1 − β₁)gₜ)/((1 − β₁ᵗ)(√v̂ₜ + ε)) − "
                     "γλ(1 − β₁)θₜ₋₁/((1 − β₁ᵗ)(√v̂ₜ + ε))"), show=False),
        Claim("AdamW, one step: the decay is γλθₜ₋₁",
              p_w.closed_form["param"],
              theta_prev - GAMMA * LAM * theta_prev - GAMMA * env_w[MHAT] / (sp.sqrt(env_w[VHAT]) + EPS),
              names=("θₜ of adamw", "θₜ₋₁ − γλθₜ₋₁ − γ·m̂ₜ/(√v̂ₜ + ε)"), show=False),
    ]
    return blocks


def _l2_vs_w_wrong(k: int) -> list[Claim]:
    l2, w = _l2_vs_w_unrolled(k)
    p_l2 = rule("adam").program()
    env = values(p_l2)
    vhat = env[VHAT]
    m_prev = p_l2.states[0].prev
    grad_part = GAMMA * (B1 * m_prev + (1 - B1) * g) / ((1 - B1 ** t) * (sp.sqrt(vhat) + EPS))
    return [Claim("AdamW ≡ Adam + L2 (the tutorial's claim)", l2.closed(), w.closed()),
            Claim("Adam + L2's decay not preconditioned", p_l2.closed_form["param"],
                  theta_prev - grad_part - GAMMA * LAM * theta_prev),
            Claim("Adam + L2 ≢ AdamW when λ = 0", l2.closed().xreplace({LAM: 0}),
                  w.closed().xreplace({LAM: 0}), equal=False,
                  witness=witness([l2.closed(), w.closed()]))]


def _l2_vs_w_check(rng: random.Random, k: int) -> list[Check]:
    l2, w = _l2_vs_w_unrolled(k)
    h = _adam_hyper(rng, weight_decay=rng.uniform(0.05, 0.5))
    return [reference_check("adam (L2)", l2, "adam", h, rng),
            reference_check("adamw", w, "adamw", h, rng),
            runs_compare("adam (L2) vs adamw", ("adam", h), ("adamw", h), k, rng, agree=False)]


ADAM_L2_VS_ADAMW = Theorem(
    name="adam-l2-vs-adamw",
    title="Adam + L2 is not AdamW: its decay is preconditioned by 1/(√v̂ + ε)",
    statement="From the zero state, θ₁ = θ₀ − γ(g₁ + λθ₀)/(|g₁ + λθ₀| + ε) for `adam` (L2) and "
              "θ₁ = (1 − γλ)θ₀ − γg₁/(|g₁| + ε) for `adamw`, which differ for λ > 0 (witness "
              "given); from any state the L2 step's decay term is γλ(1 − β₁)θₜ₋₁/((1 − β₁ᵗ)(√v̂ₜ + ε)) "
              "(v̂ₜ from g + λθ) against AdamW's γλθₜ₋₁.",
    sources=(LH, KB, TORCH),
    derive=_l2_vs_w, counterfeit=_l2_vs_w_wrong, crosscheck=_l2_vs_w_check,
    default_steps=2, max_steps=3,
)


# ------------------------------------------------------------------------------ adamw-decay-scaling

BASE_LR = sp.Symbol("alpha_0", positive=True)  # the paper's base rate α: γₜ = ηₜ·α


def _scaling_unrolled(k: int):
    torch_ = unroll(rule("adamw").program(), k, vary=["lr"])
    paper = unroll(rule("adamw:paper").program(), k, vary=["lr", "schedule_multiplier"])
    full = unroll(rule("adamw:fully-decoupled").program(), k, vary=["lr", "weight_decay"])
    return torch_, paper, full


def _scaling_subs(torch_, paper, lam_paper):
    """θ_k of adamw and of adamw:paper with γₜ = ηₜα and the paper's λ → ``lam_paper``."""
    gammas, etas = torch_.hyper["lr"], paper.hyper["schedule_multiplier"]
    to_base = {gi: eta * BASE_LR for gi, eta in zip(gammas, etas)}
    return (torch_.closed().xreplace(to_base),
            paper.closed().xreplace({**to_base, LAM: lam_paper}))


def _scaling(k: int) -> list:
    torch_, paper, full = _scaling_unrolled(k)
    a, b = _scaling_subs(torch_, paper, BASE_LR * LAM)
    c = full.closed().xreplace({lam_i: gi * LAM for lam_i, gi in
                                zip(full.hyper["weight_decay"], torch_.hyper["lr"])})
    return [
        Text("Three couplings of the decoupled decay: torch `adamw` θ ← θ(1 − γₜλ), the paper "
             "`adamw:paper` θ ← θ(1 − ηₜλ) with γₜ = ηₜ·α (α the base rate, ηₜ the schedule "
             "multiplier), and `adamw:fully-decoupled` θ ← θ(1 − λ). Unrolled k steps with the "
             "learning rate (and ηₜ) varying per step; the Adam direction uₜ is the same in all "
             "three, so the trajectories coincide exactly when the per-step decay factors do."),
        Equations(f"adamw, {k} steps (γₜ varies)", torch_.lines()),
        Equations(f"adamw:paper, {k} steps (γₜ = ηₜα)", paper.lines()),
        Claim("torch λ ↔ paper λₚ = α·λ, under any schedule γₜ = ηₜα", a, b,
              names=(f"θ_{k} of adamw with λ", f"θ_{k} of adamw:paper with λₚ = αλ"), show=False),
        Claim("torch λ ↔ fully decoupled λ_f,t = γₜλ (must follow the schedule)",
              torch_.closed(), c, names=(f"θ_{k} of adamw", f"θ_{k} of adamw:fully-decoupled, "
                                                           "λₜ = γₜλ"), show=False),
        Text("So adamw(λ) = adamw:paper(λ/… ) needs λₚ = αλ (a constant, since the schedule "
             "multiplies both), and adamw:paper(λₚ) = adamw(λₚ/α); the fully decoupled λ_f "
             "must equal γₜλ at every step — a constant λ_f matches torch only at constant lr "
             "(λ_f = γλ) and drifts from it under any schedule (torch issue #38853)."),
    ]


def _scaling_wrong(k: int) -> list[Claim]:
    torch_, paper, full = _scaling_unrolled(k)
    a, b = _scaling_subs(torch_, paper, LAM)
    gammas = torch_.hyper["lr"]
    const = full.closed().xreplace({lam_i: gammas[0] * LAM for lam_i in full.hyper["weight_decay"]})
    return [Claim("paper λₚ = torch λ (same number)", a, b),
            Claim("fully decoupled with the constant λ_f = γ₁λ under a schedule", torch_.closed(), const)]


def _scaling_check(rng: random.Random, k: int) -> list[Check]:
    base, lam = rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5)
    eta = [rng.uniform(0.2, 1.0) for _ in range(k)]
    lr = [e * base for e in eta]
    h = _adam_hyper(rng)
    h.pop("lr")
    torch_h = {**h, "lr": lr, "weight_decay": lam}
    paper_h = {**h, "lr": lr, "schedule_multiplier": eta, "weight_decay": base * lam}
    full_h = {**h, "lr": lr, "weight_decay": [x * lam for x in lr]}
    torch_, paper, full = _scaling_unrolled(k)
    checks = [runs_compare("adamw vs adamw:paper (λₚ = αλ)", ("adamw", torch_h),
                           ("adamw:paper", paper_h), k, rng),
              runs_compare("adamw vs adamw:fully-decoupled (λₜ = γₜλ)", ("adamw", torch_h),
                           ("adamw:fully-decoupled", full_h), k, rng),
              reference_check("adamw under a schedule", torch_, "adamw", torch_h, rng)]
    # products of doubles (e·base, base·λ) round: compare at the doubles' precision
    return [Check(c.what + " (inputs rounded to doubles)", c.discrepancy, c.discrepancy < 1e-14)
            if "agree" in c.what else c for c in checks]


ADAMW_DECAY_SCALING = Theorem(
    name="adamw-decay-scaling",
    title="Converting AdamW's decay between torch (γλ), the paper (ηₜλ) and fully decoupled (λ)",
    statement="Under any schedule γₜ = ηₜ·α: `adamw` with λ ≡ `adamw:paper` with λₚ = αλ, and "
              "`adamw` with λ ≡ `adamw:fully-decoupled` with λ_f,t = γₜλ (time-varying; a "
              "constant λ_f = γλ only at constant lr); proved on k unrolled steps.",
    sources=(LH, "torch issue #38853", "TensorFlow Addons AdamW (DecoupledWeightDecayExtension)",
             "torch 2.13.0 torch/optim/adamw.py"),
    derive=_scaling, counterfeit=_scaling_wrong, crosscheck=_scaling_check,
    default_steps=2, max_steps=6,
)


# ------------------------------------------------------------------------------ adamw-ema-timescale

LAM_POS = sp.Symbol("lambda", positive=True)  # λ > 0: the EMA form divides by λ


def _ema_unrolled(k: int, schedule: bool):
    u = unroll(rule("adamw").program(), k, vary=["lr"] if schedule else [], given={LAM: LAM_POS})
    return u, opaque(u, U)


def _ema_rhs(u, us):
    """(∏ decay factors)·θ₀ + Σᵢ (rate_i ∏_{j>i} decay_j)·(−uᵢ/λ)."""
    k = u.k
    gammas = u.hyper["lr"]
    factors = [1 - gi * LAM_POS for gi in gammas]
    start = sp.Mul(*factors) * u.theta[0]
    terms = [gammas[i] * LAM_POS * sp.Mul(*factors[i + 1:]) * (-us[i] / LAM_POS) for i in range(k)]
    return start + sp.Add(*terms), [sp.Mul(*factors)] + [gammas[i] * LAM_POS * sp.Mul(*factors[i + 1:])
                                                         for i in range(k)]


def _ema(k: int) -> list:
    u, us = _ema_unrolled(k, False)
    rhs, weights = _ema_rhs(u, us)
    us_s, us_list = _ema_unrolled(k, True)
    rhs_s, weights_s = _ema_rhs(us_s, us_list)
    a = sp.Symbol("a", positive=True)
    n, i = sp.Symbol("k", integer=True, positive=True), sp.Symbol("i", integer=True, positive=True)
    total = (1 - a) ** n + sp.summation(a * (1 - a) ** (n - i), (i, 1, n))
    return [
        Text("AdamW's step θₜ = (1 − γλ)θₜ₋₁ − γuₜ (uₜ = m̂ₜ/(√v̂ₜ + ε), the Adam direction) is an "
             "EMA update θₜ = (1 − a)θₜ₋₁ + a·xₜ with rate a = γλ and target xₜ = −uₜ/λ. "
             "Unrolled with the uᵢ kept as symbols:"),
        Equations(f"adamw, {k} steps", u.lines()),
        Claim("constant γ, λ > 0: θ_k is an EMA of the −uᵢ/λ", u.closed(keep=us), rhs,
              names=(f"θ_{k} of adamw", f"(1 − γλ)^{k}θ₀ + Σᵢ γλ(1 − γλ)^({k}−i)·(−uᵢ/λ)"),
              conditions="λ > 0 (the targets divide by λ)"),
        Claim("the weights sum to 1 for every k (a = γλ)", total, sp.S.One,
              names=("(1 − a)ᵏ + Σᵢ₌₁ᵏ a(1 − a)ᵏ⁻ⁱ", "1"), conditions="a = γλ > 0",
              domains={a: sp.Interval.open(0, 1)}),
        Text("The weight of update i is γλ(1 − γλ)ᵏ⁻ⁱ ≈ γλ·e^{−γλ(k−i)} for γλ ≪ 1: an EMA with "
             "timescale 1/(γλ) steps (Wang & Aitchison 2024). It is a proper average (positive, "
             "decaying weights) only for 0 < γλ < 1; 1 < γλ < 2 alternates signs; λ = 0 is plain "
             "Adam (no EMA: θ_k = θ₀ − γΣuᵢ)."),
        Equations(f"adamw under a schedule γ₁ … γ_{k}", us_s.lines()),
        Claim("a schedule γₜ: still an average, with time-varying rates γₜλ",
              us_s.closed(keep=us_list), rhs_s,
              names=(f"θ_{k} of adamw, γₜ varying",
                     "∏ₜ(1 − γₜλ)θ₀ + Σᵢ γᵢλ∏_{j>i}(1 − γⱼλ)·(−uᵢ/λ)"),
              conditions="λ > 0"),
        Claim("under a schedule the weights still sum to 1 (telescoping)", sp.Add(*weights_s), sp.S.One,
              names=("∏ₜ(1 − γₜλ) + Σᵢ γᵢλ∏_{j>i}(1 − γⱼλ)", "1")),
        Text("Under a schedule there is no single timescale: the memory of update i decays by "
             "∏_{j>i}(1 − γⱼλ), i.e. the 'timescale' is measured in Σγⱼλ, and λ fixed while γ "
             "decays lengthens it."),
    ]


def _ema_wrong(k: int) -> list[Claim]:
    u, us = _ema_unrolled(k, False)
    gamma = u.hyper["lr"][0]
    # timescale 1/λ (γ left out of the rate) and reversed weights
    wrong_rate = (1 - LAM_POS) ** k * u.theta[0] + sp.Add(*[
        LAM_POS * (1 - LAM_POS) ** (k - i) * (-us[i - 1] / LAM_POS) for i in range(1, k + 1)])
    reversed_ = (1 - gamma * LAM_POS) ** k * u.theta[0] + sp.Add(*[
        gamma * LAM_POS * (1 - gamma * LAM_POS) ** (i - 1) * (-us[i - 1] / LAM_POS)
        for i in range(1, k + 1)])
    return [Claim("EMA rate λ instead of γλ", u.closed(keep=us), wrong_rate),
            Claim("the oldest update weighted most", u.closed(keep=us), reversed_)]


def _ema_check(rng: random.Random, k: int) -> list[Check]:
    from optproof.reference import run
    import mpmath

    h = _adam_hyper(rng, weight_decay=rng.uniform(0.05, 0.5))
    th0 = [rng.uniform(-2, 2)]
    grads = [[rng.uniform(-2, 2)] for _ in range(k)]
    with mpmath.workdps(50):
        records = run("adamw", h, th0, grads)
        lr, lam = mpmath.mpf(h["lr"]), mpmath.mpf(h["weight_decay"])
        b1, b2, eps = (mpmath.mpf(x) for x in (*h["betas"], h["eps"]))
        us = [(r["exp_avg"][0] / (1 - b1 ** r["step"]))
              / (mpmath.sqrt(r["exp_avg_sq"][0] / (1 - b2 ** r["step"])) + eps) for r in records]
        a = lr * lam
        ema = (1 - a) ** k * th0[0] + sum(a * (1 - a) ** (k - i) * (-us[i - 1] / lam)
                                         for i in range(1, k + 1))
        gap = abs(ema - records[-1]["param"][0])
    return [Check("reference.run adamw θ_k vs the EMA of −uᵢ/λ", float(gap), bool(gap < 1e-40))]


ADAMW_EMA_TIMESCALE = Theorem(
    name="adamw-ema-timescale",
    title="AdamW's parameters are an EMA of −uₜ/λ with timescale 1/(γλ)",
    statement="For constant γ and λ > 0: θ_k = (1 − γλ)ᵏθ₀ + Σᵢ₌₁ᵏ γλ(1 − γλ)ᵏ⁻ⁱ·(−uᵢ/λ) "
              "with uᵢ = m̂ᵢ/(√v̂ᵢ + ε), the weights summing to 1: an EMA of the targets −uᵢ/λ "
              "with rate γλ (timescale 1/(γλ) steps, a proper average for 0 < γλ < 1). Under a "
              "schedule γₜ the factors become ∏(1 − γⱼλ): still an average, no single timescale.",
    sources=("Wang & Aitchison 2024, arXiv:2405.13698", LH, "torch 2.13.0 torch/optim/adamw.py"),
    derive=_ema, counterfeit=_ema_wrong, crosscheck=_ema_check, default_steps=3, max_steps=8,
)


# ------------------------------------------------------------------------------ torch-rearrangements

BC2 = sp.Symbol("b", real=True)  # a real number standing for 1 − β₂ᵗ without its domain


def _torch_forms():
    """torch 2.13 adam.py's update lines, transcribed (m, v: the moments after this step)."""
    bc1, bc2 = 1 - B1 ** t, 1 - B2 ** t
    m, v, p = M_NEW, V_NEW, theta_prev
    # _single_tensor_adam, capturable (lines 498–526)
    step_size = GAMMA / bc1
    step_size_neg = -step_size
    bc2_sqrt = sp.sqrt(bc2)
    denom = sp.sqrt(v) / (bc2_sqrt * step_size_neg) + EPS / step_size_neg
    capturable = p + m / denom  # param.addcdiv_(exp_avg, denom)
    # _single_tensor_adam, not capturable (lines 530–546): addcdiv_(m, denom, value=-step_size)
    loop = p + (-step_size) * m / (sp.sqrt(v) / bc2 ** sp.Rational(1, 2) + EPS)
    # _multi_tensor_adam, capturable (lines 734–769)
    fe_bc1 = 1 / ((B1 ** t - 1) / GAMMA)  # pow, sub_ 1, div_ lr, reciprocal_: −lr/(1 − β₁ᵗ)
    fe_bc2_sqrt = sp.sqrt(-(B2 ** t - 1))  # pow, sub_ 1, neg_, sqrt_
    fe_denom = (sp.sqrt(v) / fe_bc2_sqrt + EPS) / fe_bc1
    foreach_capturable = p + m / fe_denom
    # _multi_tensor_adam, not capturable (lines 771–799)
    fe_step = (GAMMA / bc1) * -1
    foreach = p + fe_step * m / (sp.sqrt(v) / bc2 ** sp.Rational(1, 2) + EPS)
    return {"capturable": capturable, "for-loop": loop, "foreach capturable": foreach_capturable,
            "foreach": foreach, "capturable denom": denom}


def _capturable_at_zero_lr() -> str:
    """torch's capturable lines evaluated in IEEE float64 at lr = 0 (outside the domain)."""
    import numpy as np

    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for v, m in ((1.0, 0.5), (0.0, 0.0)):
            step_size_neg = -(np.float64(0.0) / np.float64(1 - 0.9))
            denom = (np.sqrt(np.float64(v)) / (np.sqrt(np.float64(1 - 0.999)) * step_size_neg)
                     + np.float64(1e-8) / step_size_neg)
            out.append(f"v = {v:g}, m = {m:g}: denom = {denom}, θ + m/denom = "
                       f"{np.float64(1.0) + np.float64(m) / denom}")
    return ("At γ = 0 (outside lr > 0) the capturable form divides by step_size = 0. In IEEE "
            "float64 (θ = 1, t = 1, β = (0.9, 0.999), ε = 1e-8): " + "; ".join(out) + ". An element "
            "with vₜ = 0 (a zero gradient so far) becomes NaN where the textbook step leaves θ "
            "unchanged: division by step_size is valid only for γ > 0 (torch issue #126514, "
            "capturable Adam NaN at lr = 0). β₁ = 1 would do the same through bc₁ = 0.")


def _rearrangements(k: int) -> list:
    adam = rule("adam").program()
    textbook = values(adam, keep=[M_NEW, V_NEW])[theta]  # θₜ in terms of mₜ, vₜ
    ema_line = {line.target: line.expr for line in adam.lines}  # mₜ, vₜ of the (decayed) gₜ
    m_prev, v_prev = (s.prev for s in adam.states)
    forms = _torch_forms()
    lerp = m_prev + (1 - B1) * (g - m_prev)  # exp_avg.lerp_(grad, 1 − β₁) (lines 456, 704)
    addcmul = v_prev * B2 + (1 - B2) * g * g  # mul_(β₂).addcmul_(g, g, 1 − β₂) (474, 708–723)
    decay = theta_prev * (1 - GAMMA * LAM)  # param.mul_(1 − lr·λ) (lines 419, 691)
    first_decay = rule("adamw").program().lines[0].expr
    blocks = [
        Text("torch 2.13's `adam.py` computes Adam through rewritten expressions that avoid "
             "tensor-sized temporaries. Each is transcribed below from the source and compared "
             "with the textbook step of the spec `adam` (θₜ in terms of the new moments mₜ, vₜ; "
             "bc₁ = 1 − β₁ᵗ, bc₂ = 1 − β₂ᵗ)."),
        Equations("the textbook step (spec adam, moments kept)", (Line(theta, textbook),)),
        Claim("lerp: m + (1 − β₁)(g − m) is the EMA", lerp, ema_line[M_NEW],
              names=("exp_avg.lerp_(grad, 1 − β₁)", "mₜ of adam")),
        Claim("mul_/addcmul_: v·β₂ + (1 − β₂)·g·g is the EMA of g²", addcmul, ema_line[V_NEW],
              names=("exp_avg_sq.mul_(β₂).addcmul_(g, g, 1 − β₂)", "vₜ of adam")),
        Claim("for-loop: θ + (−γ/bc₁)·m/(√v/√bc₂ + ε)", forms["for-loop"], textbook,
              names=("_single_tensor_adam", "textbook"), conditions="bc₂ > 0, i.e. β₂ < 1"),
        Claim("capturable: denom = √v/(√bc₂·(−step_size)) + ε/(−step_size), θ += m/denom",
              forms["capturable"], textbook, names=("_single_tensor_adam capturable", "textbook"),
              conditions="bc₂ > 0 and step_size = γ/bc₁ ≠ 0, i.e. β₂ < 1, β₁ < 1, γ > 0"),
        Claim("foreach: addcdiv_ with value −γ/bc₁", forms["foreach"], textbook,
              names=("_multi_tensor_adam", "textbook"), conditions="bc₂ > 0"),
        Claim("foreach capturable: step_size = 1/((β₁ᵗ − 1)/γ), √bc₂ = √(−(β₂ᵗ − 1))",
              forms["foreach capturable"], textbook,
              names=("_multi_tensor_adam capturable", "textbook"),
              conditions="bc₂ > 0, γ > 0, β₁ < 1"),
        Claim("decoupled decay: param.mul_(1 − lr·λ)", decay, first_decay,
              names=("torch adamw", "first line of adamw")),
        Text("Where the domains are needed:"),
        Claim("√(v/b) = √v/√b fails for b < 0 (β₂ ≥ 1 would make bc₂ ≤ 0)",
              sp.sqrt(V_NEW / BC2), sp.sqrt(V_NEW) / sp.sqrt(BC2), equal=False,
              witness={V_NEW: sp.Integer(1), BC2: sp.Integer(-1)},
              names=("√(v/b)", "√v/√b"), conditions="b real, outside the domain bc₂ > 0"),
        Text(_capturable_at_zero_lr()),
    ]
    return blocks


def _rearrangements_wrong(k: int) -> list[Claim]:
    adam = rule("adam").program()
    textbook = values(adam, keep=[M_NEW, V_NEW])[theta]
    ema_line = {line.target: line.expr for line in adam.lines}
    m_prev = adam.states[0].prev
    bc1, bc2 = 1 - B1 ** t, 1 - B2 ** t
    step_size_neg = -GAMMA / bc1
    bad_denom = sp.sqrt(V_NEW) / (sp.sqrt(bc2) * step_size_neg) + EPS  # ε not divided
    return [Claim("capturable with ε not divided by −step_size", theta_prev + M_NEW / bad_denom, textbook),
            Claim("lerp with weight β₁", m_prev + B1 * (g - m_prev), ema_line[M_NEW]),
            Claim("√(v/b) = √v/√b for every real b", sp.sqrt(V_NEW / BC2), sp.sqrt(V_NEW) / sp.sqrt(BC2))]


TORCH_REARRANGEMENTS = Theorem(
    name="torch-rearrangements",
    title="torch 2.13's rewritten Adam expressions equal the textbook step on the domains",
    statement="With bc₁ = 1 − β₁ᵗ, bc₂ = 1 − β₂ᵗ: lerp m + (1 − β₁)(g − m) = β₁m + (1 − β₁)g; the "
              "for-loop, foreach, capturable (denom = √v/(√bc₂·(−γ/bc₁)) + ε/(−γ/bc₁), θ += m/denom) "
              "and foreach-capturable forms all equal θ − γ·(m/bc₁)/(√(v/bc₂) + ε), using bc₂ > 0 "
              "(β₂ < 1) for √(v/bc₂) = √v/√bc₂ and γ/bc₁ ≠ 0 (γ > 0, β₁ < 1) for the capturable "
              "divisions; outside those domains the rewrites fail (witness, and NaN at γ = 0).",
    sources=(f"{TORCH}: _single_tensor_adam lines 456–546, _multi_tensor_adam lines 688–799",
             KB, "torch issue #126514"),
    derive=_rearrangements, counterfeit=_rearrangements_wrong, default_steps=1, uses_steps=False,
)

THEOREMS = (ADAM_FIRST_STEP, BIAS_CORRECTION, ADAM_EPS_HAT, ADAM_L2_VS_ADAMW, ADAMW_DECAY_SCALING,
            ADAMW_EMA_TIMESCALE, TORCH_REARRANGEMENTS)
