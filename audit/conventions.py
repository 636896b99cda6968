"""The conventions each registered variant follows, by axis (``CONVENTIONS.md``).

When a variant reproduces a target, its row is the target's conventions; the evidence for
each axis is the configuration that rejected every variant choosing differently on it (the
variant, the configuration, the step). An axis no configuration separated is reported as
"not separated" (e.g. AMSGrad's form when the target takes no ``amsgrad``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["AXES", "CONVENTIONS", "conventions_of", "differences"]

AXES = ("weight decay", "epsilon", "bias correction", "AMSGrad", "momentum", "NAdam schedule",
        "learning-rate decay", "accumulator")

L2 = "L2 (coupled): g ← g + λθ"
DEC_LR = "decoupled, lr-scaled: θ ← θ(1 − γₜλ)"
DEC_ETA = "decoupled, schedule-scaled: θ ← θ − ηₜλθ (ηₜ = γₜ/γ₁)"
DEC_FULL = "fully decoupled: θ ← θ(1 − λ), not scaled by the lr"
DEC_AFTER = "decoupled, lr-scaled, after the update: θ ← (θ − γₜu)(1 − γₜλ)"
OUT = "outside the root: u/(√v + ε)"
IN = "inside the root: u/√(v + ε)"
HAT = "ε̂ before the bias corrections: αₜ·m/(√v + ε̂)"
BOTH = "both moments: m/(1 − β₁ᵗ), v/(1 − β₂ᵗ)"
AMS_TORCH = "max of the raw v, then bias-corrected (torch, Keras)"
AMS_REDDI = "max of the raw v, no bias correction (Reddi et al. 2018)"

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
                "momentum": "γ outside the buffer: b = μb + g/d, θ −= γₜb"},
    "rmsprop:eps-inside": {"weight decay": L2, "epsilon": IN + "; centered √(v − ḡ² + ε)",
                           "momentum": "γ outside the buffer: b = μb + g/d, θ −= γₜb"},
    "rmsprop:lr-in-momentum": {"weight decay": L2, "epsilon": OUT + "; centered √(v − ḡ²) + ε",
                               "momentum": "γ inside the buffer: b = μb + γₜg/d, θ −= b"},
    "rmsprop:keras-centered": {"weight decay": L2, "epsilon": IN + "; centered √(v − ḡ² + ε)",
                               "momentum": "γ inside the buffer: b = μb + γₜg/d, θ −= b"},
    "nadam": {"weight decay": L2 + " (decoupled_weight_decay: θ(1 − γₜλ))", "epsilon": OUT,
              "NAdam schedule": "torch: μₜ = β₁(1 − ½·0.96^{tψ}), μ-product per parameter"},
    "nadam:keras3": {"weight decay": L2, "epsilon": OUT,
                     "NAdam schedule": "Keras 3: μₜ = β₁(1 − ½·0.96ᵗ), one shared product"},
    "nadam:optax": {"weight decay": L2, "epsilon": OUT,
                    "NAdam schedule": "optax: constant β₁ (Adam with Nesterov), corrections "
                                      "1 − β₁ᵗ⁺¹ and 1 − β₁ᵗ"},
}


def conventions_of(name: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A variant's conventions (a probe passes its own in ``extra``)."""
    return {**CONVENTIONS.get(name, {}), **(extra or {})}


def differences(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    """The axes on which two convention rows differ."""
    return [axis for axis in AXES if axis in a and axis in b and a[axis] != b[axis]]
