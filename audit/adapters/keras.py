"""Keras 3 targets (``keras.optimizers.Adam`` …) on the torch backend.

The optimizer is built on ``keras.Variable`` s of the audited dtype and stepped with
``optimizer.apply(grads, variables)``; the learning rate is assigned between steps. Keras
exposes no torch-style state (its ``momentums``/``velocities`` hold other quantities for
some rules): steps are compared with the trajectory bound.

Keyword translation (torch → Keras 3.15): ``lr`` → ``learning_rate``, ``betas`` →
``beta_1, beta_2``, ``eps`` → ``epsilon``, ``alpha``/``rho`` → ``rho``, ``momentum``,
``nesterov``, ``centered``, ``amsgrad``, ``initial_accumulator_value``. Keras's
``weight_decay`` is decoupled and lr-scaled for every optimizer (``θ −= θ·λ·lr`` before the
update, ``BaseOptimizer._apply_weight_decay``): torch's L2 decay has no Keras equivalent, so a
configuration with L2 decay is skipped and one with ``decoupled_weight_decay=True`` maps
to it. The expected variants:

| Keras | expected variant | convention (``CONVENTIONS.md``) |
|---|---|---|
| Adam | adam:eps-hat | ε̂ added before the bias corrections |
| AdamW | adam:eps-hat | the same, decoupled decay (skipped: no registered variant) |
| SGD | sgd:sutskever | v = μv − γg, θ += v |
| RMSprop | rmsprop:keras-centered | ε inside the root, γ inside the momentum |
| Adagrad | adagrad:keras | ε inside the root |
| Adadelta | adadelta |  |
| Nadam | nadam:keras3 | μₜ = β₁(1 − ½·0.96ᵗ), one shared product |
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Adapter, Session, Unsupported, translate

__all__ = ["KerasAdapter", "EXPECTED"]


def _betas(v):
    return {"beta_1": v[0], "beta_2": v[1]}


_COMMON = {"lr": "learning_rate", "maximize": None, "eps": "epsilon", "weight_decay": None,
           "decoupled_weight_decay": None}
TABLES: dict[str, tuple[str, dict]] = {
    "Adam": ("adam:eps-hat", {**_COMMON, "betas": _betas, "amsgrad": "amsgrad"}),
    "AdamW": ("adam:eps-hat", {**_COMMON, "betas": _betas, "amsgrad": "amsgrad"}),
    "SGD": ("sgd:sutskever", {**_COMMON, "momentum": "momentum", "nesterov": "nesterov",
                              "dampening": None}),
    "RMSprop": ("rmsprop:keras-centered", {**_COMMON, "alpha": "rho", "momentum": "momentum",
                                           "centered": "centered"}),
    "Adagrad": ("adagrad:keras", {**_COMMON, "lr_decay": None,
                                  "initial_accumulator_value": "initial_accumulator_value"}),
    "Adadelta": ("adadelta", {**_COMMON, "rho": "rho"}),
    "Nadam": ("nadam:keras3", {**_COMMON, "betas": _betas, "momentum_decay": None}),
}
EXPECTED = {name: rule for name, (rule, _) in TABLES.items()}


class KerasSession(Session):
    def __init__(self, cls, kwargs, params, dtype):
        import keras
        self.keras, self.dtype = keras, dtype
        self.variables = [keras.Variable(np.asarray(p), dtype=dtype) for p in params]
        self.optimizer = cls(**kwargs)
        self.optimizer.build(self.variables)

    def step(self, grads, lr):
        ops = self.keras.ops
        self.optimizer.learning_rate = lr
        self.optimizer.apply([ops.convert_to_tensor(np.asarray(g), dtype=self.dtype)
                              for g in grads], self.variables)

    def params(self):
        return [np.asarray(v.numpy(), dtype=np.float64).reshape(-1).tolist()
                for v in self.variables]


class KerasAdapter(Adapter):
    framework = "keras"

    def __init__(self, target: Any, name: str):
        super().__init__(target, name)
        if name not in TABLES:
            raise ValueError(f"keras.optimizers.{name} is not an audited optimizer; "
                             f"audited: {', '.join(TABLES)}")

    def expected(self):
        return EXPECTED[self.name]

    def describe(self):
        import keras
        return f"keras {keras.__version__} ({keras.backend.backend()} backend)"

    def open(self, hyper, params, dtype, device, defaults=None):
        hyper = dict(hyper)
        wd = hyper.pop("weight_decay", 0.0)
        decoupled = hyper.pop("decoupled_weight_decay", False)
        kwargs = translate(hyper, TABLES[self.name][1], defaults or {}, "keras." + self.name)
        if wd:
            if not decoupled:
                raise Unsupported("Keras has no L2 weight decay (its weight_decay is "
                                  "decoupled, θ −= θ·λ·lr)")
            kwargs["weight_decay"] = wd
        elif self.name == "AdamW":
            kwargs["weight_decay"] = 0.0
        return KerasSession(self.target, kwargs, params, dtype)
