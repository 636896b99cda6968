"""A rule's specification and the registry of all rules.

A `Spec` is the single source of truth for one update rule or one framework's
variant of it: its name, the sources it follows, the torch.optim keyword arguments it takes
(with defaults), which of those are structural flags (``amsgrad``, ``nesterov``, …), and the
chain of transforms that states it. Everything else — equations, references, bounds, docs —
is computed from `Spec.program`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from . import cache
from .program import Builder, Program
from .transforms import Transform

__all__ = ["Spec", "register", "rules", "rule"]


@dataclass(frozen=True, eq=False)
class Spec:
    """One update rule.

    ``defaults`` maps each torch.optim keyword the rule takes to its default (tuples for
    tuple arguments such as ``betas``); ``flags`` names the boolean keywords that change the
    structure of the program; ``build(flags)`` returns the chain of transforms for one setting
    of the flags. ``mirrors`` names the framework signature the keywords follow.
    """

    name: str
    summary: str
    sources: tuple[str, ...]
    mirrors: str
    defaults: Mapping[str, Any]
    build: Callable[[Mapping[str, bool]], Transform]
    flags: tuple[str, ...] = ()
    notes: str = ""
    family: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "family", self.family or self.name.split(":")[0])

    def flag_values(self, **flags: bool) -> dict[str, bool]:
        """The flags with defaults filled in; unknown names raise ``TypeError``."""
        unknown = set(flags) - set(self.flags)
        if unknown:
            raise TypeError(f"rule {self.name!r} has no flag {sorted(unknown)[0]!r}; "
                            f"its flags are {', '.join(self.flags) or 'none'}")
        return {f: bool(flags.get(f, self.defaults[f])) for f in self.flags}

    def program(self, **flags: bool) -> Program:
        """The program for one setting of the flags (defaults for those not given)."""
        values = self.flag_values(**flags)
        return _program(self, tuple(values[f] for f in self.flags))


@lru_cache(maxsize=None)
def _program(spec: Spec, flag_values: tuple[bool, ...]) -> Program:
    registered = _REGISTRY.get(spec.name) is spec  # only a registered name identifies a rule
    key = (spec.name, flag_values)
    if registered and (program := cache.load(key)) is not None:
        return program
    builder = Builder()
    spec.build(dict(zip(spec.flags, flag_values)))(builder)
    program = builder.finish()
    if registered:
        cache.store(key, program)
    return program


_REGISTRY: dict[str, Spec] = {}


def register(*specs: Spec) -> None:
    """Add specs to the registry (names are unique)."""
    for spec in specs:
        if spec.name in _REGISTRY:
            raise ValueError(f"duplicate rule name {spec.name!r}")
        _REGISTRY[spec.name] = spec


def rules() -> tuple[Spec, ...]:
    """Every registered rule and variant, in registration order."""
    return tuple(_REGISTRY.values())


def rule(name: str) -> Spec:
    """The rule called ``name``; an unknown name raises ``ValueError`` naming the closest."""
    names = [spec.name for spec in rules()]
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known rules: {', '.join(names)}"
    raise ValueError(f"unknown rule {name!r}{hint}")
