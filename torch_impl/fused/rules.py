r"""What the fused kernels compute, rule by rule: the elementwise math and the host scalars.

Every fused kernel (C++ on CPU, ``csrc/fused_cpu.cpp``; Triton on CUDA, ``triton.py``) runs
one pass over each element: load θ, g and the rule's state, widen to *opmath* (float32 for
float32/bfloat16/float16 tensors, float64 for float64), apply the common prologue and the
rule's element update below, and store each output with a single rounding to its storage
dtype.  The per-step scalars are computed here, on the host, in Python float64, with the
same expressions as the for-loop path (``_update`` of each class), then cast once to
opmath inside the kernel — the rounding model of ``optproof.reference.bounds`` ("per-step
scalars in float64, one cast into the compute type").

Common prologue (torch.optim 2.13 order):

```text
g ← −g                     if maximize
θ ← θ · (1 − γ̃ λ)          decoupled decay (Loshchilov & Hutter 2019, Alg. 2 l. 12);
                           the factor is exactly 1 otherwise; γ̃ = γ (Adagrad: clr_t)
g ← g + λ θ                L2 weight decay
```

EMAs are written ``β·m + (1 − β)·g`` with both scalars cast separately (the textbook grouping
the oracle's bound is derived for), not torch's ``lerp(m, g, 1 − β)``, which recovers β as
``1 − fl(1 − β)`` and loses a small β entirely in float32 (tests/test_bounds.py,
``test_torch_lerp_loses_small_beta1``).

Element updates (``c`` = the scalars of `scalars`, in this order):

* **sgd** (Sutskever et al. 2013 in torch's form; torch.optim 2.13 ``sgd.py``):
  ``b ← g`` on the first step, else ``b ← μ b + (1 − τ) g``; ``d = g + μ b`` (Nesterov),
  ``b`` (momentum) or ``g``; ``θ ← θ + (−γ) d``.  c = μ, 1 − τ, −γ.
* **adagrad** (Duchi et al. 2011; ``adagrad.py``): ``s ← s + g²``;
  ``θ ← θ + (−clr_t) · g / (√s + ε)``, clr_t = γ / (1 + (t − 1) η).  c = −clr_t, ε.
* **adadelta** (Zeiler 2012, Alg. 1; ``adadelta.py``): ``v ← ρ v + (1 − ρ) g²``;
  ``Δ = √(u + ε) / √(v + ε) · g``; ``u ← ρ u + (1 − ρ) Δ²``; ``θ ← θ + (−γ) Δ``.
  c = ρ, 1 − ρ, ε, −γ.
* **rmsprop** (Hinton 2012; Graves 2013 eqs. 38–41; ``rmsprop.py``): ``v ← α v + (1 − α) g²``;
  centered: ``ḡ ← α ḡ + (1 − α) g``, ``d = √(v − ḡ²) + ε``, else ``d = √v + ε``; momentum:
  ``b ← μ b + g / d``, ``θ ← θ + (−γ) b``, else ``θ ← θ + (−γ) g / d``.
  c = α, 1 − α, ε, μ, −γ.
* **adam** / **adamw** (Kingma & Ba 2015, Alg. 1; Reddi et al. 2018; Loshchilov & Hutter
  2019; ``adam.py``/``adamw.py``): ``m ← β₁ m + (1 − β₁) g``; ``v ← β₂ v + (1 − β₂) g²``;
  ``v̂ = max(v̂, v)`` (amsgrad, NaN-propagating like ``torch.maximum``) else ``v``;
  ``θ ← θ + (−γ / (1 − β₁ᵗ)) · m / (√v̂ · (1 − β₂ᵗ)^(−½) + ε)``.
  c = β₁, 1 − β₁, β₂, 1 − β₂, −γ/(1 − β₁ᵗ), 1/√(1 − β₂ᵗ), ε.
* **nadam** (Dozat 2016, Alg. 2, torch's μ schedule; ``nadam.py``): m and v as Adam;
  ``r = 1 / (√(v · (1 − β₂ᵗ)⁻¹) + ε)``; ``θ ← θ + c_g · (g · r) + c_m · (m · r)`` with
  ``c_g = −γ (1 − μ_t) / (1 − Π_t)``, ``c_m = −γ μ_{t+1} / (1 − Π_t μ_{t+1})``; Π_t
  (``state['mu_product']``) is multiplied on the host exactly like the for-loop path.
  c = β₁, 1 − β₁, β₂, 1 − β₂, 1/(1 − β₂ᵗ), ε, c_g, c_m.

Divisions are the costly operations of these memory-bound loops (AVX-512 ``vdivps`` and
``vsqrtps``): a division by a per-step scalar becomes a product with its reciprocal computed
on the host in float64 (a regrouping of per-step scalars, which the bound of
``optproof.reference.bounds`` allows), and NAdam divides once, by d, where the rule divides
g and m by it (``x/d`` is ``x · d⁻¹`` in the bound's rounding model: a reciprocal and a
product).  Measured on the 2-core CI machine, 1 × 10M float32: Adam 30 → ~40 GB/s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["FusedRule", "RULES", "rule_for", "RULE_SLOTS"]

#: The kernels' scalar row is 16 float64 values (``Slot`` in ``csrc/fused_cpu.cpp``, the
#: offsets ``triton.py`` reads): λ for L2 decay, the decoupled decay factor, the rule's
#: scalars (``RULE_SLOTS`` at most, in the order of `FusedRule.scalars`), the counter
#: values the row was computed from (CPU only: ``step`` before and after the step, NAdam's Π
#: before and after, μ_t), and the first-step flag (SGD's momentum buffer).
RULE_SLOTS = 8


@dataclass(frozen=True)
class FusedRule:
    """One rule: kernel name, structural variant, and the host scalars."""

    kernel: str
    #: the kernel's structural variant (which state tensors exist), from the group
    variant: Callable[[dict[str, Any]], int]
    #: rule scalars (after the common prefix) from (group, t, lr, per-tensor extra)
    scalars: Callable[[dict[str, Any], float, float, Any], list[float]]
    #: the rate decoupled weight decay multiplies λ by (γ, or Adagrad's clr_t)
    decay_lr: Callable[[dict[str, Any], float, float], float] = lambda group, t, lr: lr


def _betas(group: dict[str, Any]) -> tuple[float, float]:
    return tuple(x.item() if isinstance(x, torch.Tensor) else x for x in group["betas"])


def _sgd(group, t, lr, extra):
    return [group["momentum"], 1 - group["dampening"], -lr]


def _clr(group, t, lr):
    return lr / (1 + (t - 1) * group["lr_decay"])


def _adagrad(group, t, lr, extra):
    return [-_clr(group, t, lr), group["eps"]]


def _adadelta(group, t, lr, extra):
    rho = group["rho"]
    return [rho, 1 - rho, group["eps"], -lr]


def _rmsprop(group, t, lr, extra):
    alpha = group["alpha"]
    return [alpha, 1 - alpha, group["eps"], group["momentum"], -lr]


def _adam(group, t, lr, extra):
    beta1, beta2 = _betas(group)
    return [beta1, 1 - beta1, beta2, 1 - beta2, -(lr / (1 - beta1**t)),
            1 / (1 - beta2**t) ** 0.5, group["eps"]]


def nadam_mus(group: dict[str, Any], t: float) -> tuple[float, float]:
    """μ_t and μ_{t+1} of torch's NAdam schedule (Python float64, as the for-loop path)."""
    beta1, psi = group["betas"][0], group["momentum_decay"]
    return (beta1 * (1.0 - 0.5 * (0.96 ** (t * psi))),
            beta1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * psi))))


def _nadam(group, t, lr, mu_product):
    beta1, beta2 = group["betas"]
    mu, mu_next = nadam_mus(group, t)
    return [beta1, 1 - beta1, beta2, 1 - beta2, 1 / (1 - beta2**t), group["eps"],
            (-lr * (1.0 - mu)) / (1.0 - mu_product),
            (-lr * mu_next) / (1.0 - mu_product * mu_next)]


RULES: dict[str, FusedRule] = {
    "SGD": FusedRule("sgd", lambda g: 0 if g["momentum"] == 0 else 1 + bool(g["nesterov"]), _sgd),
    "Adagrad": FusedRule("adagrad", lambda g: 0, _adagrad, decay_lr=_clr),
    "Adadelta": FusedRule("adadelta", lambda g: 0, _adadelta),
    "RMSprop": FusedRule("rmsprop", lambda g: (g["momentum"] > 0) + 2 * bool(g["centered"]),
                         _rmsprop),
    "Adam": FusedRule("adam", lambda g: int(bool(g["amsgrad"])), _adam),
    "NAdam": FusedRule("nadam", lambda g: 0, _nadam),
}


def rule_for(optimizer: torch.optim.Optimizer) -> FusedRule:
    """The fused rule of ``optimizer``'s class (or of its nearest registered base: AdamW → Adam)."""
    cls = type(optimizer)
    rule = _RULE_OF_CLASS.get(cls)
    if rule is None:
        package = __package__.rsplit(".", 1)[0]
        rule = next((RULES[c.__name__] for c in cls.__mro__
                     if c.__name__ in RULES and c.__module__.startswith(package)), None)
        if rule is None:
            raise RuntimeError(f"{cls.__name__} has no fused kernel")
        _RULE_OF_CLASS[cls] = rule
    return rule


_RULE_OF_CLASS: dict[type, FusedRule] = {}
