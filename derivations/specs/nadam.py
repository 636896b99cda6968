"""NAdam: torch's ψ schedule, Keras 3's schedule and shared product, optax's constant β₁.

torch.optim 2.13 ``nadam.py`` (``_single_tensor_nadam``):

```text
g ← −g if maximize;  g ← g + λθ (L2)  [or θ ← θ(1 − γλ) if decoupled_weight_decay]
μₜ = β₁(1 − ½·0.96^{tψ}),  μₜ₊₁ = β₁(1 − ½·0.96^{(t+1)ψ}),  Πₜ = Πₜ₋₁μₜ (mu_product, Π₀ = 1)
m, v EMAs;  v̂ = v/(1 − β₂ᵗ)
θ ← θ − γ(1 − μₜ)/(1 − Πₜ)·g/(√v̂ + ε) − γμₜ₊₁/(1 − Πₜμₜ₊₁)·m/(√v̂ + ε)
```

Sources: Dozat 2016, "Incorporating Nesterov Momentum into Adam", Algorithm 2 (ψ = 0.004 is
his t/250); Keras 3 ``keras/src/optimizers/nadam.py`` (keras-team/keras @3262a91 / @13de96a);
optax ``scale_by_adam(nesterov=True)`` (``optax.nadam``; the nesterov flag came with optax
commit 94a486f, April 2024).

NAdamW, decoupled decay θ ← θ(1 − γλ) with a Nesterov step, exists in two forms whose bias
corrections differ (both read at optax 0.2.8 and timm 1.0.31):

* optax ``nadamw = partial(adamw, nesterov=True)``: m̂ₜ = β₁mₜ/(1 − β₁ᵗ⁺¹) + (1 − β₁)gₜ/(1 − β₁ᵗ),
  uₜ = m̂ₜ/(√(v̂ₜ + ε_root) + ε), θ ← θ − γ(uₜ + λθ) (``alias.py`` ``adamw``, ``transform.py``
  ``scale_by_adam``);
* timm ``NAdamW`` (``timm/optim/nadamw.py`` ``_single_tensor_nadamw``, after the MLCommons
  algorithmic-efficiency baseline): θ ← θ(1 − γλ), m̃ₜ = β₁mₜ + (1 − β₁)gₜ (``exp_avg.lerp``),
  θ ← θ − γ/(1 − β₁ᵗ)·m̃ₜ/(√vₜ/√(1 − β₂ᵗ) + ε): both terms over the same 1 − β₁ᵗ.
"""

from __future__ import annotations

from ..spec import Spec, register
from ..symbols import hyper
from ..transforms import (add_decayed_weights, chain, descend, nadam_schedule, negate_if,
                          prepare_gradient, scale_by_adam_nesterov, scale_by_nadam,
                          scale_by_nadamw_timm)

LR, B1, B2, EPS, WD, PSI, EPS_ROOT = (hyper(k) for k in (
    "lr", "betas[0]", "betas[1]", "eps", "weight_decay", "momentum_decay", "eps_root"))
FLAGS = ("maximize", "decoupled_weight_decay")
BASE = {"betas": (0.9, 0.999), "weight_decay": 0.0, "maximize": False,
        "decoupled_weight_decay": False}


def _start(f):
    return prepare_gradient(WD, LR, maximize=f["maximize"], decoupled=f["decoupled_weight_decay"])


NADAM = Spec(
    name="nadam", summary="NAdam with the momentum schedule μₜ = β₁(1 − ½·0.96^{tψ}) (torch)",
    sources=("Dozat 2016, Algorithm 2", "torch.optim 2.13 nadam.py"), mirrors="torch.optim.NAdam",
    defaults={"lr": 2e-3, **BASE, "eps": 1e-8, "momentum_decay": 4e-3}, flags=FLAGS,
    build=lambda f: chain(_start(f), nadam_schedule(B1, PSI), scale_by_nadam(B1, B2, EPS),
                          descend(LR)),
    notes="torch keeps step and mu_product as 0-d tensors of the default scalar dtype "
          "(float32 unless the default dtype is float64): Πₜ is then rounded to float32.",
)

NADAM_KERAS = Spec(
    name="nadam:keras3", summary="NAdam with μₜ = β₁(1 − ½·0.96ᵗ) and one shared product (Keras 3)",
    sources=("Dozat 2016, Algorithm 2", "Keras 3 keras/src/optimizers/nadam.py"),
    mirrors="keras.optimizers.Nadam", defaults={"lr": 1e-3, **BASE, "eps": 1e-7}, flags=FLAGS,
    build=lambda f: chain(_start(f), nadam_schedule(B1, None), scale_by_nadam(B1, B2, EPS),
                          descend(LR)),
    notes="Keras has no ψ: 0.96 is raised to the step itself (torch with momentum_decay=1). "
          "Its product u_product is one optimizer variable (dtype of the first variable), "
          "multiplied by μₜ once per optimizer step (iterations + 1) before any variable is "
          "updated, and shared by all variables, where torch keeps one mu_product per "
          "parameter, started when that parameter first has a gradient. On one parameter "
          "tensor stepped every iteration the two coincide, so the reference (one trajectory) "
          "stores it as mu_product.",
)

NADAM_OPTAX = Spec(
    name="nadam:optax", summary="NAdam as Adam with Nesterov momentum and constant β₁ (optax)",
    sources=("Dozat 2016, Algorithm 2", "optax optax/_src/transform.py scale_by_adam(nesterov=True)"),
    mirrors="optax.nadam", defaults={"lr": 1e-3, **BASE, "eps": 1e-8, "eps_root": 0.0},
    flags=FLAGS,
    build=lambda f: chain(_start(f), scale_by_adam_nesterov(B1, B2, EPS, EPS_ROOT), descend(LR)),
    notes="No momentum schedule and no product: the bias corrections are 1 − β₁ᵗ⁺¹ and "
          "1 − β₁ᵗ; optax's eps_root (default 0) is added inside the root. weight_decay is L2.",
)

NADAMW_DEFAULTS = {"betas": (0.9, 0.999), "maximize": False}


def _decoupled(f):
    return chain(negate_if(f["maximize"]), add_decayed_weights(WD, LR))


NADAMW_OPTAX = Spec(
    name="nadamw:optax",
    summary="NAdamW: decoupled lr-scaled decay, Nesterov with corrections 1 − β₁ᵗ⁺¹, 1 − β₁ᵗ (optax)",
    sources=("Dozat 2016, Algorithm 2", "Loshchilov & Hutter 2019, Algorithm 2",
             "optax 0.2.8 optax/_src/alias.py nadamw = partial(adamw, nesterov=True)"),
    mirrors="optax.nadamw",
    defaults={"lr": 1e-3, **NADAMW_DEFAULTS, "eps": 1e-8, "eps_root": 0.0, "weight_decay": 1e-4},
    flags=("maximize",),
    build=lambda f: chain(_decoupled(f), scale_by_adam_nesterov(B1, B2, EPS, EPS_ROOT),
                          descend(LR)),
    notes="optax applies the decay as θ ← θ − γ(u + λθ), the same as θ(1 − γλ) − γu; its "
          "default λ is 1e-4.",
)

NADAMW_TIMM = Spec(
    name="nadamw:timm",
    summary="NAdamW: decoupled lr-scaled decay, Nesterov step m̃ = β₁m + (1 − β₁)g over 1 − β₁ᵗ (timm)",
    sources=("Loshchilov & Hutter 2019, Algorithm 2",
             "MLCommons algorithmic-efficiency baselines/nadamw",
             "timm 1.0.31 timm/optim/nadamw.py _single_tensor_nadamw"),
    mirrors="timm.optim.NAdamW",
    defaults={"lr": 1e-3, **NADAMW_DEFAULTS, "eps": 1e-8, "weight_decay": 1e-2},
    flags=("maximize",),
    build=lambda f: chain(_decoupled(f), scale_by_nadamw_timm(B1, B2, EPS), descend(LR)),
    notes="Both Nesterov terms are divided by the same 1 − β₁ᵗ (optax: 1 − β₁ᵗ⁺¹ for the "
          "momentum term). timm's caution, corrected_weight_decay and clipping_threshold are "
          "off by default and not expressed here.",
)

register(NADAM, NADAM_KERAS, NADAM_OPTAX, NADAMW_OPTAX, NADAMW_TIMM)
