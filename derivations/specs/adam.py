"""The Adam family: Adam, AdamW and the framework variants of both.

Sources (checked against torch 2.13.0, ``torch/optim/adam.py`` and ``adamw.py``):

* Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Algorithm 1.
* Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, Algorithm 2.
* Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018, Algorithm 2.
* Keras 3 ``keras/src/optimizers/adam.py`` ``update_step``; TensorFlow 1
  ``tf.compat.v1.train.AdamOptimizer`` documentation ("epsilon hat").
* TensorFlow Addons ``tfa.optimizers.AdamW`` (``DecoupledWeightDecayExtension``).
* optax 0.2.8 ``optax/_src/alias.py`` ``adam``, ``adamw``, ``amsgrad`` and
  ``optax/_src/transform.py`` ``scale_by_adam`` / ``scale_by_amsgrad`` (``eps_root`` inside
  the root; AMSGrad's maximum over the bias-corrected v̂).
* bitsandbytes 0.50.2 ``csrc/kernels.cu`` ``kOptimizer32bit2State`` / ``kOptimizerStatic8bit2StateBlockwise``
  (ADAM: the step, then ``p *= 1 − lr·weight_decay``) against its CPU back end
  ``bitsandbytes/backends/cpu/ops.py`` (decay first, as torch).
"""

from __future__ import annotations

import sympy as sp

from ..program import Builder
from ..spec import Spec, register
from ..symbols import Hyper, hyper
from ..transforms import (Transform, adam_moments, add_decayed_weights, add_l2, chain,
                          divide_by_root, ema_weight_sum, negate_if, prepare_gradient,
                          scale_by_adam, scale_by_amsgrad_corrected, scale_by_lr)

LR, B1, B2, EPS, WD = (hyper(k) for k in ("lr", "betas[0]", "betas[1]", "eps", "weight_decay"))
EPS_ROOT = hyper("eps_root")
ETA = hyper("schedule_multiplier")
ADAM_DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                 "amsgrad": False, "maximize": False}
FLAGS = ("amsgrad", "maximize")
TORCH = "torch.optim 2.13 adam.py / adamw.py"
OPTAX = "optax 0.2.8 optax/_src/alias.py, transform.py scale_by_adam"

ADAM = Spec(
    name="adam",
    summary="Adam with L2 weight decay (torch.optim.Adam)",
    sources=("Kingma & Ba 2015, Algorithm 1", TORCH),
    mirrors="torch.optim.Adam",
    defaults={**ADAM_DEFAULTS, "decoupled_weight_decay": False},
    flags=(*FLAGS, "decoupled_weight_decay"),
    build=lambda f: chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                           decoupled=f["decoupled_weight_decay"]),
                          scale_by_adam(B1, B2, EPS, amsgrad=f["amsgrad"]), scale_by_lr(LR)),
)


def _adamw(name: str, summary: str, scale: Hyper | None, source: str, extra=None,
           eps_root: Hyper | None = None, mirrors: str = "torch.optim.AdamW",
           notes: str = "") -> Spec:
    """AdamW: decoupled decay θ ← θ − s·λ·θ first, then the Adam step (no L2 term)."""
    return Spec(
        name=name, summary=summary,
        sources=("Loshchilov & Hutter 2019, Algorithm 2", source),
        mirrors=mirrors,
        defaults={**ADAM_DEFAULTS, "weight_decay": 1e-2, **(extra or {})},
        flags=FLAGS,
        build=lambda f: chain(negate_if(f["maximize"]), add_decayed_weights(WD, scale),
                              scale_by_adam(B1, B2, EPS, amsgrad=f["amsgrad"], eps_root=eps_root),
                              scale_by_lr(LR)),
        notes=notes,
    )


ADAMW = _adamw("adamw", "AdamW, decay scaled by the learning rate: θ ← θ(1 − γλ) (torch)", LR, TORCH)
ADAMW_PAPER = _adamw(
    "adamw:paper", "AdamW as in the paper: decay scaled by the schedule multiplier ηₜ only",
    ETA, "torch issue #38853 (open) on the difference", {"schedule_multiplier": 1.0})
ADAMW_FULLY_DECOUPLED = _adamw(
    "adamw:fully-decoupled", "AdamW with decay independent of the learning rate: θ ← θ(1 − λ)",
    None, "TensorFlow Addons AdamW (DecoupledWeightDecayExtension)")


def _adamw_decay_after() -> Spec:
    """AdamW with the decoupled decay applied to the stepped parameter:
    θ' ← θₜ₋₁ − γuₜ, then θₜ ← θ'(1 − γλ) = θₜ₋₁(1 − γλ) − γ(1 − γλ)uₜ. It differs from
    torch's θₜ₋₁(1 − γλ) − γuₜ by γ²λuₜ."""
    return Spec(
        name="adamw:decay-after",
        summary="AdamW with the decoupled decay after the Adam step: θ ← (θ − γu)(1 − γλ)",
        sources=("Loshchilov & Hutter 2019, Algorithm 2 (decay and step in one line, order "
                 "unspecified)", "bitsandbytes 0.50.2 csrc/kernels.cu, ADAM kernels (CUDA)"),
        mirrors="bitsandbytes.optim.AdamW (CUDA kernel)",
        defaults={**ADAM_DEFAULTS, "weight_decay": 1e-2},
        flags=FLAGS,
        build=lambda f: chain(negate_if(f["maximize"]),
                              scale_by_adam(B1, B2, EPS, amsgrad=f["amsgrad"]), scale_by_lr(LR),
                              add_decayed_weights(WD, LR)),
        notes="bitsandbytes' CUDA kernels apply the decay after the update and its CPU and "
              "Triton back ends before it (reported upstream in 2026); the two differ by γ²λu.",
    )


ADAMW_DECAY_AFTER = _adamw_decay_after()

EPS_HAT = Hyper(sp.Symbol("epsilonhat", real=True, nonnegative=True), EPS.domain, "eps", None,
                "ε̂, added to √vₜ before the bias corrections are applied (Keras/TF)")


def _scale_by_adam_eps_hat(amsgrad: bool) -> Transform:
    """Keras/TF's form uₜ ← αₜ·mₜ/(√vₜ + ε̂), the bias corrections folded into the step size
    αₜ = √(1 − β₂ᵗ)/(1 − β₁ᵗ) (Kingma & Ba 2015, end of §2; Keras 3 ``adam.py``). With
    ``amsgrad`` Keras takes the running maximum of the raw vₜ, as torch does."""

    def apply(b: Builder) -> None:
        m, v = adam_moments(b, B1, B2, amsgrad=amsgrad)
        size = b.let(sp.Symbol("alpha_t", positive=True),
                     sp.sqrt(ema_weight_sum(B2)) / ema_weight_sum(B1),
                     "bias corrections folded into the step size")
        divide_by_root(b, size * m, v, EPS_HAT)

    return apply


def _scale_by_amsgrad_reddi() -> Transform:
    """Reddi et al. 2018, Algorithm 2: uₜ ← mₜ/(√v̂ₜ + ε) with v̂ₜ = max(v̂ₜ₋₁, vₜ) and no bias
    correction of either moment (the paper has no ε; ε → 0 recovers it)."""

    def apply(b: Builder) -> None:
        m, vmax = adam_moments(b, B1, B2, amsgrad=True)
        divide_by_root(b, m, vmax, EPS)

    return apply


ADAM_EPS_HAT = Spec(
    name="adam:eps-hat",
    summary="Adam with ε̂ added before the bias corrections (Keras / TensorFlow form)",
    sources=("Kingma & Ba 2015, end of §2", "Keras 3.x keras/src/optimizers/adam.py",
             "tf.compat.v1.train.AdamOptimizer docs"),
    mirrors="keras.optimizers.Adam",
    defaults={**ADAM_DEFAULTS, "eps": 1e-7, "decoupled_weight_decay": False},
    flags=(*FLAGS, "decoupled_weight_decay"),
    build=lambda f: chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                           decoupled=f["decoupled_weight_decay"]),
                          _scale_by_adam_eps_hat(f["amsgrad"]), scale_by_lr(LR)),
    notes="Keras's own weight_decay is decoupled and lr-scaled (decoupled_weight_decay=True, "
          "θ −= θ·λ·γ before the step, Keras 3 BaseOptimizer._apply_weight_decay); by "
          "default weight_decay is L2 as in adam, so that only the ε convention differs. "
          "Keras default ε̂ = 1e-7.",
)

ADAM_AMSGRAD_REDDI = Spec(
    name="adam:amsgrad-reddi",
    summary="AMSGrad as in the paper: max of the raw second moment, no bias corrections",
    sources=("Reddi, Kale & Kumar 2018, Algorithm 2",),
    mirrors="torch.optim.Adam(amsgrad=True)",
    defaults={k: v for k, v in ADAM_DEFAULTS.items() if k != "amsgrad"},
    flags=("maximize",),
    build=lambda f: chain(negate_if(f["maximize"]), add_l2(WD), _scale_by_amsgrad_reddi(),
                          scale_by_lr(LR)),
)

ADAM_EPS_ROOT = Spec(
    name="adam:eps-root",
    summary="Adam with a second ε inside the root: m̂/(√(v̂ + ε_root) + ε) (optax)",
    sources=("Kingma & Ba 2015, Algorithm 1", OPTAX),
    mirrors="optax.adam",
    defaults={**ADAM_DEFAULTS, "decoupled_weight_decay": False, "eps_root": 0.0},
    flags=(*FLAGS, "decoupled_weight_decay"),
    build=lambda f: chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                           decoupled=f["decoupled_weight_decay"]),
                          scale_by_adam(B1, B2, EPS, amsgrad=f["amsgrad"], eps_root=EPS_ROOT),
                          scale_by_lr(LR)),
    notes="optax's eps_root (default 0) keeps the root differentiable at v̂ = 0; with "
          "ε_root = 0 this is adam. optax.adam takes no weight decay.",
)

ADAMW_EPS_ROOT = _adamw(
    "adamw:eps-root", "AdamW (lr-scaled decay) with ε_root inside the root (optax adamw)", LR,
    OPTAX, {"weight_decay": 1e-4, "eps_root": 0.0}, eps_root=EPS_ROOT, mirrors="optax.adamw",
    notes="optax chains scale_by_adam, add_decayed_weights and the learning rate: "
          "θ ← θ − γ(u + λθ), the same as torch's θ(1 − γλ) − γu. optax's default λ is 1e-4.")


def _scale_by_amsgrad_optax(f):
    return scale_by_amsgrad_corrected(B1, B2, EPS, EPS_ROOT, correct_m=f["bias_correction_mu"],
                                      correct_v=f["bias_correction_nu"])


ADAM_AMSGRAD_OPTAX = Spec(
    name="adam:amsgrad-optax",
    summary="AMSGrad with the maximum over the bias-corrected v̂ (optax amsgrad)",
    sources=("Reddi, Kale & Kumar 2018, Algorithm 2",
             "optax 0.2.8 optax/_src/alias.py amsgrad, transform.py scale_by_amsgrad"),
    mirrors="optax.amsgrad",
    defaults={**{k: v for k, v in ADAM_DEFAULTS.items() if k != "amsgrad"}, "eps_root": 0.0,
              "bias_correction_mu": True, "bias_correction_nu": True},
    flags=("maximize", "bias_correction_mu", "bias_correction_nu"),
    build=lambda f: chain(negate_if(f["maximize"]), add_l2(WD), _scale_by_amsgrad_optax(f),
                          scale_by_lr(LR)),
    notes="torch takes the maximum of the raw v and corrects it (adam with amsgrad); optax "
          "corrects first, ṽₜ = max(ṽₜ₋₁, vₜ/(1 − β₂ᵗ)). bias_correction_mu = "
          "bias_correction_nu = False is Reddi et al.'s form (adam:amsgrad-reddi) with ε_root.",
)

register(ADAM, ADAMW, ADAMW_PAPER, ADAMW_FULLY_DECOUPLED, ADAMW_DECAY_AFTER, ADAM_EPS_HAT,
         ADAM_AMSGRAD_REDDI, ADAM_EPS_ROOT, ADAMW_EPS_ROOT, ADAM_AMSGRAD_OPTAX)
