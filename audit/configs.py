"""The configurations an audit drives a target through, one list per rule group.

Each configuration is chosen to expose a convention the frameworks disagree on
(``CONVENTIONS.md``), so that every pair of variants differs in at least one of them:

* **ε large against the gradients** (ε = 10⁻², |g| ≈ 10⁻³): ε inside vs outside the root,
  ε̂ before the bias corrections (Keras/TF Adam) vs ε after (torch).
* **weight decay under a changing learning rate** (γₜ varies every step): L2 vs decoupled
  decay, and among decoupled forms γₜ·λ (torch) vs ηₜ·λ with ηₜ = γₜ/γ₁ (Loshchilov &
  Hutter 2019, Alg. 2) vs λ alone (TF-Addons); torch momentum θ −= γₜbₜ vs Sutskever's
  v = μv − γₜg (equal only at constant γ), γ outside vs inside RMSprop's momentum buffer.
* **dampening** (τ = ½): torch copies g₁ into the buffer at t = 1 (no dampening).
* **Nesterov**, **AMSGrad** (gradients shrinking by ½ per step so that the running maximum is
  not the current value), **maximize**, **centered**, a large NAdam ψ, Adagrad's lr decay and
  initial accumulator.
* **several tensors of one shape**: a state shared between parameter tensors (one m, v for all)
  can then run without a shape error, and shows.
* **a tensor long enough to reach a vector loop** (``LONG``: 2·64 + 7 elements): a
  vectorised kernel runs its vector loop on ``numel − numel mod W`` elements (W up to 32 for
  16-bit types on AVX-512, more where a loop is unrolled) and scalar code on the rest; the
  short tensors of the other configurations reach only the scalar code.  (torch 2.13's
  fused CPU SGD on bfloat16/float16 never writes θ in its vector loop: conformant on every
  other configuration, caught by this one.)

Every configuration steps several parameter tensors; "different shapes" is ``(2, 3), (3,), ()``
(a 0-d tensor included). Gradients are ``scale·(N(0, 1) + 0.3)·decayᵏ`` (the offset gives
centered RMSprop a mean to subtract), parameters uniform in [−1, 1], both rounded to the
audited dtype; the reference reads the rounded values exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["Config", "Problem", "CONFIGS", "configs_for", "make_problem", "DIFFERENT", "SAME",
           "LONG"]

DIFFERENT = ((2, 3), (3,), ())
SAME = ((3,), (3,), (3,))
LONG = ((2 * 64 + 7,), (3,))


@dataclass(frozen=True)
class Config:
    """One configuration: torch.optim keywords for the constructor (``hyper``), a learning
    rate per step (``lr``, cycled; ``None`` keeps ``hyper['lr']``), the gradients' scale and
    per-step decay, the parameter shapes, and what it is meant to expose (``purpose``)."""

    name: str
    purpose: str
    hyper: dict[str, Any]
    lr: tuple[float, ...] | None = None
    grad_scale: float = 1.0
    grad_decay: float = 1.0
    shapes: tuple[tuple[int, ...], ...] = DIFFERENT

    def lrs(self, steps: int) -> list[float]:
        """The learning rate of each of ``steps`` steps."""
        if self.lr is None:
            return [float(self.hyper["lr"])] * steps
        return [float(self.lr[k % len(self.lr)]) for k in range(steps)]

    def constructor_hyper(self) -> dict[str, Any]:
        """The keywords the target is constructed with (``lr`` = the first step's)."""
        out = dict(self.hyper)
        if self.lr is not None:
            out["lr"] = self.lr[0]
        return out

    def with_hyper(self, fixed: dict[str, Any]) -> Config:
        """This configuration with the keywords ``fixed`` overriding its own (a tuple element
        given as ``betas[0]``; ``lr`` stays the configuration's, which the audit drives)."""
        hyper = dict(self.hyper)
        for key, value in fixed.items():
            name, _, index = key.partition("[")
            if name == "lr":
                continue
            if index:
                items = list(hyper.get(name, ()))
                items[int(index.rstrip("]"))] = value
                value = tuple(items)
            hyper[name] = value
        return replace(self, hyper=hyper) if hyper != self.hyper else self

    def describe(self) -> str:
        parts = [f"{k}={_fmt(v)}" for k, v in self.constructor_hyper().items()]
        if self.lr is not None:
            parts.append("lr per step " + "→".join(_fmt(v) for v in self.lr))
        if self.grad_scale != 1.0:
            parts.append(f"|g|≈{self.grad_scale:g}")
        if self.grad_decay != 1.0:
            parts.append(f"g shrinks ×{self.grad_decay:g}/step")
        parts.append("shapes " + " ".join(str(tuple(s)) for s in self.shapes))
        return ", ".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return str(v)


@dataclass
class Problem:
    """The exact inputs of one configuration: parameters (float64 arrays holding values
    representable in the audited dtype), gradients per step and tensor, lr per step."""

    config: Config
    params: list[np.ndarray]
    grads: list[list[np.ndarray]]
    lrs: list[float]
    dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)


def _round(x: np.ndarray, dtype: str) -> np.ndarray:
    import torch  # the rounding of bfloat16 is torch's
    return torch.as_tensor(x, dtype=torch.float64).to(getattr(torch, dtype)).to(
        torch.float64).numpy()


def make_problem(config: Config, steps: int, seed: int, dtype: str, index: int = 0) -> Problem:
    """Generate a configuration's inputs, deterministically from ``(seed, index)``."""
    rng = np.random.default_rng([seed, index])
    params = [_round(rng.uniform(-1, 1, size=s), dtype) for s in config.shapes]
    grads = []
    for k in range(steps):
        scale = config.grad_scale * config.grad_decay ** k
        grads.append([_round(scale * (rng.standard_normal(size=s) + 0.3), dtype)
                      for s in config.shapes])
    return Problem(config, params, grads, config.lrs(steps), dtype)


SCHEDULE = (0.05, 0.01, 0.1, 0.02, 0.07)
SGD_SCHEDULE = (0.1, 0.03, 0.2, 0.05, 0.1)
ADADELTA_SCHEDULE = (1.0, 0.5, 2.0, 0.3, 1.0)

C = Config
CONFIGS: dict[str, tuple[Config, ...]] = {
    "adam": (
        C("plain", "the default path: bias corrections at small t", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}),
        C("eps-large", "ε placement (outside/inside the root, ε̂)", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-2, "weight_decay": 0.0}, grad_scale=1e-3),
        C("decay-schedule", "decay coupling and its scaling (γₜλ, ηₜλ, λ) under a changing lr", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.2}, lr=SCHEDULE),
        C("same-shapes", "state shared between tensors; per-parameter counters", {"lr": 0.02, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}, shapes=SAME),
        C("amsgrad", "AMSGrad: max of raw v, then bias-corrected", {"lr": 1e-2, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": True}, grad_decay=0.5),
        C("amsgrad-decay", "AMSGrad with decay under a changing lr", {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True}, lr=SCHEDULE, grad_decay=0.6),
        C("maximize", "maximize: g ← −g", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1, "maximize": True}),
        C("vector-loop", "a tensor that reaches a vectorised kernel's vector loop", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}, shapes=LONG),
    ),
    "sgd": (
        C("plain", "no momentum", {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0}),
        C("momentum-schedule", "torch b vs Sutskever v = μv − γg under a changing lr", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}, lr=SGD_SCHEDULE),
        C("dampening", "momentum start: b₁ = g₁ (no dampening at t = 1)", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.0}),
        C("nesterov", "Nesterov form θ −= γ(g + μbₜ)", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0}, lr=SGD_SCHEDULE),
        C("decay-schedule", "L2 vs decoupled decay under a changing lr", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}, lr=SGD_SCHEDULE),
        C("same-shapes", "state shared between tensors", {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.0}, shapes=SAME),
        C("maximize", "maximize: g ← −g", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.05, "maximize": True}),
        C("vector-loop", "a tensor that reaches a vectorised kernel's vector loop", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}, shapes=LONG),
    ),
    "adagrad": (
        C("plain", "accumulator from 0, ε outside the root", {"lr": 0.1, "weight_decay": 0.0}),
        C("lr-decay", "γₜ = γ/(1 + (t − 1)κ) and the initial accumulator", {"lr": 0.1, "lr_decay": 0.1, "initial_accumulator_value": 0.1, "weight_decay": 0.0}),
        C("eps-large", "ε inside vs outside the root", {"lr": 0.1, "eps": 1e-2, "weight_decay": 0.0}, grad_scale=1e-3),
        C("decay-schedule", "L2 vs decoupled decay under a changing lr", {"lr": 0.1, "weight_decay": 0.1}, lr=SGD_SCHEDULE),
        C("same-shapes", "state shared between tensors; per-parameter counters", {"lr": 0.1, "weight_decay": 0.0}, shapes=SAME),
        C("maximize", "maximize: g ← −g", {"lr": 0.1, "weight_decay": 0.05, "maximize": True}),
        C("vector-loop", "a tensor that reaches a vectorised kernel's vector loop", {"lr": 0.1, "weight_decay": 0.1}, shapes=LONG),
    ),
    "adadelta": (
        C("plain", "the default path", {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0}),
        C("eps-large", "ε against tiny gradients", {"lr": 1.0, "rho": 0.9, "eps": 1e-2, "weight_decay": 0.0}, grad_scale=1e-3),
        C("decay-schedule", "L2 vs decoupled decay under a changing lr", {"lr": 1.0, "rho": 0.5, "eps": 1e-6, "weight_decay": 0.1}, lr=ADADELTA_SCHEDULE),
        C("same-shapes", "state shared between tensors", {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0}, shapes=SAME),
        C("maximize", "maximize: g ← −g", {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.05, "maximize": True}),
        C("vector-loop", "a tensor that reaches a vectorised kernel's vector loop", {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.1}, shapes=LONG),
    ),
    "rmsprop": (
        C("plain", "ε outside the root", {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0}),
        C("eps-large", "ε inside vs outside the root", {"lr": 1e-2, "alpha": 0.99, "eps": 1e-2, "weight_decay": 0.0}, grad_scale=1e-3),
        C("centered-eps", "centered √(v − ḡ²) + ε vs √(v − ḡ² + ε)", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-2, "centered": True, "weight_decay": 0.0}, grad_scale=0.1),
        C("momentum-schedule", "γ outside vs inside the momentum buffer under a changing lr", {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.9, "weight_decay": 0.0}, lr=SCHEDULE),
        C("decay-schedule", "L2 vs decoupled decay under a changing lr", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-8, "weight_decay": 0.1}, lr=SCHEDULE),
        C("same-shapes", "state shared between tensors", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-8, "momentum": 0.5, "weight_decay": 0.0}, shapes=SAME),
        C("maximize", "maximize: g ← −g", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-8, "momentum": 0.9, "centered": True, "weight_decay": 0.05, "maximize": True}),
        C("vector-loop", "a tensor that reaches a vectorised kernel's vector loop", {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.9, "weight_decay": 0.1}, shapes=LONG),
    ),
    "nadam": (
        C("plain", "torch's ψ schedule μₜ = β₁(1 − ½·0.96^{tψ})", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}),
        C("psi-large", "the momentum schedule with a large ψ", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "momentum_decay": 0.3, "weight_decay": 0.0}),
        C("eps-large", "ε placement", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-2, "weight_decay": 0.0}, grad_scale=1e-3),
        C("decay-schedule", "L2 decay under a changing lr", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.1}, lr=SCHEDULE),
        C("decoupled", "decoupled_weight_decay=True: θ ← θ(1 − γₜλ)", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.1, "decoupled_weight_decay": True}, lr=SCHEDULE),
        C("same-shapes", "state shared between tensors", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}, shapes=SAME),
        C("maximize", "maximize: g ← −g", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.05, "maximize": True}),
        C("vector-loop", "a tensor that reaches a vectorised kernel's vector loop", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}, shapes=LONG),
    ),
}
del C


def configs_for(group: str) -> tuple[Config, ...]:
    """The configurations of a rule group (``adam``, ``sgd``, …)."""
    if group not in CONFIGS:
        raise ValueError(f"no configurations for rule group {group!r}; "
                         f"known: {', '.join(CONFIGS)}")
    return CONFIGS[group]
