"""The adapter interface (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Adapter", "Session", "Unsupported"]


class Unsupported(Exception):
    """The target cannot be configured this way (a keyword it does not take): the
    configuration is skipped and the report says why; not a deviation."""


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
