"""RMSprop: torch's form and the Keras / optax conventions (ε inside, γ inside the momentum).

torch.optim 2.13 ``rmsprop.py`` (``_single_tensor_rmsprop``):

```text
g ← −g if maximize;  g ← g + λθ (L2)             [or θ ← θ(1 − γλ) if decoupled]
vₜ = αvₜ₋₁ + (1 − α)g²;  centered: ḡₜ = αḡₜ₋₁ + (1 − α)g, d = √(vₜ − ḡₜ²) + ε; else √vₜ + ε
μ > 0: bₜ = μbₜ₋₁ + g/d, θ ← θ − γbₜ;  else θ ← θ − γ·g/d
```

Sources: Tieleman & Hinton 2012, lecture 6e (RMSprop); Graves 2013, §4 eq. (38)–(45) (centered,
momentum); Keras 3 ``keras/src/optimizers/rmsprop.py`` (keras-team/keras @13de96a:
``increment = lr·g/√(v + ε)`` or ``/√(v − ḡ² + ε)``, ``momentum ← μ·momentum + increment``,
``variable −= momentum``); optax ``rmsprop`` = ``scale_by_rms`` / ``scale_by_stddev``
(``rsqrt(ν + ε)``, ``rsqrt(ν − μ² + ε)``), then scale by −γ, then ``trace(momentum)``;
its ``initial_scale`` starts ν at v₀ (optax 0.2.8 ``transform.py``: ``full_like(params,
initial_scale)``), as TensorFlow 1's ``RMSPropOptimizer`` and timm 1.0.31 ``RMSpropTF``
(``timm/optim/rmsprop_tf.py``: ``square_avg = ones_like(p)``, ε inside, γ inside the momentum
unless ``lr_in_momentum=False``) do with v₀ = 1. The variants with ε inside the root take v₀
as ``initial_scale`` (default 0).
"""

from __future__ import annotations

from ..spec import Spec, register
from ..symbols import hyper
from ..transforms import chain, descend, prepare_gradient, scale_by_rms, scale_update, trace

LR, ALPHA, EPS, WD, MU, V0 = (hyper(k) for k in ("lr", "alpha", "eps", "weight_decay", "momentum",
                                                  "initial_scale"))
TORCH = "torch.optim 2.13 rmsprop.py"
PAPERS = ("Tieleman & Hinton 2012, lecture 6e", "Graves 2013, §4 (centered)")
KERAS = "Keras 3 keras/src/optimizers/rmsprop.py"
OPTAX = "optax optax/_src/alias.py rmsprop, transform.py scale_by_rms / scale_by_stddev"
TIMM = "timm 1.0.31 timm/optim/rmsprop_tf.py RMSpropTF"
DEFAULTS = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
            "centered": False, "maximize": False, "decoupled_weight_decay": False}
FLAGS = ("centered", "maximize", "decoupled_weight_decay")


def _rmsprop(*, eps_inside: bool, lr_in_momentum: bool):
    """The chain for one convention: ε inside or outside the root, γ before or after the
    momentum buffer (which torch, Keras and optax all keep only for momentum > 0); the ε-inside
    forms start v at ``initial_scale``."""

    def build(f):
        momentum = (chain(scale_update(LR), trace(MU, kept_at_zero=False), descend())
                    if lr_in_momentum else chain(trace(MU, kept_at_zero=False), descend(LR)))
        return chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                      decoupled=f["decoupled_weight_decay"]),
                     scale_by_rms(ALPHA, EPS, centered=f["centered"], eps_inside=eps_inside,
                                  initial=V0 if eps_inside else None),
                     momentum)

    return build


RMSPROP = Spec(
    name="rmsprop", summary="RMSprop, ε outside the root, γ outside the momentum (torch)",
    sources=(*PAPERS, TORCH), mirrors="torch.optim.RMSprop", defaults=DEFAULTS, flags=FLAGS,
    build=_rmsprop(eps_inside=False, lr_in_momentum=False),
    notes="With momentum 0 the buffer degenerates to g/d and torch keeps no momentum_buffer "
          "(the reference omits it). Domains: torch accepts any α ≥ 0 and μ ≥ 0; here [0, 1).",
)

RMSPROP_EPS_INSIDE = Spec(
    name="rmsprop:eps-inside", summary="RMSprop with ε inside the root: √(v + ε), √(v − ḡ² + ε)",
    sources=(*PAPERS, OPTAX, KERAS, TIMM), mirrors="timm.optim.RMSpropTF(lr_in_momentum=False)",
    defaults={**DEFAULTS, "initial_scale": 0.0}, flags=FLAGS,
    build=_rmsprop(eps_inside=True, lr_in_momentum=False),
    notes="The ε placement (and v₀ = initial_scale, default 0) differs from rmsprop; γ stays "
          "outside the momentum buffer.",
)

RMSPROP_LR_IN_MOMENTUM = Spec(
    name="rmsprop:lr-in-momentum", summary="RMSprop with γ inside the momentum: b = μb + γg/d",
    sources=(*PAPERS, KERAS, OPTAX), mirrors="torch.optim.RMSprop", defaults=DEFAULTS,
    flags=FLAGS, build=_rmsprop(eps_inside=False, lr_in_momentum=True),
    notes="At constant γ the buffer is γ times torch's and the parameters agree; under a "
          "schedule they differ. ε stays outside the root as in torch.",
)

RMSPROP_KERAS = Spec(
    name="rmsprop:keras-centered",
    summary="Keras 3 RMSprop: ε inside the root, centered √(v − ḡ² + ε), γ inside the momentum",
    sources=(*PAPERS, KERAS, OPTAX, TIMM), mirrors="keras.optimizers.RMSprop",
    defaults={**DEFAULTS, "lr": 1e-3, "alpha": 0.9, "eps": 1e-7, "centered": True,
              "initial_scale": 0.0},
    flags=FLAGS, build=_rmsprop(eps_inside=True, lr_in_momentum=True),
    notes="Keras names α rho. With centered=False it is Keras's plain RMSprop √(v + ε). "
          "Keras's own weight_decay is decoupled and lr-scaled (decoupled_weight_decay=True). "
          "v₀ = initial_scale: 0 in Keras, optax's initial_scale, 1 in timm RMSpropTF.",
)

register(RMSPROP, RMSPROP_EPS_INSIDE, RMSPROP_LR_IN_MOMENTUM, RMSPROP_KERAS)
