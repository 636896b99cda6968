"""Probes: named faults and conventions no registered rule states, as hypotheses.

When neither the expected variant nor any other registered variant reproduces a target, the
auditor tries these, each a one-change mutation of the expected variant stated with the same
symbolic transforms (so its reference and bound come out of the same machinery):

```text
==============================  ==================================================================
probe                           what the target does instead
==============================  ==================================================================
``~eps-inside``                 Adam family: m̂/√(v̂ + ε) (ε inside the root)
``~eps-floor``                  Adam family and NAdam: ε as a floor of the root, max(√v̂, ε)
                                (heavyball)
``~no-m-correction``            m̂ = m (first-moment bias correction missing)
``~no-v-correction``            v̂ = v (second-moment bias correction missing)
``~no-corrections``             neither moment bias-corrected
``~amsgrad-max-of-vhat``        AMSGrad maximum over the bias-corrected v̂ (optax's form)
``~dampened-start``             SGD: the first step dampened, b₁ = (1 − τ)g₁
``~nesterov-stale``             SGD Nesterov with the previous buffer: θ −= γ(g + μbₜ₋₁)
``~lr-decay-off-by-one``        Adagrad: γₜ = γ/(1 + tκ)
``~eps-outside``                Adadelta: (√u + ε)/(√v + ε)
``~maximize-ignored``           the expected rule with maximize=False
``~amsgrad-ignored``            the expected rule with amsgrad=False (a keyword taken and dropped)
``~step-per-parameter``         one counter advanced once per parameter tensor: tensor i of n
                                uses t' = n(t − 1) + i + 1 in its bias corrections
``~shared-state``               one state (m, v, …) shared by all parameter tensors, threaded
                                through them in order
``~shared-state+step-per-param`` both: the widely copied tutorial Adam (one m and v for all
                                parameters, β₁ᵗ, β₂ᵗ multiplied once per parameter)
``~state-float32``              state rounded to float32 after every step (float64 audits)
``~hyper-float32``              hyperparameters cast to float32 before the per-step scalars
                                are computed (a framework that does so by design, Keras or
                                optax, is judged under its precision model instead:
                                `Adapter.rounding`)
``~lr-float32``                 the learning rate held in float32 (float64 audits: a float32
                                learning-rate variable)
``~scalars-float32``            per-step scalars (NAdam's ``mu_product`` and what is built on
                                it) held in float32 for float64 parameters (torch.optim.NAdam)
==============================  ==================================================================
```
"""

from __future__ import annotations

import sympy as sp

from optproof.derivations import Spec, rule
from optproof.derivations.symbols import hyper, t
from optproof.derivations.transforms import (DECAYED_LR, add_decayed_weights, adam_moments,
                                             bias_correct, chain, descend, divide_by_root, ema,
                                             nadam_schedule, negate_if, prepare_gradient,
                                             running_max, scale_by_adagrad, scale_by_lr,
                                             scale_by_nadam)

from .evaluate import Hypothesis
from .families import IMPLIED

__all__ = ["probes_for", "structural_probes"]

LR, B1, B2, EPS, WD = (hyper(k) for k in ("lr", "betas[0]", "betas[1]", "eps", "weight_decay"))
MU, TAU, KAPPA, S0, RHO = (hyper(k) for k in ("momentum", "dampening", "lr_decay",
                                              "initial_accumulator_value", "rho"))
PSI = hyper("momentum_decay")


def _spec(base: Spec, suffix: str, summary: str, build) -> Spec:
    return Spec(name=f"{base.name}~{suffix}", summary=summary, sources=base.sources,
                mirrors=base.mirrors, defaults=base.defaults, build=build, flags=base.flags,
                family=base.family)


def _adam_start(base: Spec, f):
    if IMPLIED.get(base.name, {}).get("decoupled_weight_decay"):
        scale = None if base.name.endswith("fully-decoupled") else LR
        return chain(negate_if(f["maximize"]), add_decayed_weights(WD, scale))
    return prepare_gradient(WD, LR, maximize=f["maximize"],
                            decoupled=f.get("decoupled_weight_decay", False))


def _adam_probe(base: Spec, suffix: str, summary: str, *, eps_inside=False, correct_m=True,
                correct_v=True, max_of_vhat=False, eps_floor=False) -> Spec:
    def build(f):
        def direction(b):
            amsgrad = f.get("amsgrad", False)
            m, v = adam_moments(b, B1, B2, amsgrad=amsgrad and not max_of_vhat)
            mh = bias_correct(b, m, B1, "m") if correct_m else m
            vh = bias_correct(b, v, B2, "v") if correct_v else v
            if amsgrad and max_of_vhat:
                vh = running_max(b, "max_exp_avg_sq", "vtilde", vh, "maximum of v̂")
            divide_by_root(b, mh, vh, EPS, eps_inside=eps_inside, eps_floor=eps_floor)
        return chain(_adam_start(base, f), direction, scale_by_lr(LR))
    return _spec(base, suffix, summary, build)


def _sgd_probe(base: Spec, suffix: str, summary: str, *, dampened_start=False,
               stale_nesterov=False) -> Spec:
    decoupled_always = base.name == "sgdw"

    def build(f):
        def momentum(b):
            mu, tau = b.hyper(MU), b.hyper(TAU)
            buf = b.state("momentum_buffer", "b", "momentum buffer", exists=sp.Ne(mu, 0))
            first = sp.Eq(mu, 0) if dampened_start else (sp.Eq(t, 1) | sp.Eq(mu, 0))
            tau_t = b.let(sp.Symbol("tau_t", real=True), sp.Piecewise((0, first), (tau, True)))
            grad = b.update
            b.let(buf.new, mu * buf.prev + (1 - tau_t) * grad, "momentum buffer")
            if f.get("nesterov"):
                look = buf.prev if stale_nesterov else buf.new
                b.update = b.let(b.update, grad + mu * look, "Nesterov")
            else:
                b.update = buf.new
        return chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                      decoupled=decoupled_always or f.get("decoupled_weight_decay", False)),
                     momentum, descend(LR))
    return _spec(base, suffix, summary, build)


def _adagrad_off_by_one(base: Spec) -> Spec:
    def build(f):
        def decay(b):
            b.let(DECAYED_LR, b.hyper(LR) / (1 + t * b.hyper(KAPPA)), "lr decay (off by one)")
        return chain(decay, prepare_gradient(WD, DECAYED_LR, maximize=f["maximize"],
                                             decoupled=f.get("decoupled_weight_decay", False)),
                     scale_by_adagrad(EPS, S0, eps_inside=False), descend(DECAYED_LR))
    return _spec(base, "lr-decay-off-by-one", "Adagrad with γₜ = γ/(1 + tκ)", build)


def _nadam_eps_floor(base: Spec) -> Spec:
    def build(f):
        return chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                      decoupled=f["decoupled_weight_decay"]),
                     nadam_schedule(B1, PSI), scale_by_nadam(B1, B2, EPS, eps_floor=True),
                     descend(LR))
    return _spec(base, "eps-floor", "NAdam with ε as a floor of the root", build)


def _adadelta_eps_outside(base: Spec) -> Spec:
    def build(f):
        def direction(b):
            grad = b.update
            v = ema(b, "square_avg", "v", RHO, grad**2, "EMA of squared gradients", nonnegative=True)
            acc = b.state("acc_delta", "u", "EMA of squared updates", nonnegative=True)
            e = b.hyper(EPS)
            delta = b.let(sp.Symbol("Delta_t", real=True),
                          (sp.sqrt(acc.prev) + e) / (sp.sqrt(v) + e) * grad, "ε outside")
            ema(b, "acc_delta", "u", RHO, delta**2, "EMA of squared updates")
            b.update = delta
        return chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                      decoupled=f.get("decoupled_weight_decay", False)),
                     direction, descend(LR))
    return _spec(base, "eps-outside", "Adadelta with ε outside the roots", build)


def _h(spec: Spec, fault: str, axis: str, value: str, base: Spec, **kw) -> Hypothesis:
    return Hypothesis(spec.name, spec, kind="probe", fault=fault,
                      implied=IMPLIED.get(base.name, {}), conventions={axis: value}, **kw)


def _amsgrad(config) -> bool:
    return bool(config.hyper.get("amsgrad"))


def probes_for(expected: str) -> list[Hypothesis]:
    """The rule-specific probes for a target expected to follow ``expected``."""
    base = rule(expected)
    out: list[Hypothesis] = []
    if base.family in ("adam", "adamw") and base.name != "adam:amsgrad-reddi" \
            and base.name != "adam:eps-hat":
        out += [
            _h(_adam_probe(base, "eps-inside", "ε inside the root", eps_inside=True),
               "ε inside the square root: m̂/√(v̂ + ε) instead of m̂/(√v̂ + ε)",
               "epsilon", "inside the root: m̂/√(v̂ + ε) (fault)", base),
            _h(_adam_probe(base, "eps-floor", "ε as a floor of the root", eps_floor=True),
               "ε as a floor of the root: m̂/max(√v̂, ε) instead of m̂/(√v̂ + ε) (heavyball)",
               "epsilon", "a floor of the root: m̂/max(√v̂, ε)", base),
            _h(_adam_probe(base, "no-m-correction", "m not bias-corrected", correct_m=False),
               "first-moment bias correction 1/(1 − β₁ᵗ) missing",
               "bias correction", "second moment only (fault)", base),
            _h(_adam_probe(base, "no-v-correction", "v not bias-corrected", correct_v=False),
               "second-moment bias correction 1/(1 − β₂ᵗ) missing",
               "bias correction", "first moment only (fault)", base),
            _h(_adam_probe(base, "no-corrections", "no bias corrections", correct_m=False,
                           correct_v=False),
               "both bias corrections missing", "bias correction", "none (fault)", base),
            _h(_adam_probe(base, "amsgrad-max-of-vhat", "AMSGrad max of v̂", max_of_vhat=True),
               "AMSGrad maximum taken in the wrong place: over the bias-corrected v̂ₜ instead "
               "of the raw vₜ (optax's form)", "AMSGrad", "max of the bias-corrected v̂ (fault)",
               base, needs=_amsgrad),
        ]
    if base.family in ("sgd", "sgdw"):
        out += [
            _h(_sgd_probe(base, "dampened-start", "dampening at t = 1", dampened_start=True),
               "dampening applied at the first step: b₁ = (1 − τ)g₁ instead of b₁ = g₁",
               "momentum", "b₁ = (1 − τ)g₁ (fault)", base,
               needs=lambda c: bool(c.hyper.get("dampening"))),
            _h(_sgd_probe(base, "nesterov-stale", "Nesterov on bₜ₋₁", stale_nesterov=True),
               "wrong Nesterov form: θ −= γ(g + μbₜ₋₁) with the previous buffer instead of "
               "θ −= γ(g + μbₜ)", "momentum", "Nesterov on bₜ₋₁ (fault)", base,
               needs=lambda c: bool(c.hyper.get("nesterov"))),
        ]
    if base.name == "adagrad":
        out.append(_h(_adagrad_off_by_one(base), "learning-rate decay off by one: "
                      "γₜ = γ/(1 + tκ) instead of γ/(1 + (t − 1)κ)", "learning-rate decay",
                      "γₜ = γ/(1 + tκ) (fault)", base,
                      needs=lambda c: bool(c.hyper.get("lr_decay"))))
    if base.name == "nadam":
        out.append(_h(_nadam_eps_floor(base), "ε as a floor of the root: max(√v̂, ε) instead "
                      "of √v̂ + ε (heavyball)", "epsilon", "a floor of the root: max(√v̂, ε)",
                      base))
    if base.name == "adadelta":
        out.append(_h(_adadelta_eps_outside(base), "ε outside the roots: (√u + ε)/(√v + ε)",
                      "epsilon", "outside the roots (fault)", base))
    return out


def structural_probes(expected: str, dtype: str) -> list[Hypothesis]:
    """Faults of bookkeeping rather than arithmetic, for any rule."""
    base = rule(expected)
    implied = IMPLIED.get(base.name, {})
    per_param = lambda t_, i, n: n * (t_ - 1) + i + 1  # noqa: E731
    out = [
        Hypothesis(f"{base.name}~maximize-ignored", base, kind="probe",
                   fault="maximize ignored: the target descends when asked to ascend",
                   flags={"maximize": False}, implied=implied,
                   conventions={"maximize": "ignored (fault)"},
                   needs=lambda c: bool(c.hyper.get("maximize"))),
        *([Hypothesis(f"{base.name}~amsgrad-ignored", base, kind="probe",
                      fault="amsgrad ignored: the target takes the keyword and runs plain Adam",
                      flags={"amsgrad": False}, implied=implied,
                      conventions={"AMSGrad": "ignored (fault)"}, needs=_amsgrad)]
          if "amsgrad" in base.flags else []),
        Hypothesis(f"{base.name}~step-per-parameter", base, kind="probe",
                   fault="step counter advanced once per parameter tensor instead of once per "
                         "step (tensor i of n at step t uses t' = n(t − 1) + i + 1)",
                   step_map=per_param, implied=implied,
                   conventions={"step counter": "advanced per parameter (fault)"}),
        Hypothesis(f"{base.name}~shared-state", base, kind="probe",
                   fault="one state shared by all parameter tensors (moments not kept per "
                         "parameter)", shared_state=True, implied=implied,
                   conventions={"state": "shared by all parameters (fault)"}),
        Hypothesis(f"{base.name}~shared-state+step-per-param", base, kind="probe",
                   fault="moments shared by all parameters (one m and v for all tensors) and "
                         "bias-correction powers β₁ᵗ, β₂ᵗ advanced once per parameter instead of "
                         "once per step (the widely copied tutorial Adam)",
                   shared_state=True, step_map=per_param, implied=implied,
                   conventions={"state": "shared by all parameters (fault)",
                                "step counter": "advanced per parameter (fault)"}),
    ]
    if dtype == "float64" and any(st.per_step for st in base.program(
            **{f: bool(base.defaults[f]) for f in base.flags}).states):
        out.append(Hypothesis(f"{base.name}~scalars-float32", base, kind="probe",
                              fault="per-step scalars held in float32 for float64 parameters "
                                    "(the per-tensor mu_product is a float32 tensor: the "
                                    "product and the corrections built on it carry float32 "
                                    "rounding into every step)",
                              scalar_state_dtype="float32", implied=implied,
                              conventions={"state precision": "mu_product in float32"}))
    if dtype in ("float32", "float64"):
        out.append(Hypothesis(f"{base.name}~hyper-float32", base, kind="probe",
                              fault="hyperparameters (β, ε, λ, lr) cast to float32 before the "
                                    "per-step scalars are computed (1 − β₂ᵗ from a float32 β₂ "
                                    "loses digits to cancellation at small t)",
                              hyper_dtype="float32", implied=implied,
                              conventions={"hyperparameter precision": "float32"}))
    if dtype == "float64":
        out.append(Hypothesis(f"{base.name}~lr-float32", base, kind="probe",
                              fault="learning rate held in float32 (a float32 learning-rate "
                                    "variable) for float64 parameters", hyper_dtype="float32",
                              hyper_keys=frozenset({"lr"}), implied=implied,
                              conventions={"learning-rate precision": "float32"}))
        out.append(Hypothesis(f"{base.name}~state-float32", base, kind="probe",
                              fault="internal state kept in float32 for float64 parameters",
                              state_dtype="float32", implied=implied,
                              conventions={"state precision": "float32 (fault)"}))
    return out
