"""The symbolic form of one optimizer step: an ordered list of assignments.

A rule is stated as a *program*, the algorithm box of its paper: lines ``target ← expr``
executed in order, where a target may be rebound (``gₜ ← gₜ + λθₜ₋₁``), exactly as the
algorithm boxes of Kingma & Ba or the torch.optim documentation read. The inputs of a step are
the previous parameter θₜ₋₁, the gradient gₜ, the previous state (mₜ₋₁, vₜ₋₁, …), the
hyperparameters and the step counter t; the outputs are θₜ and the new state.

Transforms (`optproof.derivations.transforms`) append lines through a `Builder`;
everything else — printing, the closed form, the mpmath step, the error bound — reads the
finished `Program`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import sympy as sp

from .symbols import Hyper, g, t, theta, theta_prev

__all__ = ["State", "Line", "Program", "Builder"]


@dataclass(frozen=True)
class State:
    """A per-element state variable, named by its torch.optim state key.

    ``prev`` is its value entering the step, ``new`` its value leaving it, ``init`` its value
    before the first step (an expression in the hyperparameters, usually 0). A ``per_step``
    state holds one value per parameter tensor rather than one per element (NAdam's
    ``mu_product``): it may depend only on t, the hyperparameters and other per-step values.
    ``exists`` is the condition on the hyperparameters under which the framework keeps the
    state at all (torch SGD and RMSprop keep no ``momentum_buffer`` at momentum 0): the
    program still computes it, and ``reference.run`` leaves it out of its records otherwise.
    """

    key: str
    prev: sp.Symbol
    new: sp.Symbol
    init: sp.Expr
    meaning: str
    per_step: bool = False
    exists: sp.Basic = sp.true


@dataclass(frozen=True)
class Line:
    """One assignment ``target ← expr``, with the reason it holds (printed beside it)."""

    target: sp.Symbol
    expr: sp.Expr
    why: str = ""


@dataclass(frozen=True)
class Program:
    """One optimizer step as ordered assignments, with its inputs and outputs declared."""

    lines: tuple[Line, ...]
    states: tuple[State, ...]
    hypers: tuple[Hyper, ...]

    @cached_property
    def outputs(self) -> dict[str, sp.Symbol]:
        """Output name → symbol: ``param`` → θₜ and each state key → its new symbol."""
        return {"param": theta, **{s.key: s.new for s in self.states}}

    @cached_property
    def inputs(self) -> dict[str, sp.Symbol]:
        """Per-element input name → symbol: ``param``, ``grad`` and each state key."""
        return {"param": theta_prev, "grad": g, **{s.key: s.prev for s in self.states}}

    @cached_property
    def closed_form(self) -> dict[str, sp.Expr]:
        """Each output as one expression of the inputs, by substituting the lines in order."""
        env: dict[sp.Symbol, sp.Expr] = {}
        for line in self.lines:
            env[line.target] = line.expr.xreplace(env)
        # an output no line assigns keeps its input value
        return {name: env.get(sym, self.inputs[name]) for name, sym in self.outputs.items()}

    @cached_property
    def per_step(self) -> frozenset[sp.Symbol]:
        """Symbols whose value depends only on t and the hyperparameters (not per element)."""
        scalar = {t, *(h.symbol for h in self.hypers),
                  *(s.prev for s in self.states if s.per_step)}
        for line in self.lines:
            if line.expr.free_symbols <= scalar:
                scalar.add(line.target)
            else:
                scalar.discard(line.target)
        return frozenset(scalar)


@dataclass
class Builder:
    """Collects the lines of a program while transforms are applied in order.

    ``update`` is the symbol holding the current update direction (it starts as the gradient
    gₜ and ends as the direction the learning rate scales); ``param`` is the symbol holding the
    parameter so far (θₜ₋₁ until a line assigns θₜ).
    """

    lines: list[Line] = field(default_factory=list)
    states: dict[str, State] = field(default_factory=dict)
    hypers: dict[str, Hyper] = field(default_factory=dict)
    update: sp.Symbol = g
    param: sp.Symbol = theta_prev

    def hyper(self, h: Hyper) -> sp.Symbol:
        """Declare that the program reads hyperparameter ``h``; returns its symbol."""
        self.hypers.setdefault(h.key, h)
        return h.symbol

    def state(self, key: str, letter: str, meaning: str, init: sp.Expr = sp.S.Zero, *,
              per_step: bool = False, exists: sp.Basic = sp.true, **assumptions) -> State:
        """Declare a state variable (torch key ``key``) displayed with ``letter``."""
        if key not in self.states:
            prev = sp.Symbol(f"{letter}_t-1", real=True, **assumptions)
            new = sp.Symbol(f"{letter}_t", real=True, **assumptions)
            self.states[key] = State(key, prev, new, sp.sympify(init), meaning, per_step, exists)
        return self.states[key]

    def let(self, target: sp.Symbol, expr: sp.Expr, why: str = "") -> sp.Symbol:
        """Append ``target ← expr``; returns ``target``."""
        self.lines.append(Line(target, sp.sympify(expr), why))
        return target

    def set_param(self, expr: sp.Expr, why: str = "") -> None:
        """Assign θₜ (the first assignment reads θₜ₋₁, later ones rebind θₜ)."""
        self.param = self.let(theta, expr, why)

    def finish(self) -> Program:
        """The finished program."""
        return Program(tuple(self.lines), tuple(self.states.values()), tuple(self.hypers.values()))
