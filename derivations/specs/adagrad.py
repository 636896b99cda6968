"""Adagrad: torch's form (decayed rate, ε outside the root) and Keras's (ε inside).

torch.optim 2.13 ``adagrad.py`` (``_single_tensor_adagrad``):

```text
g ← −g if maximize;  g ← g + λθ (L2)            [or θ ← θ(1 − γₜλ) if decoupled]
γₜ = γ/(1 + (t − 1)κ);  sₜ = sₜ₋₁ + g²  (s₀ = initial_accumulator_value)
θ ← θ − γₜ·g/(√sₜ + ε)
```

Sources: Duchi, Hazan & Singer 2011, diagonal AdaGrad (Figure 1 / eq. 3); Keras 3
``keras/src/optimizers/adagrad.py`` (keras-team/keras @40c7497: ``variable −= lr·g/√(acc + ε)``,
accumulator 0.1, ε 1e-7, lr 1e-3); optax ``scale_by_rss`` (same ε inside, 0.1 start).
"""

from __future__ import annotations

from ..spec import Spec, register
from ..symbols import hyper
from ..transforms import (DECAYED_LR, chain, descend, inverse_time_decay, prepare_gradient,
                          scale_by_adagrad)

LR, KAPPA, WD, S0, EPS = (hyper(k) for k in
                          ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"))
TORCH = "torch.optim 2.13 adagrad.py"
FLAGS = ("maximize", "decoupled_weight_decay")

ADAGRAD = Spec(
    name="adagrad", summary="Adagrad with lr decay, ε outside the root (torch.optim.Adagrad)",
    sources=("Duchi, Hazan & Singer 2011, diagonal AdaGrad", TORCH), mirrors="torch.optim.Adagrad",
    defaults={"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0,
              "eps": 1e-10, "maximize": False, "decoupled_weight_decay": False},
    flags=FLAGS,
    build=lambda f: chain(inverse_time_decay(LR, KAPPA),
                          prepare_gradient(WD, DECAYED_LR, maximize=f["maximize"],
                                           decoupled=f["decoupled_weight_decay"]),
                          scale_by_adagrad(EPS, S0, eps_inside=False), descend(DECAYED_LR)),
    notes="decoupled_weight_decay scales the decay by the decayed rate γₜ (θ ← θ(1 − γₜλ)), "
          "the rate the step itself uses.",
)

ADAGRAD_KERAS = Spec(
    name="adagrad:keras", summary="Adagrad with ε inside the root, accumulator from 0.1 (Keras)",
    sources=("Duchi, Hazan & Singer 2011, diagonal AdaGrad", "Keras 3 keras/src/optimizers/adagrad.py",
             "optax optax/_src/transform.py scale_by_rss"),
    mirrors="keras.optimizers.Adagrad",
    defaults={"lr": 1e-3, "initial_accumulator_value": 0.1, "eps": 1e-7, "weight_decay": 0.0,
              "maximize": False, "decoupled_weight_decay": False},
    flags=FLAGS,
    build=lambda f: chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                           decoupled=f["decoupled_weight_decay"]),
                          scale_by_adagrad(EPS, S0, eps_inside=True), descend(LR)),
    notes="Keras's own weight_decay is decoupled and lr-scaled (decoupled_weight_decay=True); "
          "optax's scale_by_rss returns 0 where the accumulator is 0 (only if s₀ = 0).",
)

register(ADAGRAD, ADAGRAD_KERAS)
