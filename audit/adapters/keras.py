"""Keras 3 targets (``keras.optimizers.Adam`` …) on the torch backend.

The optimizer is built on ``keras.Variable`` s of the audited dtype, with Keras's floatx
set to that dtype (float32 or float64: the learning-rate variable is created in floatx), and
stepped with ``optimizer.apply(grads, variables)``; the learning rate is assigned between
steps. Keras exposes no torch-style state (its ``momentums``/``velocities`` hold other
quantities for some rules): steps are compared with the trajectory bound.

Precision model (`rounding`; ``keras/src/optimizers/adam.py``, ``nadam.py``,
``base_optimizer.py`` @ 3.15.1): every per-step scalar is computed in the variables' dtype
— ``lr = ops.cast(learning_rate, variable.dtype)``, ``beta_1_power =
ops.power(ops.cast(self.beta_1, variable.dtype), local_step)``, ``alpha = lr *
ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)`` (Nadam: ``u_t = beta_1 * (1.0 - 0.5 *
ops.power(decay, local_step))`` and its product, likewise), while ``1 - self.beta_1`` and
``self.epsilon`` are Python floats rounded once when they meet a float32 tensor; weight
decay is ``variable - variable * wd * lr`` with ``wd``, ``lr`` cast to the variables' dtype.
At float32 that is `Rounding` with float32 hyperparameters, float32 scalar arithmetic
and torch's float32 ``pow`` (glibc ``powf``, within 1 ULP); at float64, exact hyperparameters
and float64 scalars with ``pow`` within 1 ULP.

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

from contextlib import contextmanager
from typing import Any

import numpy as np

from optproof.reference.bounds import Rounding

from .base import Adapter, Session, Unsupported, check_keywords, translate

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
#: Keras's keyword → optproof's, for constructor arguments the reference must see
REVERSE = {"beta_1": "betas[0]", "beta_2": "betas[1]", "epsilon": "eps",
           "learning_rate": "lr"}


class KerasSession(Session):
    def __init__(self, cls, kwargs, params, dtype):
        import keras
        self.keras, self.dtype = keras, dtype
        with self._floatx():
            self.variables = [keras.Variable(np.asarray(p), dtype=dtype) for p in params]
            self.optimizer = cls(**kwargs)
            self.optimizer.build(self.variables)

    @contextmanager
    def _floatx(self):
        """Keras's floatx set to the audited dtype: the learning-rate variable is created in
        it, and a Python float meeting a tensor (Nadam's ``ops.power(0.96, t)``) is
        converted to it."""
        floatx = self.keras.config.floatx()
        if self.dtype in ("float32", "float64"):
            self.keras.config.set_floatx(self.dtype)
        try:
            yield
        finally:
            self.keras.config.set_floatx(floatx)

    def step(self, grads, lr):
        ops = self.keras.ops
        with self._floatx():
            if lr is not None:  # None: the target's own
                self.optimizer.learning_rate = lr
            self.optimizer.apply([ops.convert_to_tensor(np.asarray(g), dtype=self.dtype)
                                  for g in grads], self.variables)

    def params(self):
        return [np.asarray(v.numpy(), dtype=np.float64).reshape(-1).tolist()
                for v in self.variables]


class KerasAdapter(Adapter):
    framework = "keras"
    reverse = REVERSE

    def __init__(self, target: Any, name: str, args=None):
        super().__init__(target, name, args)
        if name not in TABLES:
            raise ValueError(f"keras.optimizers.{name} is not an audited optimizer; "
                             f"audited: {', '.join(TABLES)}")
        check_keywords(target, self.args, f"keras.optimizers.{name}",
                       excluded=("learning_rate",))
        if self.args:  # Keras's own check of the **kwargs its base classes take
            try:
                target(**self.args)
            except (TypeError, ValueError) as error:
                text = " ".join(str(error).split())
                raise ValueError(f"--arg: keras.optimizers.{name} rejects "
                                 f"{', '.join(self.args)}: {text}") from None

    def expected(self):
        return EXPECTED[self.name]

    def describe(self):
        import keras
        args = "".join(f", {k}={v!r}" for k, v in self.args.items())
        return f"keras {keras.__version__} ({keras.backend.backend()} backend{args})"

    def rounding(self, dtype):
        if dtype not in ("float32", "float64"):
            return None
        return Rounding(f"Keras at floatx {dtype}: per-step scalars in {dtype}, pow within "
                        f"1 ULP" + (", hyperparameters rounded to float32"
                                    if dtype == "float32" else ""),
                        hyper_dtype="float32" if dtype == "float32" else None,
                        scalar_dtype=dtype, power="libm",
                        source="keras/src/optimizers/adam.py, nadam.py, base_optimizer.py "
                               "@ 3.15.1")

    def open(self, hyper, params, dtype, device, defaults=None):
        hyper = self.constructor_hyper(hyper)
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
        return KerasSession(self.target, {**kwargs, **self.args}, params, dtype)

    #: Keras's weight_decay is decoupled and lr-scaled for every optimizer
    defaults_flags = {"decoupled_weight_decay": True}

    def open_defaults(self, params, dtype, given):
        return KerasSession(self.target, {**self.args, **given}, params, dtype)
