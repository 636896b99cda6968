"""Adadelta (one formula everywhere; the frameworks differ only in defaults).

torch.optim 2.13 ``adadelta.py`` (``_single_tensor_adadelta``):

```text
g ← −g if maximize;  g ← g + λθ (L2)             [or θ ← θ(1 − γλ) if decoupled]
vₜ = ρvₜ₋₁ + (1 − ρ)g²;  Δₜ = √(uₜ₋₁ + ε)/√(vₜ + ε)·g;  uₜ = ρuₜ₋₁ + (1 − ρ)Δₜ²
θ ← θ − γΔₜ
```

Sources: Zeiler 2012, Algorithm 1 (γ = 1 recovers it); Keras 3
``keras/src/optimizers/adadelta.py`` (keras-team/keras @13de96a): the same lines, defaults in
`KERAS_DEFAULTS`.
"""

from __future__ import annotations

from ..spec import Spec, register
from ..symbols import hyper
from ..transforms import chain, descend, prepare_gradient, scale_by_adadelta

LR, RHO, EPS, WD = (hyper(k) for k in ("lr", "rho", "eps", "weight_decay"))
KERAS_DEFAULTS = {"lr": 1e-3, "rho": 0.95, "eps": 1e-7}
"""keras.optimizers.Adadelta's defaults (learning_rate, rho, epsilon): same formula."""

ADADELTA = Spec(
    name="adadelta", summary="Adadelta with a learning rate (torch.optim.Adadelta)",
    sources=("Zeiler 2012, Algorithm 1", "torch.optim 2.13 adadelta.py",
             "Keras 3 keras/src/optimizers/adadelta.py"),
    mirrors="torch.optim.Adadelta",
    defaults={"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0, "maximize": False,
              "decoupled_weight_decay": False},
    flags=("maximize", "decoupled_weight_decay"),
    build=lambda f: chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                           decoupled=f["decoupled_weight_decay"]),
                          scale_by_adadelta(RHO, EPS), descend(LR)),
    notes=f"Keras 3 computes the same lines with defaults {KERAS_DEFAULTS} (lr, rho, eps); "
          "torch accepts ρ = 1, here 0 ≤ ρ < 1.",
)

register(ADADELTA)
