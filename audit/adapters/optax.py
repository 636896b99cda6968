"""optax targets: gradient transformations such as ``optax.adamw`` (jax on CPU).

The transformation is built with ``optax.inject_hyperparams`` so that the learning rate can
change between steps; parameters are a list of jax arrays of the audited dtype (float64
enables ``jax_enable_x64`` for the call; float32 disables it, so that hyperparameters live
in float32 as jax's default arithmetic has them). optax exposes no torch-style state: steps
are compared with the trajectory bound.

Keyword translation (torch → optax, checked against optax 0.2.8): ``lr`` → ``learning_rate``,
``betas`` → ``b1, b2``, ``eps``, ``weight_decay`` (``adamw``: decoupled γλ; ``adadelta``:
``add_decayed_weights`` before the rule, i.e. L2), ``alpha`` → ``decay`` (rmsprop),
``momentum`` (0 → ``None``), ``nesterov``, ``centered``, ``rho``,
``initial_accumulator_value``. The variant each transformation documents:

| optax | expected variant | notes |
|---|---|---|
| adam | adam | no weight decay, no maximize |
| adamw | adamw | "documented as following torch" |
| amsgrad | adam (amsgrad=True) | optax's default maximum is over the corrected v̂ |
| sgd | sgd:optax-trace | no dampening, no weight decay |
| rmsprop | rmsprop:keras-centered | ε inside the root, γ before the momentum trace |
| adagrad | adagrad:keras | ε inside the root, no lr decay |
| adadelta | adadelta |  |
| nadam | nadam:optax | Adam with Nesterov, constant β₁ |
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Adapter, Session, Unsupported, translate

__all__ = ["OptaxAdapter", "EXPECTED"]


def _betas(v):
    return {"b1": v[0], "b2": v[1]}


def _momentum(v):
    return {"momentum": v or None}


_COMMON = {"lr": "learning_rate", "maximize": None, "decoupled_weight_decay": None,
           "weight_decay": None}
TABLES: dict[str, tuple[str, dict]] = {
    "adam": ("adam", {**_COMMON, "betas": _betas, "eps": "eps", "amsgrad": None}),
    "adamw": ("adamw", {**_COMMON, "betas": _betas, "eps": "eps", "weight_decay": "weight_decay",
                        "amsgrad": None}),
    "amsgrad": ("adam", {**_COMMON, "betas": _betas, "eps": "eps", "amsgrad": lambda v: {}}),
    "sgd": ("sgd:optax-trace", {**_COMMON, "momentum": _momentum, "nesterov": "nesterov",
                                "dampening": None}),
    "rmsprop": ("rmsprop:keras-centered", {**_COMMON, "alpha": "decay", "eps": "eps",
                                           "centered": "centered", "momentum": _momentum}),
    "adagrad": ("adagrad:keras", {**_COMMON, "eps": "eps", "lr_decay": None,
                                  "initial_accumulator_value": "initial_accumulator_value"}),
    "adadelta": ("adadelta", {**_COMMON, "rho": "rho", "eps": "eps",
                              "weight_decay": "weight_decay"}),
    "nadam": ("nadam:optax", {**_COMMON, "betas": _betas, "eps": "eps", "momentum_decay": None}),
}
EXPECTED = {name: rule for name, (rule, _) in TABLES.items()}
STATIC = ("nesterov", "centered")


class OptaxSession(Session):
    def __init__(self, fn, kwargs, params, dtype):
        import jax
        jax.config.update("jax_enable_x64", dtype == "float64")
        import jax.numpy as jnp
        import optax
        self.jnp, self.optax, self.dtype = jnp, optax, getattr(jnp, dtype)
        static = tuple(k for k in STATIC if k in kwargs)
        self.tx = optax.inject_hyperparams(fn, static_args=static)(**kwargs)
        self.arrays = [jnp.asarray(p, dtype=self.dtype) for p in params]
        self.opt_state = self.tx.init(self.arrays)

    def step(self, grads, lr):
        jnp = self.jnp
        self.opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, dtype=self.dtype)
        updates, self.opt_state = self.tx.update(
            [jnp.asarray(g, dtype=self.dtype) for g in grads], self.opt_state, self.arrays)
        self.arrays = self.optax.apply_updates(self.arrays, updates)

    def params(self):
        return [np.asarray(p, dtype=np.float64).reshape(-1).tolist() for p in self.arrays]


class OptaxAdapter(Adapter):
    framework = "optax"

    def __init__(self, target: Any, name: str):
        super().__init__(target, name)
        if name not in TABLES:
            raise ValueError(f"optax.{name} is not an audited transformation; "
                             f"audited: {', '.join(TABLES)}")

    def expected(self):
        return EXPECTED[self.name]

    def describe(self):
        import optax
        return f"optax {optax.__version__}"

    def open(self, hyper, params, dtype, device, defaults=None):
        if dtype not in ("float32", "float64"):
            raise Unsupported(f"optax audits run in float32 or float64, not {dtype}")
        if self.name == "amsgrad" and not hyper.get("amsgrad"):
            raise Unsupported("optax.amsgrad is AMSGrad only (configuration has amsgrad=False)")
        kwargs = translate(hyper, TABLES[self.name][1], defaults or {}, "optax." + self.name)
        if self.name == "adam" and hyper.get("amsgrad"):
            raise Unsupported("optax.adam has no amsgrad (see optax.amsgrad)")
        return OptaxSession(self.target, kwargs, params, dtype)
