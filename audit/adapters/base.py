"""The adapter interface (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Adapter", "Session", "Unsupported", "QuantizedState"]


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
        """The values the library reads: :meth:`exact_values` rounded to ``compute_dtype``."""
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
    """Constructs sessions of one target."""

    framework = "torch"
    torch_style = False  # torch.optim semantics for state, state_dict and param_groups

    def __init__(self, target: Any, name: str):
        self.target, self.name = target, name

    def expected(self) -> str | None:
        """The registered variant the target claims to follow (``None``: infer from its
        name as a torch.optim class)."""
        return None

    def describe(self) -> str:
        return self.framework

    def open(self, hyper: Mapping[str, Any], params: Sequence[np.ndarray], dtype: str,
             device: str) -> Session:
        raise NotImplementedError


def translate(hyper: Mapping[str, Any], table: Mapping[str, Any], defaults: Mapping[str, Any],
              framework: str) -> dict[str, Any]:
    """Rename torch.optim keywords for a framework.

    ``table[key]`` is the framework's name, a callable ``value → {name: value}``, or
    ``None`` where the framework has no equivalent: the keyword is then dropped when its
    value is torch's default (or off), and the configuration is :class:`Unsupported`
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
