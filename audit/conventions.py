"""The conventions each registered variant follows, by axis (``CONVENTIONS.md``), and the
evidence that measured them on a target.

When a hypothesis reproduces a target, its row is what the target *may* follow; an axis is
reported as measured only when the audit has the evidence (`axis_evidence`):

1. a configuration that **exercises** the axis ran (`EXERCISED`: λ ≠ 0 for weight decay,
   μ ≠ 0 for momentum, ``amsgrad`` for AMSGrad, κ ≠ 0 for Adagrad's lr decay, maximize for
   ``maximize``, several tensors of one shape for shared state; an axis every step
   exercises — ε, bias correction, the NAdam schedule — needs any configuration); a
   configuration that leaves the axis out (wd = 0) cannot tell its alternatives apart, since
   their predictions coincide there;
2. the claimed value reproduces every such run it was compared on, and **every alternative**
   (a hypothesis choosing differently on the axis; where some differ on this axis alone,
   those) failed one of them, or cannot express one (optax's trace has no dampening: torch's
   momentum, reproducing a τ = ½ run, is not it; at τ = 0 the two coincide).

Otherwise the axis is "not measured", with the reason: no configuration exercises it,
every one that does was skipped (and why: "the target rejected weight_decay"), or an
alternative reproduces every run that exercised it, or was never compared on one.

Without a hypothesis that reproduces the target (nothing explains it), the claimed value of
an axis is the one common to every hypothesis that reproduces each run exercising the axis
(the closest *passing* explanation on that axis): the evidence rule is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compare import HypothesisResult
    from .configs import Config
    from .drive import ConfigObs

__all__ = ["AXES", "CONVENTIONS", "EXERCISED", "Evidence", "axis_evidence", "conventions_of",
           "differences"]

AXES = ("weight decay", "epsilon", "bias correction", "AMSGrad", "momentum", "NAdam schedule",
        "learning-rate decay", "accumulator", "state initial value")

L2 = "L2 (coupled): g ← g + λθ"
DEC_LR = "decoupled, lr-scaled: θ ← θ(1 − γₜλ)"
DEC_ETA = "decoupled, schedule-scaled: θ ← θ − ηₜλθ (ηₜ = γₜ/γ₁)"
DEC_FULL = "fully decoupled: θ ← θ(1 − λ), not scaled by the lr"
DEC_AFTER = "decoupled, lr-scaled, after the update: θ ← (θ − γₜu)(1 − γₜλ)"
OUT = "outside the root: u/(√v + ε)"
IN = "inside the root: u/√(v + ε)"
V0 = "v₀ = initial_scale (optax; 1 in timm RMSpropTF, 0 in Keras)"
HAT = "ε̂ before the bias corrections: αₜ·m/(√v + ε̂)"
BOTH = "both moments: m/(1 − β₁ᵗ), v/(1 − β₂ᵗ)"
AMS_TORCH = "max of the raw v, then bias-corrected (torch, Keras)"
AMS_REDDI = "max of the raw v, no bias correction (Reddi et al. 2018)"
AMS_OPTAX = "max of the bias-corrected v̂ (optax)"
ROOT = "outside the root, ε_root inside: u/(√(v + ε_root) + ε)"

CONVENTIONS: dict[str, dict[str, str]] = {
    "adam": {"weight decay": L2, "epsilon": OUT, "bias correction": BOTH, "AMSGrad": AMS_TORCH},
    "adamw": {"weight decay": DEC_LR, "epsilon": OUT, "bias correction": BOTH, "AMSGrad": AMS_TORCH},
    "adamw:paper": {"weight decay": DEC_ETA, "epsilon": OUT, "bias correction": BOTH,
                    "AMSGrad": AMS_TORCH},
    "adamw:fully-decoupled": {"weight decay": DEC_FULL, "epsilon": OUT, "bias correction": BOTH,
                              "AMSGrad": AMS_TORCH},
    "adamw:decay-after": {"weight decay": DEC_AFTER, "epsilon": OUT, "bias correction": BOTH,
                          "AMSGrad": AMS_TORCH},
    "adam:eps-hat": {"weight decay": L2, "epsilon": HAT, "bias correction": BOTH + " (folded into αₜ)",
                     "AMSGrad": AMS_TORCH},
    "adam:amsgrad-reddi": {"weight decay": L2, "epsilon": OUT, "bias correction": "none",
                           "AMSGrad": AMS_REDDI},
    "adam:eps-root": {"weight decay": L2, "epsilon": ROOT, "bias correction": BOTH,
                      "AMSGrad": AMS_TORCH},
    "adamw:eps-root": {"weight decay": DEC_LR, "epsilon": ROOT, "bias correction": BOTH,
                       "AMSGrad": AMS_TORCH},
    "adam:amsgrad-optax": {"weight decay": L2, "epsilon": ROOT, "bias correction": BOTH,
                           "AMSGrad": AMS_OPTAX},
    "sgd": {"weight decay": L2,
            "momentum": "torch: b₁ = g₁ (no dampening at t = 1), b = μb + (1 − τ)g, θ −= γₜb; "
                        "Nesterov θ −= γₜ(g + μb)"},
    "sgdw": {"weight decay": DEC_LR, "momentum": "torch: b₁ = g₁, b = μb + (1 − τ)g, θ −= γₜb"},
    "sgd:sutskever": {"weight decay": L2,
                      "momentum": "Sutskever/Keras: v = μv − γₜg, θ += v (γ inside the velocity)"},
    "sgd:optax-trace": {"weight decay": L2,
                        "momentum": "optax trace: b = g + μb from b₀ = 0 (no dampening), kept at μ = 0"},
    "adagrad": {"weight decay": L2, "epsilon": OUT,
                "learning-rate decay": "γₜ = γ/(1 + (t − 1)κ)",
                "accumulator": "s₀ = initial_accumulator_value"},
    "adagrad:keras": {"weight decay": L2, "epsilon": IN, "learning-rate decay": "none",
                      "accumulator": "s₀ = initial_accumulator_value (Keras default 0.1)"},
    "adadelta": {"weight decay": L2, "epsilon": "inside both roots: √(u + ε)/√(v + ε)"},
    "rmsprop": {"weight decay": L2, "epsilon": OUT + "; centered √(v − ḡ²) + ε",
                "momentum": "γ outside the buffer: b = μb + g/d, θ −= γₜb",
                "state initial value": "v₀ = 0"},
    "rmsprop:eps-inside": {"weight decay": L2, "epsilon": IN + "; centered √(v − ḡ² + ε)",
                           "momentum": "γ outside the buffer: b = μb + g/d, θ −= γₜb",
                           "state initial value": V0},
    "rmsprop:lr-in-momentum": {"weight decay": L2, "epsilon": OUT + "; centered √(v − ḡ²) + ε",
                               "momentum": "γ inside the buffer: b = μb + γₜg/d, θ −= b",
                               "state initial value": "v₀ = 0"},
    "rmsprop:keras-centered": {"weight decay": L2, "epsilon": IN + "; centered √(v − ḡ² + ε)",
                               "momentum": "γ inside the buffer: b = μb + γₜg/d, θ −= b",
                               "state initial value": V0},
    "nadam": {"weight decay": L2 + " (decoupled_weight_decay: θ(1 − γₜλ))", "epsilon": OUT,
              "NAdam schedule": "torch: μₜ = β₁(1 − ½·0.96^{tψ}), μ-product per parameter"},
    "nadam:keras3": {"weight decay": L2, "epsilon": OUT,
                     "NAdam schedule": "Keras 3: μₜ = β₁(1 − ½·0.96ᵗ), one shared product"},
    "nadam:optax": {"weight decay": L2, "epsilon": ROOT,
                    "NAdam schedule": "optax: constant β₁ (Adam with Nesterov), corrections "
                                      "1 − β₁ᵗ⁺¹ and 1 − β₁ᵗ"},
    "nadamw:optax": {"weight decay": DEC_LR, "epsilon": ROOT,
                     "NAdam schedule": "optax: constant β₁, β₁m/(1 − β₁ᵗ⁺¹) + (1 − β₁)g/(1 − β₁ᵗ)"},
    "nadamw:timm": {"weight decay": DEC_LR, "epsilon": OUT,
                    "NAdam schedule": "timm: constant β₁, (β₁m + (1 − β₁)g)/(1 − β₁ᵗ)"},
}


#: a convention that a hyperparameter switches on, and what it reads as where that
#: hyperparameter is 0 in every run: at ε_root = 0 the rule is ε outside the root, the same
#: rule as torch's, so no run can (or needs to) separate the two
AT_ZERO = {ROOT: ("eps_root", OUT)}


def conventions_of(name: str, extra: Mapping[str, str] | None = None,
                   hyper: Mapping[str, Any] | None = None) -> dict[str, str]:
    """A variant's conventions (a probe passes its own in ``extra``), as they read under
    ``hyper``, the hyperparameters every run of the audit shares (`AT_ZERO`)."""
    row = {**CONVENTIONS.get(name, {}), **(extra or {})}
    hyper = hyper or {}
    return {axis: AT_ZERO[value][1] if value in AT_ZERO and not hyper.get(AT_ZERO[value][0])
            else value for axis, value in row.items()}


def differences(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    """The axes on which two convention rows differ."""
    return [axis for axis in AXES if axis in a and axis in b and a[axis] != b[axis]]


def _given(key: str) -> Callable[[Config], bool]:
    return lambda c: bool(c.hyper.get(key))


def _one_shape_repeated(c: Config) -> bool:
    return len(set(c.shapes)) < len(c.shapes)


#: per axis, what exercises it (a name for the report, a predicate on the configuration);
#: an axis not listed is exercised by every configuration (ε, bias correction, the NAdam
#: schedule, per-step counters, precision: every step computes them)
EXERCISED: dict[str, tuple[str, Callable[[Config], bool]]] = {
    "weight decay": ("weight-decay (λ ≠ 0)", _given("weight_decay")),
    "AMSGrad": ("AMSGrad", _given("amsgrad")),
    "momentum": ("momentum (μ ≠ 0)", _given("momentum")),
    "learning-rate decay": ("lr-decay (κ ≠ 0)", _given("lr_decay")),
    "maximize": ("maximize", _given("maximize")),
    "state": ("several tensors of one shape", _one_shape_repeated),
}


@dataclass(frozen=True)
class Evidence:
    """What the audit can say about one axis: ``detected`` (the claimed convention) when
    ``measured``; ``evidence`` names the configurations that separated it, or why it is not
    measured."""

    axis: str
    detected: str | None
    evidence: str
    measured: bool

    def shown(self) -> str:
        """The detected convention, or "not measured"."""
        return self.detected if self.measured and self.detected else "not measured"


def _value(row: Mapping[str, str], axis: str, own: bool) -> str | None:
    """A hypothesis's value on ``axis``: its row's; a probe's axis missing from a row is the
    unmutated form (``own``), a torch axis missing from it does not apply (``None``)."""
    if axis in row:
        return row[axis]
    return "the rule's own form" if own else None


def _differ(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    """The axes on which two rows differ (a probe's own axis counts where either names it)."""
    out = []
    for axis in dict.fromkeys([*a, *b]):
        own = axis not in AXES
        x, y = _value(a, axis, own), _value(b, axis, own)
        if x is not None and y is not None and x != y:
            out.append(axis)
    return out


def axis_evidence(axis: str, rows: Mapping[str, Mapping[str, str]],
                  results: Mapping[str, HypothesisResult], observations: Sequence[ConfigObs],
                  claimed: str | None = None) -> Evidence:
    """The evidence on ``axis`` (see the module docstring).

    ``rows`` are the conventions of every hypothesis compared (``results``, by name);
    ``claimed`` names the hypothesis that reproduces the target, if any (its value is the
    one to measure); without it, the value common to the hypotheses that reproduce every run
    exercising the axis is.
    """
    what, exercises = EXERCISED.get(axis, ("", lambda c: True))
    relevant = [o for o in observations if exercises(o.config)]
    runs = [o.config.name for o in relevant if o.ran and not o.error and o.steps]
    if not relevant:
        return Evidence(axis, None, f"no configuration exercises it ({what})", False)
    if not runs:
        reasons = sorted({o.skipped or o.error or "not run" for o in relevant})
        whose = f"every {what} configuration" if what else "every configuration"
        how = "was skipped" if all(o.skipped for o in relevant) else "was skipped or failed"
        return Evidence(axis, None, f"{whose} {how}: {'; '.join(reasons)}", False)
    own = axis not in AXES
    values = {n: _value(row, axis, own) for n, row in rows.items()}

    def compared(name: str) -> list[str]:
        return [c for c in runs if c in results[name].configs]

    def rejected_by(name: str, where: list[str] | None = None) -> str | None:
        return next((c for c in compared(name) if not results[name].configs[c].passed
                     and (where is None or c in where)), None)

    closest = claimed is None
    passing = [n for n in results if values.get(n) is not None and compared(n)
               and rejected_by(n) is None]
    if claimed is None:
        found = {values[n] for n in passing}
        if not found:
            return Evidence(axis, None, "no hypothesis reproduces a run that exercised it", False)
        if len(found) > 1:
            return Evidence(axis, None, "not separated: " + ", ".join(
                f"{n} ({values[n]})" for n in passing) + " each reproduce every run that "
                "exercised it", False)
        claimed = passing[0]
    value = values.get(claimed)
    if value is None or not compared(claimed):
        return Evidence(axis, None, f"{claimed} was not compared on a run that exercised it",
                        False)
    held = compared(claimed)  # the runs the claimed value reproduced: the separating ones
    others = [n for n in results if values.get(n) not in (None, value)]
    alone = [n for n in others if _differ(rows[claimed], rows[n]) == [axis]]
    rejected, unseparated = [], []
    for name in alone or others:
        config = rejected_by(name, held)
        inexpressible = [c for c in held if c in results[name].not_applicable]
        if config is not None:
            step = results[name].configs[config].first.step
            rejected.append(f"{name} rejected by {config!r} at step {step}")
        elif inexpressible:  # optax's trace has no dampening: torch's form, at τ = ½, is not it
            rejected.append(f"{name} cannot express {inexpressible[0]!r}, which {claimed} "
                            f"reproduces")
        elif set(compared(name)) & set(held):
            both = [repr(c) for c in compared(name) if c in held]
            unseparated.append(f"{name} also reproduces every run that exercised it "
                               f"({', '.join(both)})")
        else:
            unseparated.append(f"{name} was not compared on a run that exercised it")
    if unseparated:
        return Evidence(axis, None, "not separated: " + "; ".join(unseparated), False)
    evidence = "; ".join(rejected) or (f"no alternative among the registered variants "
                                       f"(exercised by {', '.join(repr(c) for c in runs)})")
    if closest:
        evidence = f"{claimed} reproduces every run that exercised it; " + evidence
    return Evidence(axis, value, evidence, True)
