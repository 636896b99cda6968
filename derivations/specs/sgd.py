"""SGD with momentum: torch's form, Sutskever's (Keras) form, optax's trace, and SGDW.

torch.optim 2.13 ``sgd.py`` (``_single_tensor_sgd``):

```text
g ← −g if maximize;  g ← g + λθ (L2)                 [or θ ← θ(1 − γλ) if decoupled]
b₁ = g₁ (a copy: no dampening),  bₜ = μbₜ₋₁ + (1 − τ)gₜ     (only if μ ≠ 0)
u = g + μb (Nesterov) or u = b;  θ ← θ − γu
```

Sources: Sutskever, Martens, Dahl & Hinton 2013, eq. (1)–(4) (classical and Nesterov momentum,
γ inside the velocity); Keras 3 ``keras/src/optimizers/sgd.py`` (keras-team/keras @1937d48);
optax ``trace`` (``optax/_src/transform.py``; ``optax.sgd`` = trace then scale by −γ);
timm ``optim/sgdw.py`` (@03fa149: θ ← θ(1 − γλ), then torch's momentum); Loshchilov & Hutter
2019, Algorithm 1 (SGDW).
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ..spec import Spec, register
from ..symbols import hyper
from ..transforms import chain, descend, prepare_gradient, sutskever_momentum, trace

LR, MU, TAU, WD = (hyper(k) for k in ("lr", "momentum", "dampening", "weight_decay"))
# torch: "Nesterov momentum requires a momentum and zero dampening" — as domains
MU_NESTEROV = replace(MU, domain=sp.Interval.open(0, 1), meaning="momentum factor (Nesterov: > 0)")
TAU_NESTEROV = replace(TAU, domain=sp.FiniteSet(0), meaning="dampening (Nesterov: must be 0)")
TORCH = "torch.optim 2.13 sgd.py"
DEFAULTS = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
            "nesterov": False, "maximize": False, "decoupled_weight_decay": False}
FLAGS = ("nesterov", "maximize", "decoupled_weight_decay")


def _torch(f, decoupled: bool):
    """torch's SGD with decay coupled (L2) or not; Nesterov restricts μ > 0, τ = 0."""
    mu, tau = (MU_NESTEROV, TAU_NESTEROV) if f["nesterov"] else (MU, TAU)
    return chain(prepare_gradient(WD, LR, maximize=f["maximize"], decoupled=decoupled),
                 trace(mu, tau, nesterov=f["nesterov"], torch_start=True, kept_at_zero=False),
                 descend(LR))


SGD = Spec(
    name="sgd", summary="SGD with momentum, dampening and Nesterov (torch.optim.SGD)",
    sources=("Sutskever et al. 2013, eq. (1)–(4)", TORCH), mirrors="torch.optim.SGD",
    defaults=DEFAULTS, flags=FLAGS, build=lambda f: _torch(f, f["decoupled_weight_decay"]),
    notes="The first step copies g₁ into the buffer (τₜ = 0 at t = 1). With momentum 0 torch "
          "keeps no momentum_buffer: bₜ = gₜ and the reference omits the key. A run started "
          "from step 0 with a given buffer adds g₁ to μb₀ undamped. Domains: torch accepts "
          "momentum ≥ 1 and any dampening; here 0 ≤ μ < 1 and 0 ≤ τ ≤ 1.",
)

SGD_SUTSKEVER = Spec(
    name="sgd:sutskever", summary="SGD with the learning rate inside the velocity (Keras form)",
    sources=("Sutskever et al. 2013, eq. (1)–(4)", "Keras 3 keras/src/optimizers/sgd.py"),
    mirrors="keras.optimizers.SGD",
    defaults={**{k: v for k, v in DEFAULTS.items() if k != "dampening"}, "lr": 0.01},
    flags=FLAGS,
    build=lambda f: chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                           decoupled=f["decoupled_weight_decay"]),
                          sutskever_momentum(MU, LR, nesterov=f["nesterov"])),
    notes="Equals torch's form at constant lr with vₜ = −γ·bₜ; differs under a schedule. "
          "Keras's own weight_decay is decoupled (θ −= θ·λ·lr: decoupled_weight_decay=True).",
)

SGD_OPTAX = Spec(
    name="sgd:optax-trace", summary="SGD with optax's trace: bₜ = gₜ + μbₜ₋₁, no dampening",
    sources=("optax optax/_src/transform.py trace; optax.sgd",), mirrors="optax.sgd",
    defaults={k: v for k, v in DEFAULTS.items() if k != "dampening"}, flags=FLAGS,
    build=lambda f: chain(prepare_gradient(WD, LR, maximize=f["maximize"],
                                           decoupled=f["decoupled_weight_decay"]),
                          trace(MU, nesterov=f["nesterov"]), descend(LR)),
    notes="Coincides with sgd at dampening 0 (b₀ = 0 makes torch's copy-start the same line); "
          "optax keeps the trace even at momentum 0. weight_decay is L2 here (optax.sgd has none).",
)

SGDW = Spec(
    name="sgdw", summary="SGD with decoupled weight decay θ ← θ(1 − γλ), torch momentum",
    sources=("Loshchilov & Hutter 2019, Algorithm 1", "timm optim/sgdw.py", TORCH),
    mirrors="timm.optim.SGDW", defaults={k: v for k, v in DEFAULTS.items()
                                         if k != "decoupled_weight_decay"},
    flags=("nesterov", "maximize"), build=lambda f: _torch(f, True),
    notes="The paper's SGDW scales the decay by the schedule multiplier ηₜ and keeps γ inside "
          "the momentum; this is the lr-scaled form of timm and torch's AdamW.",
)

register(SGD, SGD_SUTSKEVER, SGD_OPTAX, SGDW)
