"""Theorems of the SGD family, proved from the specs ``sgd``, ``sgdw`` and ``sgd:sutskever``
(and, for the EMA form of momentum vₜ = βvₜ₋₁ + (1 − β)gₜ, from the generic transforms).

Sources: Sutskever, Martens, Dahl & Hinton, "On the importance of initialization and momentum
in deep learning", ICML 2013, eq. (1)–(4); Loshchilov & Hutter, "Decoupled Weight Decay
Regularization", ICLR 2019, Algorithm 1 and §2 (L2 ≡ decoupled decay for plain SGD only);
torch 2.13.0 ``torch/optim/sgd.py`` (``_single_tensor_sgd``); Keras 3
``keras/src/optimizers/sgd.py``.
"""

from __future__ import annotations

import random

import sympy as sp

from ..program import Line
from ..spec import Spec, rule
from ..symbols import hyper
from ..transforms import chain, descend, ema, prepare_gradient
from ..unroll import unroll
from .common import H, collected, reference_check, runs_compare, witness
from .core import Check, Claim, Equations, Text, Theorem

GAMMA, LAM, MU, TAU, BETA = (H(k) for k in ("lr", "weight_decay", "momentum", "dampening",
                                            "betas[0]"))
MU_POS = sp.Symbol("mu", positive=True)  # μ > 0: the momentum case (torch keeps a buffer)
TORCH = "torch 2.13.0 torch/optim/sgd.py"
SUTSKEVER = "Sutskever, Martens, Dahl & Hinton 2013, eq. (1)–(4)"
LH = "Loshchilov & Hutter 2019, Decoupled Weight Decay Regularization, Algorithm 1 and §2"


# ------------------------------------------------------------------------------ EMA-form momentum

def _ema_trace(beta):
    """vₜ ← βvₜ₋₁ + (1 − β)·uₜ, the update becomes vₜ (transforms.ema)."""

    def apply(b):
        b.update = ema(b, "momentum_buffer", "v", beta, b.update, "EMA momentum")

    return apply


def _ema_momentum(decoupled: bool) -> Spec:
    """Momentum as an EMA of the gradient, θ ← θ − γvₜ, with L2 or decoupled (γλ) decay: the
    form of many textbooks and blog derivations (and Adam's first moment without correction).
    Not a registered rule: it is built here from the generic transforms for the theorem."""
    wd, lr, beta = hyper("weight_decay"), hyper("lr"), hyper("betas[0]")
    return Spec(
        name=f"momentum:ema{':decoupled' if decoupled else ''}",
        summary="EMA momentum vₜ = βvₜ₋₁ + (1 − β)gₜ, θ ← θ − γvₜ",
        sources=("textbook EMA momentum",), mirrors="(none)",
        defaults={"lr": 0.01, "betas": (0.9,), "weight_decay": 0.0},
        build=lambda f: chain(prepare_gradient(wd, lr, maximize=False, decoupled=decoupled),
                              _ema_trace(beta), descend(lr)),
    )


EMA_L2, EMA_DECOUPLED = _ema_momentum(False), _ema_momentum(True)


# ------------------------------------------------------------------------------ sgd-l2-equals-decoupled

def _plain(k: int, name: str, **flags):
    return unroll(rule(name).program(**flags), k, vary=["lr"], given={MU: 0})


def _sgd_l2(k: int) -> list:
    l2, dec = _plain(k, "sgd"), _plain(k, "sgdw")
    flag = _plain(k, "sgd", decoupled_weight_decay=True)
    th, gs, gam = l2.theta, l2.grads, l2.hyper["lr"]
    one = l2.closed(step=1)
    return [
        Text("Plain SGD (momentum 0) with L2 coefficient λ steps θₜ = θₜ₋₁ − γₜ(gₜ + λθₜ₋₁) "
             "= (1 − γₜλ)θₜ₋₁ − γₜgₜ: exactly a decoupled decay by the factor γₜλ followed by the "
             "plain step. torch's lr-scaled decoupled form (`sgdw`, or `sgd` with "
             "decoupled_weight_decay=True) multiplies by 1 − γₜλ, so the correspondence is "
             "the same number λ, under any learning-rate schedule; a decay independent of the "
             "learning rate (fully decoupled, θ ← θ(1 − d)) needs dₜ = γₜλ."),
        Equations(f"sgd, momentum 0, L2, {k} steps (γₜ varies)", l2.lines()),
        Equations(f"sgdw, momentum 0, {k} steps", dec.lines()),
        Claim("one step: L2 is a decoupled decay by γλ", one,
              (1 - gam[0] * LAM) * th[0] - gam[0] * gs[0],
              names=("θ₁ of sgd", "(1 − γ₁λ)θ₀ − γ₁g₁")),
        Claim(f"sgd(λ) ≡ sgdw(λ) over {k} steps of any schedule", l2.closed(), dec.closed(),
              names=(f"θ_{k} of sgd", f"θ_{k} of sgdw")),
        Claim("the flag decoupled_weight_decay=True is sgdw", flag.closed(), dec.closed(),
              names=(f"θ_{k} of sgd(decoupled_weight_decay=True)", f"θ_{k} of sgdw")),
        *_momentum_breaks(),
    ]


def _momentum_breaks() -> list:
    l2 = unroll(rule("sgd").program(), 2, given={MU: MU_POS, TAU: 0})
    dec = unroll(rule("sgdw").program(), 2, given={MU: MU_POS, TAU: 0})
    a, b = l2.closed(), dec.closed()
    return [Text("With momentum μ > 0 the correspondence breaks from the second step (the L2 "
                 "term enters the buffer; see `momentum-l2-vs-decoupled`):"),
            Claim("with momentum μ > 0, sgd(λ) ≢ sgdw(λ) at step 2", a, b, equal=False,
                  witness=witness([a, b]), names=("θ₂ of sgd", "θ₂ of sgdw"))]


def _sgd_l2_wrong(k: int) -> list[Claim]:
    l2, dec = _plain(k, "sgd"), _plain(k, "sgdw")
    # "decoupled decay γλ" misread as sgdw's weight_decay = γλ (scaled twice)
    twice = dec.closed().xreplace({LAM: l2.hyper["lr"][0] * LAM})
    return [Claim("sgd(λ) ≡ sgdw(γλ)", l2.closed(), twice),
            Claim("sgd(λ) ≢ sgdw(λ)", l2.closed(), dec.closed(), equal=False,
                  witness=witness([l2.closed(), dec.closed()]))]


def _sgd_l2_check(rng: random.Random, k: int) -> list[Check]:
    lr = [rng.uniform(0.01, 0.5) for _ in range(max(k, 2))]  # momentum differs from step 2
    h = {"lr": lr[:k], "weight_decay": rng.uniform(0.05, 0.5)}
    m = {**h, "lr": lr, "momentum": 0.9}
    return [runs_compare("sgd vs sgdw (momentum 0, schedule)", ("sgd", h), ("sgdw", h), k, rng),
            reference_check("sgd (momentum 0)", _plain(k, "sgd"), "sgd", h, rng),
            runs_compare("sgd vs sgdw (momentum 0.9)", ("sgd", m), ("sgdw", m), max(k, 2), rng,
                         agree=False)]


SGD_L2_EQUALS_DECOUPLED = Theorem(
    name="sgd-l2-equals-decoupled",
    title="Plain SGD with L2 coefficient λ is SGD with decoupled decay γλ",
    statement="For momentum 0 and any schedule γₜ: `sgd` with weight_decay λ and `sgdw` with "
              "weight_decay λ (decay factor 1 − γₜλ per step) give the same θ_k for every k; a "
              "learning-rate-independent decay d must be dₜ = γₜλ. With momentum μ > 0 they "
              "differ from step 2.",
    sources=(LH, TORCH, "timm optim/sgdw.py"),
    derive=_sgd_l2, counterfeit=_sgd_l2_wrong, crosscheck=_sgd_l2_check,
    default_steps=3, max_steps=10,
)


# ------------------------------------------------------------------------------ momentum-l2-vs-decoupled

def _forms(k: int):
    """(name, L2 unrolled, decoupled unrolled, weights w_{k,i}, reference specs)."""
    given = {MU: MU_POS}
    torch_l2 = unroll(rule("sgd").program(), k, given=given)
    torch_dec = unroll(rule("sgdw").program(), k, given=given)
    w_torch = [MU_POS ** (k - 1)] + [(1 - TAU) * MU_POS ** (k - i) for i in range(2, k + 1)]
    ema_l2 = unroll(EMA_L2.program(), k)
    ema_dec = unroll(EMA_DECOUPLED.program(), k)
    w_ema = [(1 - BETA) * BETA ** (k - i) for i in range(1, k + 1)]
    return [("torch (bₜ = μbₜ₋₁ + (1 − τ)gₜ, b₁ = g₁)", torch_l2, torch_dec, w_torch,
             ("sgd", "sgdw")),
            ("EMA (vₜ = βvₜ₋₁ + (1 − β)gₜ, v₀ = 0)", ema_l2, ema_dec, w_ema,
             (EMA_L2, EMA_DECOUPLED))]


def _expansions(l2, dec, w, swap=False):
    """The statements: L2 accumulates λθᵢ₋₁ with the buffer's weights; decoupled applies
    γλθ_{k−1} once. ``swap``: the blog's version, the two exchanged."""
    k, th, gs = l2.k, l2.theta, l2.grads
    gamma = GAMMA
    accumulated = th[k - 1] - gamma * sp.Add(*[w[i] * (gs[i] + LAM * th[i]) for i in range(k)])
    direct = th[k - 1] - gamma * LAM * th[k - 1] - gamma * sp.Add(*[w[i] * gs[i] for i in range(k)])
    return (direct, accumulated) if swap else (accumulated, direct)


def _momentum(k: int) -> list:
    blocks = [Text(
        "Unroll k steps of momentum SGD with L2 decay (`sgd`, the decay λθₜ₋₁ added to the "
        "gradient) and with decoupled decay (`sgdw`, θ ← θ(1 − γλ) before the step), keeping "
        "the earlier parameters θ₀ … θ_{k−1} as symbols. With w_{k,i} the weight the buffer "
        "gives gᵢ at step k: in the L2 version the decay term λθᵢ₋₁ enters the buffer and is "
        "accumulated with the same weights w_{k,i} (torch: μ^{k−1} for i = 1, (1 − τ)μ^{k−i} "
        "after; EMA: (1 − β)β^{k−i}); in the decoupled version it is applied once per step, directly. The widely "
        "copied blog derivation swaps the two expansions; the negative control below shows the "
        "swapped statements are false.")]
    for name, l2, dec, w, _ in _forms(k):
        keep_l2, keep_dec = l2.theta[1:k], dec.theta[1:k]
        rename = dict(zip(keep_dec, keep_l2))  # both histories θ₁ … θ_{k−1}: the same symbols
        a, b = _expansions(l2, dec, w)
        step_l2 = l2.closed(keep=keep_l2)
        step_dec = dec.closed(keep=keep_dec).xreplace(rename)
        diff = -GAMMA * LAM * (sp.Add(*[w[i] * l2.theta[i] for i in range(k)]) - l2.theta[k - 1])
        full_l2, full_dec = l2.closed(), dec.closed()
        inputs = [l2.theta[0], *l2.grads]
        exact = collected(full_l2 - full_dec, inputs)
        weights = tuple(Line(sp.Symbol(f"w_{k},{i + 1}"), w[i]) for i in range(k))
        blocks += [
            Text(f"**{name}**"),
            Equations(f"L2, {k} steps", l2.lines()),
            Equations(f"decoupled, {k} steps", dec.lines()),
            Equations("the buffer's weights", weights, relation="="),
            Claim(f"{name}, L2: λθᵢ₋₁ is accumulated with the weights w_{{k,i}}", step_l2, a,
                  names=(f"θ_{k} (L2) in terms of θ₀ … θ_{k - 1}",
                         f"θ_{k - 1} − γΣᵢ w_{k},ᵢ(gᵢ + λθᵢ₋₁)")),
            Claim(f"{name}, decoupled: γλθ_{{k−1}} is applied directly", step_dec, b,
                  names=(f"θ_{k} (decoupled)", f"θ_{k - 1} − γλθ_{k - 1} − γΣᵢ w_{k},ᵢgᵢ")),
            Claim(f"{name}: the difference of the k-th steps (same history)", step_l2 - step_dec,
                  diff, names=("L2 − decoupled", "−γλ(Σᵢ w_{k,i}θᵢ₋₁ − θ_{k−1})")),
            Equations(f"L2: θ_{k} in terms of θ₀, g₁ … g_{k}",
                      (Line(l2.theta[k], collected(full_l2, inputs)),), relation="="),
            Equations(f"decoupled: θ_{k} in terms of θ₀, g₁ … g_{k}",
                      (Line(l2.theta[k], collected(full_dec, inputs)),), relation="="),
            Equations(f"their exact difference Δ_{k} = θ_{k}(L2) − θ_{k}(decoupled)",
                      (Line(sp.Symbol(f"Delta_{k}"), exact),), relation="="),
        ]
        if k >= 2:
            blocks.append(Claim(f"{name}: L2 ≢ decoupled after {k} steps", full_l2, full_dec,
                                equal=False, witness=witness([full_l2, full_dec]),
                                names=(f"θ_{k} (L2)", f"θ_{k} (decoupled)"), show=False))
    return blocks


def _momentum_wrong(k: int) -> list[Claim]:
    out = []
    for name, l2, dec, w, _ in _forms(k):
        keep_l2, keep_dec = l2.theta[1:k], dec.theta[1:k]
        rename = dict(zip(keep_dec, keep_l2))
        a, b = _expansions(l2, dec, w, swap=True)
        out += [Claim(f"blog: {name}, L2 applies the decay directly", l2.closed(keep=keep_l2), a),
                Claim(f"blog: {name}, decoupled accumulates the decay",
                      dec.closed(keep=keep_dec).xreplace(rename), b)]
    return out


def _momentum_check(rng: random.Random, k: int) -> list[Check]:
    checks = []
    mu, tau, lr, lam = (rng.uniform(0.1, 0.95), rng.uniform(0, 0.9), rng.uniform(0.01, 0.5),
                        rng.uniform(0.05, 0.5))
    for name, l2, dec, _, (spec_l2, spec_dec) in _forms(k):
        if spec_l2 == "sgd":
            h = {"lr": lr, "momentum": mu, "dampening": tau, "weight_decay": lam}
            extra = {MU_POS: mu}
        else:
            h, extra = {"lr": lr, "betas": (mu,), "weight_decay": lam}, {}
        short = name.split(" ")[0]
        checks += [reference_check(f"{short} L2", l2, spec_l2, h, rng, extra=extra),
                   reference_check(f"{short} decoupled", dec, spec_dec, h, rng, extra=extra)]
    return checks


MOMENTUM_L2_VS_DECOUPLED = Theorem(
    name="momentum-l2-vs-decoupled",
    title="Momentum with L2 decay vs decoupled decay, unrolled k steps",
    statement="For torch momentum (b₁ = g₁, bₜ = μbₜ₋₁ + (1 − τ)gₜ) and EMA momentum "
              "(vₜ = βvₜ₋₁ + (1 − β)gₜ), with w_{k,i} the buffer's weight of gᵢ at step k: L2 gives "
              "θ_k = θ_{k−1} − γΣᵢ w_{k,i}(gᵢ + λθᵢ₋₁) (the decay accumulated with the momentum "
              "weights), decoupled gives θ_k = (1 − γλ)θ_{k−1} − γΣᵢ w_{k,i}gᵢ (applied directly); "
              "their difference is −γλ(Σᵢ w_{k,i}θᵢ₋₁ − θ_{k−1}); the blog version swaps the two.",
    sources=(LH, TORCH, SUTSKEVER),
    derive=_momentum, counterfeit=_momentum_wrong, crosscheck=_momentum_check,
    default_steps=3, max_steps=6,
)


# ------------------------------------------------------------------------------ torch-momentum-equals-sutskever

def _pair(k: int, nesterov: bool, schedule: bool, lam=None):
    given = {MU: MU_POS, TAU: 0}
    if lam is not None:
        given[LAM] = lam
    vary = ["lr"] if schedule else []
    a = unroll(rule("sgd").program(nesterov=nesterov), k, given=given, vary=vary)
    b = unroll(rule("sgd:sutskever").program(nesterov=nesterov), k, given=given, vary=vary)
    return a, b


def _sutskever(k: int) -> list:
    blocks = [Text(
        "torch: bₜ = μbₜ₋₁ + gₜ, θₜ = θₜ₋₁ − γₜbₜ (Nesterov θₜ = θₜ₋₁ − γₜ(gₜ + μbₜ)); Sutskever / "
        "Keras: vₜ = μvₜ₋₁ − γₜgₜ, θₜ = θₜ₋₁ + vₜ (Nesterov θₜ = θₜ₋₁ + μvₜ − γₜgₜ); both with "
        "dampening 0 and any L2 coefficient λ. At a constant γ the velocity is vₜ = −γbₜ and "
        "the parameters coincide; under a schedule torch scales every past gradient by the "
        "current γₜ, Sutskever by the γᵢ of its own step.")]
    for nesterov in (False, True):
        kind = "Nesterov" if nesterov else "plain"
        a, b = _pair(k, nesterov, False)
        blocks += [
            Equations(f"{kind}: sgd, {k} steps", a.lines()),
            Equations(f"{kind}: sgd:sutskever, {k} steps", b.lines()),
            Claim(f"{kind}, constant γ: the parameters coincide", a.closed(), b.closed(),
                  names=(f"θ_{k} of sgd", f"θ_{k} of sgd:sutskever")),
            Claim(f"{kind}, constant γ: the buffers correspond, v = −γb",
                  b.closed("momentum_buffer"), -GAMMA * a.closed("momentum_buffer"),
                  names=(f"v_{k} of sgd:sutskever", f"−γ·b_{k} of sgd")),
        ]
        if k >= 2:
            sa, sb = _pair(k, nesterov, True)
            x, y = sa.closed(), sb.closed()
            pa, pb = _pair(2, nesterov, True, lam=0)
            gam = pa.hyper["lr"]
            blocks += [
                Claim(f"{kind}, schedule γ₁ ≠ γ₂: they differ", x, y, equal=False,
                      witness=witness([x, y], gamma_1=sp.Rational(1, 10), gamma_2=sp.Rational(1, 5),
                                      **{f"gamma_{i}": sp.Rational(1, 10) for i in range(3, k + 1)}),
                      names=(f"θ_{k} of sgd", f"θ_{k} of sgd:sutskever"), show=False),
                Claim(f"{kind}, λ = 0: the residual after two steps", pa.closed() - pb.closed(),
                      MU_POS ** (2 if nesterov else 1) * pa.grads[0] * (gam[0] - gam[1]),
                      names=("θ₂(sgd) − θ₂(sgd:sutskever)",
                             "μ²g₁(γ₁ − γ₂)" if nesterov else "μg₁(γ₁ − γ₂)")),
            ]
    a, b = _pair(k, False, True, lam=0)
    gam, gs, th0 = a.hyper["lr"], a.grads, a.theta[0]
    torch_sum = th0 - sp.Add(*[gam[s - 1] * MU_POS ** (s - i) * gs[i - 1]
                               for s in range(1, k + 1) for i in range(1, s + 1)])
    sutskever_sum = th0 - sp.Add(*[gam[i - 1] * MU_POS ** (s - i) * gs[i - 1]
                                   for s in range(1, k + 1) for i in range(1, s + 1)])
    blocks += [
        Text("Plain, λ = 0, any schedule — which learning rate multiplies each gradient:"),
        Claim("torch: gᵢ enters step s scaled by γₛ (the current rate)", a.closed(), torch_sum,
              names=(f"θ_{k} of sgd", "θ₀ − Σₛ Σ_{i≤s} γₛ μ^{s−i} gᵢ")),
        Claim("Sutskever: gᵢ enters step s scaled by γᵢ (its own rate)", b.closed(), sutskever_sum,
              names=(f"θ_{k} of sgd:sutskever", "θ₀ − Σₛ Σ_{i≤s} γᵢ μ^{s−i} gᵢ")),
    ]
    return blocks


def _sutskever_wrong(k: int) -> list[Claim]:
    k = max(k, 2)
    a, b = _pair(k, False, True)
    c, d = _pair(k, True, False)
    return [Claim("equal under a schedule", a.closed(), b.closed()),
            Claim("Nesterov buffers v = γb", d.closed("momentum_buffer"),
                  GAMMA * c.closed("momentum_buffer")),
            Claim("differ at constant γ", c.closed(), d.closed(), equal=False,
                  witness=witness([c.closed(), d.closed()]))]


def _sutskever_check(rng: random.Random, k: int) -> list[Check]:
    checks = []
    mu, lr, lam = rng.uniform(0.1, 0.95), rng.uniform(0.01, 0.5), rng.uniform(0, 0.3)
    sched = [rng.uniform(0.01, 0.5) for _ in range(max(k, 2))]
    for nesterov in (False, True):
        h = {"lr": lr, "momentum": mu, "weight_decay": lam, "nesterov": nesterov}
        checks.append(runs_compare(f"sgd vs sgd:sutskever (nesterov={nesterov}, constant lr)",
                                   ("sgd", h), ("sgd:sutskever", h), k, rng))
        hs = {**h, "lr": sched}
        checks.append(runs_compare(f"sgd vs sgd:sutskever (nesterov={nesterov}, schedule)",
                                   ("sgd", hs), ("sgd:sutskever", hs), max(k, 2), rng, agree=False))
        a, b = _pair(k, nesterov, False)
        checks.append(reference_check(f"sgd:sutskever (nesterov={nesterov})", b, "sgd:sutskever",
                                      h, rng, extra={MU_POS: mu}))
    return checks


TORCH_MOMENTUM_EQUALS_SUTSKEVER = Theorem(
    name="torch-momentum-equals-sutskever",
    title="torch's momentum equals Sutskever's (Keras) form at constant lr, with v = −γb",
    statement="With dampening 0, μ > 0 and any λ: at constant γ, `sgd` and `sgd:sutskever` give "
              "the same θ_k and vₜ = −γbₜ for every k (plain and Nesterov); under a schedule they "
              "differ from step 2 (θ₂ − θ₂' = μg₁(γ₁ − γ₂), Nesterov μ²g₁(γ₁ − γ₂), at λ = 0): torch scales gᵢ at "
              "step s by γₛ, Sutskever by γᵢ.",
    sources=(SUTSKEVER, TORCH, "Keras 3 keras/src/optimizers/sgd.py"),
    derive=_sutskever, counterfeit=_sutskever_wrong, crosscheck=_sutskever_check,
    default_steps=3, max_steps=4,
)

THEOREMS = (SGD_L2_EQUALS_DECOUPLED, MOMENTUM_L2_VS_DECOUPLED, TORCH_MOMENTUM_EQUALS_SUTSKEVER)
