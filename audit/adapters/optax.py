"""optax targets: gradient transformations such as ``optax.adamw`` (jax on CPU).

The transformation is built with ``optax.inject_hyperparams`` so that the learning rate can
change between steps; parameters are a list of jax arrays of the audited dtype (float64
enables ``jax_enable_x64`` for the call; float32 disables it, so that hyperparameters live
in float32 as jax's default arithmetic has them). optax exposes no torch-style state: steps
are compared with the trajectory bound.

Precision model (`rounding`; ``optax/_src/transform.py`` ``scale_by_adam`` and
``optax/tree_utils/_tree_math.py`` ``tree_bias_correction`` @ 0.2.8): the hyperparameters
are arrays of the audited dtype (``inject_hyperparams``), the per-step scalars are computed
in it — ``bias_correction_ = 1 - decay**count`` with an int32 ``count``, which jax
evaluates by repeated multiplication — and the moments are divided by them elementwise.

Keyword translation (torch → optax, checked against optax 0.2.8): ``lr`` → ``learning_rate``,
``betas`` → ``b1, b2``, ``eps``, ``weight_decay`` (``adamw``: decoupled γλ; ``adadelta``:
``add_decayed_weights`` before the rule, i.e. L2), ``alpha`` → ``decay`` (rmsprop),
``momentum`` (0 → ``None``), ``nesterov``, ``centered``, ``rho``,
``initial_accumulator_value``. The variant each transformation documents:

```text
=========  ==========================  =====================================================
optax      expected variant            notes
=========  ==========================  =====================================================
adam       adam:eps-root               no weight decay, no maximize; ``eps_root`` inside
adamw      adamw:eps-root              "documented as following torch", plus ``eps_root``
amsgrad    adam:amsgrad-optax          the maximum over the corrected v̂
sgd        sgd:optax-trace             no dampening, no weight decay
rmsprop    rmsprop:keras-centered      ε inside the root, γ before the momentum trace,
                                       v₀ = ``initial_scale``
adagrad    adagrad:keras               ε inside the root, no lr decay
adadelta   adadelta                    ``learning_rate=None`` (its default) does not negate
nadam      nadam:optax                 Adam with Nesterov, constant β₁
nadamw     nadamw:optax                ``adamw(nesterov=True)``
=========  ==========================  =====================================================
```

Constructor arguments (``optproof audit optax.adam --arg eps_root=1e-6``) are passed to the
transformation verbatim; those with a meaning in the rules reach the reference too
(``REVERSE``), and ``nesterov=True`` (adam, adamw) or ``eps_in_sqrt=False`` (rmsprop) change
the expected variant.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optproof.reference.bounds import Rounding

from .base import Adapter, Session, Unsupported, check_keywords, translate

__all__ = ["OptaxAdapter", "EXPECTED"]


def _betas(v):
    return {"b1": v[0], "b2": v[1]}


def _momentum(v):
    return {"momentum": v or None}


_COMMON = {"lr": "learning_rate", "maximize": None, "decoupled_weight_decay": None,
           "weight_decay": None}
TABLES: dict[str, tuple[str, dict]] = {
    "adam": ("adam:eps-root", {**_COMMON, "betas": _betas, "eps": "eps", "amsgrad": None}),
    "adamw": ("adamw:eps-root", {**_COMMON, "betas": _betas, "eps": "eps",
                                 "weight_decay": "weight_decay", "amsgrad": None}),
    "amsgrad": ("adam:amsgrad-optax", {**_COMMON, "betas": _betas, "eps": "eps",
                                       "amsgrad": lambda v: {}}),
    "sgd": ("sgd:optax-trace", {**_COMMON, "momentum": _momentum, "nesterov": "nesterov",
                                "dampening": None}),
    "rmsprop": ("rmsprop:keras-centered", {**_COMMON, "alpha": "decay", "eps": "eps",
                                           "centered": "centered", "momentum": _momentum}),
    "adagrad": ("adagrad:keras", {**_COMMON, "eps": "eps", "lr_decay": None,
                                  "initial_accumulator_value": "initial_accumulator_value"}),
    "adadelta": ("adadelta", {**_COMMON, "rho": "rho", "eps": "eps",
                              "weight_decay": "weight_decay"}),
    "nadam": ("nadam:optax", {**_COMMON, "betas": _betas, "eps": "eps", "momentum_decay": None}),
    "nadamw": ("nadamw:optax", {**_COMMON, "betas": _betas, "eps": "eps",
                                "weight_decay": "weight_decay", "momentum_decay": None}),
}
EXPECTED = {name: rule for name, (rule, _) in TABLES.items()}
#: optax's keyword → optproof's, for constructor arguments the reference must see
REVERSE = {"b1": "betas[0]", "b2": "betas[1]", "decay": "alpha", "learning_rate": "lr"}
#: (transformation, argument, value) → the variant it then follows
SWITCHES = {("adam", "nesterov", True): "nadam:optax", ("adamw", "nesterov", True): "nadamw:optax",
            ("rmsprop", "eps_in_sqrt", False): "rmsprop:lr-in-momentum"}


class OptaxSession(Session):
    def __init__(self, fn, kwargs, params, dtype):
        import jax
        jax.config.update("jax_enable_x64", dtype == "float64")
        import jax.numpy as jnp
        import optax
        self.jnp, self.optax, self.dtype = jnp, optax, getattr(jnp, dtype)
        static = tuple(k for k, v in kwargs.items() if isinstance(v, (bool, str)) or v is None)
        self.tx = optax.inject_hyperparams(fn, static_args=static)(**kwargs)
        self.arrays = [jnp.asarray(p, dtype=self.dtype) for p in params]
        self.opt_state = self.tx.init(self.arrays)

    def step(self, grads, lr):
        jnp = self.jnp
        if lr is not None and "learning_rate" in self.opt_state.hyperparams:  # None: its own
            self.opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, dtype=self.dtype)
        updates, self.opt_state = self.tx.update(
            [jnp.asarray(g, dtype=self.dtype) for g in grads], self.opt_state, self.arrays)
        self.arrays = self.optax.apply_updates(self.arrays, updates)

    def params(self):
        return [np.asarray(p, dtype=np.float64).reshape(-1).tolist() for p in self.arrays]


class OptaxAdapter(Adapter):
    framework = "optax"
    reverse = REVERSE

    def __init__(self, target: Any, name: str, args=None):
        super().__init__(target, name, args)
        if name not in TABLES:
            raise ValueError(f"optax.{name} is not an audited transformation; "
                             f"audited: {', '.join(TABLES)}")
        check_keywords(target, self.args, f"optax.{name}", excluded=("learning_rate",))

    def expected(self):
        for key, value in self.args.items():
            if (self.name, key, value) in SWITCHES:
                return SWITCHES[self.name, key, value]
        return EXPECTED[self.name]

    def reference_hyper(self):
        """As the base class, less the switches that name another variant (``nesterov``,
        ``eps_in_sqrt``): the expected variant has them built in."""
        switches = {key for name, key, _ in SWITCHES if name == self.name}
        return {k: v for k, v in super().reference_hyper().items() if k not in switches}

    def describe(self):
        import optax
        return super().describe().replace("optax", f"optax {optax.__version__}", 1)

    def rounding(self, dtype):
        if dtype not in ("float32", "float64"):
            return None
        return Rounding(f"optax at {dtype}: hyperparameters and per-step scalars in {dtype}, "
                        f"βᵗ by repeated multiplication",
                        hyper_dtype="float32" if dtype == "float32" else None,
                        hyper_held=True, scalar_dtype=dtype, power="multiplication",
                        source="optax/tree_utils/_tree_math.py tree_bias_correction @ 0.2.8")

    def open(self, hyper, params, dtype, device, defaults=None):
        if dtype not in ("float32", "float64"):
            raise Unsupported(f"optax audits run in float32 or float64, not {dtype}")
        if self.name == "amsgrad" and not hyper.get("amsgrad"):
            raise Unsupported("optax.amsgrad is AMSGrad only (configuration has amsgrad=False)")
        kwargs = translate(self.constructor_hyper(hyper), TABLES[self.name][1], defaults or {},
                           "optax." + self.name)
        if self.name == "adam" and hyper.get("amsgrad"):
            raise Unsupported("optax.adam has no amsgrad (see optax.amsgrad)")
        return OptaxSession(self.target, {**kwargs, **self.args}, params, dtype)

    def open_defaults(self, params, dtype, given):
        return OptaxSession(self.target, {**self.args, **given}, params, dtype)
