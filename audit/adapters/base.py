"""The adapter interface (see the package docstring)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optproof.reference.bounds import Rounding

__all__ = ["Adapter", "Session", "Unsupported", "QuantizedState", "translate", "check_keywords",
           "reference_keywords"]


class Unsupported(Exception):
    """The target cannot be configured this way (a keyword it does not take): the
    configuration is skipped and the report says why; not a deviation."""


@dataclass(frozen=True, eq=False)
class QuantizedState:
    """One state entry a low-bit optimizer stores as codes and per-block scales.

    The value the library reads back for element ``i`` (row-major) is

        code_map[codes[i]] · scales[i // block_size]

    evaluated in ``compute_dtype`` (bitsandbytes and torchao multiply two float32 numbers
    and round once to float32). Every format is a lookup: a dynamic or linear map
    (bitsandbytes ``name2qmap``, torchao ``qmap``) gives the value of each of its 2ᵇ codes;
    an FP8 state stores float8 bit patterns, and ``code_map`` is then the value of each of
    the 256 patterns (NaN for the NaN pattern). 4-bit codes are unpacked, one per element.

    Attributes:
        key: the torch.optim key the entry stands for (``exp_avg``, ``exp_avg_sq``).
        stored_as: the library's own key (bitsandbytes ``state1``; torchao ``exp_avg``).
        codes: one unsigned code per element, row-major (int64).
        scales: one scale per block, as stored (float64 holding the float32 values exactly).
        code_map: the value of each code (float64 holding float32 values exactly).
        block_size: elements per scale; the last block may be shorter.
        scale_rule: how the library chose the scale of a block, e.g. ``"absmax"``
            (max |x| of the block, so that x/scale lies in [−1, 1]) or ``"absmax/448"``.
        rounding: how the library picks a code for x/scale, e.g. ``"nearest"``
            (ties as the library breaks them, named here) or ``"stochastic"``.
        compute_dtype: the dtype the library dequantizes into and updates in.
        source: the library file and version this layout was read from.
    """

    key: str
    stored_as: str
    codes: np.ndarray
    scales: np.ndarray
    code_map: np.ndarray
    block_size: int
    scale_rule: str
    rounding: str
    compute_dtype: str
    source: str

    @property
    def bits(self) -> int:
        """Bits per code (8 for a 256-entry map, 4 for a 16-entry one)."""
        return int(len(self.code_map) - 1).bit_length()

    def block_of(self) -> np.ndarray:
        """The block index of every element."""
        return np.arange(self.codes.size) // self.block_size

    def exact_values(self) -> np.ndarray:
        """code_map[code]·scale per element, exact in float64 (a product of two float32
        numbers has at most 48 significant bits); the library's value is this rounded once
        to ``compute_dtype``."""
        return self.code_map[self.codes] * self.scales[self.block_of()]

    def values(self) -> np.ndarray:
        """The values the library reads: `exact_values` rounded to ``compute_dtype``."""
        import torch
        exact = self.exact_values()
        return torch.tensor(exact, dtype=torch.float64).to(getattr(torch, self.compute_dtype)) \
            .to(torch.float64).numpy()


class Session:
    """One constructed optimizer on its parameters."""

    def step(self, grads: Sequence[np.ndarray], lr: float) -> None:
        raise NotImplementedError

    def params(self) -> list[list[float]]:
        """Each parameter tensor's values as exact Python floats (row-major)."""
        raise NotImplementedError

    def state(self) -> list[dict[str, Any]] | None:
        """Per tensor, the state under torch.optim's keys (a list of floats per element, a
        float for a 0-d entry), or ``None`` where the framework exposes no such state."""
        return None

    def state_dtypes(self) -> list[dict[str, str]]:
        """Per tensor, the dtype of each floating state entry (empty if unknown)."""
        return []

    def quantized_state(self) -> list[dict[str, QuantizedState]] | None:
        """Per tensor, its state entries stored as codes and scales, under torch.optim's keys
        (an empty dict for a tensor whose state the library keeps in floating point), or
        ``None`` where the framework never quantizes its state."""
        return None


class Adapter:
    """Constructs sessions of one target.

    ``args`` are constructor arguments given by the user (``optproof audit --arg``), in the
    framework's own names: passed verbatim to every construction. Where one has a meaning in
    the rules (optax's ``eps_root``, ``b1``; a torch keyword), `reference_hyper` gives
    it under optproof's keyword so that the reference computes with it too; where it changes
    the convention (``lr_in_momentum=False``), `expected` names another variant.
    """

    framework = "torch"
    torch_style = False  # torch.optim semantics for state, state_dict and param_groups
    #: the framework's keyword → optproof's (a tuple element as ``betas[0]``), for ``args``
    reverse: Mapping[str, str] = {}

    def __init__(self, target: Any, name: str, args: Mapping[str, Any] | None = None):
        self.target, self.name = target, name
        self.args = dict(args or {})

    def expected(self) -> str | None:
        """The registered variant the target claims to follow (``None``: infer from its
        name as a torch.optim class)."""
        return None

    def implied_hyper(self) -> dict[str, Any]:
        """Hyperparameters the target has built in, under optproof's keywords (timm's
        RMSpropTF starts v at 1: ``{"initial_scale": 1.0}``); never passed to it."""
        return {}

    def reference_hyper(self) -> dict[str, Any]:
        """What the reference must compute with besides each configuration's keywords: the
        built-in hyperparameters and the user's arguments that have a meaning in the rules,
        under optproof's keywords (the configurations' values are overridden by them)."""
        out = self.implied_hyper()
        for key, value in self.args.items():
            name = self.reverse.get(key, key)
            if name in reference_keywords():
                out[name] = value
        return out

    def constructor_hyper(self, hyper: Mapping[str, Any]) -> dict[str, Any]:
        """A configuration's keywords less those the target is not given (its built-in
        hyperparameters; the user's arguments, which are passed verbatim instead)."""
        skip = set(self.implied_hyper()) | set(self.reference_hyper())
        return {k: v for k, v in hyper.items() if k.split("[")[0] not in skip and k not in skip}

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.framework} ({args})" if args else self.framework

    def rounding(self, dtype: str) -> Rounding | None:
        """The framework's precision model at ``dtype`` (`Rounding`: how it holds the
        hyperparameters and computes the per-step scalars), or ``None`` for torch.optim's
        (Python-float hyperparameters, float64 scalars)."""
        return None

    def open(self, hyper: Mapping[str, Any], params: Sequence[np.ndarray], dtype: str,
             device: str) -> Session:
        raise NotImplementedError

    def open_defaults(self, params: Sequence[np.ndarray], dtype: str,
                      given: Mapping[str, Any]) -> Session:
        """A session of the target constructed with its own defaults: only ``args`` and
        ``given`` (what the constructor requires); ``TypeError`` names a missing one.
        Its ``step(grads, None)`` keeps the target's own learning rate."""
        raise NotImplementedError


def translate(hyper: Mapping[str, Any], table: Mapping[str, Any], defaults: Mapping[str, Any],
              framework: str) -> dict[str, Any]:
    """Rename torch.optim keywords for a framework.

    ``table[key]`` is the framework's name, a callable ``value → {name: value}``, or
    ``None`` where the framework has no equivalent: the keyword is then dropped when its
    value is torch's default (or off), and the configuration is `Unsupported`
    otherwise. A keyword the table does not list is unsupported unless off/default.
    """
    out: dict[str, Any] = {}
    for key, value in hyper.items():
        entry = table.get(key, None)
        if entry is None:
            if value in (False, None) or (key in defaults and defaults[key] == value) or \
                    (not isinstance(value, bool) and value == 0):
                continue
            raise Unsupported(f"{framework} has no equivalent of {key}={value!r}")
        if callable(entry):
            out.update(entry(value))
        else:
            out[entry] = value
    return out


def reference_keywords() -> frozenset[str]:
    """Every keyword a registered rule takes (``lr``, ``betas[0]``, ``eps_root``, flags)."""
    from optproof.derivations import rules
    from optproof.derivations.symbols import HYPERS
    return frozenset({*HYPERS, *(h.keyword for h in HYPERS.values()),
                      *(f for spec in rules() for f in spec.flags)})


def check_keywords(factory: Callable, args: Mapping[str, Any], what: str,
                   excluded: tuple[str, ...] = ("params",)) -> None:
    """``ValueError`` naming the first of ``args`` that ``factory`` takes no keyword for.

    A factory with ``**kwargs`` passes them on: its class's bases are searched too (Keras's
    optimizers hand ``**kwargs`` to ``BaseOptimizer``); one whose chain ends in ``**kwargs``
    accepts any name."""
    names: set[str] = set()
    chain = list(factory.__mro__) if isinstance(factory, type) else [factory]
    for item in chain:
        init = item.__init__ if isinstance(item, type) else item
        if isinstance(factory, type) and "__init__" not in vars(item):
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return  # a builtin: nothing to check against
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    else:
        return
    for key in args:
        if key not in names or key in excluded:
            known = ", ".join(sorted(names - {"self", *excluded}))
            raise ValueError(f"--arg {key}: {what} takes no keyword {key!r} (it takes {known})")
