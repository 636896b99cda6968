"""Unroll k steps of any rule: θ_k in terms of θ₀ and the gradients g₁ … g_k.

A rule's `Program` is one step: lines ``target ← expr``
of θₜ₋₁, gₜ, the state and t. Unrolling runs those lines k times with the step counter
replaced by 1, 2, …, k, the gradient by g₁, g₂, …, the parameter by the previous step's value
and each state by its value after the previous step (its initial value, usually 0, before the
first). Every target a step computes becomes a *named* symbol of that step — ``m_2`` for mₜ in
step 2, ``theta_3`` for θₜ in step 3 — so the unrolled steps read like an algorithm trace and
common subexpressions stay shared; a target the step rebinds (gₜ ← gₜ + λθₜ₋₁) or reassigns
later (AdamW's θₜ ← θₜ₋₁(1 − γλ) before the step) is substituted into the line that uses it.

`Unrolled.expand` substitutes the named symbols back, all of them (θ_k as one
expression of θ₀ and g₁ … g_k) or all but those kept (θ_k in terms of θ₀ … θ_{k−1}: the
"unrolled momentum" form the theorems compare). A hyperparameter may vary per step (a
learning-rate schedule): it is then a fresh symbol per step, γ₁, γ₂, …, with the same domain.

Gradients are inputs here, not functions of θ: the unrolled θ_k is the trajectory an optimizer
produces from the gradients it was given, which is what the trajectory theorems are about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sympy as sp

from .program import Line, Program
from .symbols import HYPERS, Hyper, g, t, theta_prev

__all__ = ["Unrolled", "unroll", "step_symbol", "per_step", "domain_of"]

# per-step symbols the unroller creates for a varying hyperparameter, with that domain
_DOMAINS: dict[sp.Symbol, sp.Set] = {}


def _base(name: str) -> str:
    """``m_t`` → ``m``, ``theta_t-1`` → ``theta``, ``gamma`` → ``gamma``."""
    for suffix in ("_t-1", "_t"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def step_symbol(symbol: sp.Symbol, i: int | sp.Expr) -> sp.Symbol:
    """The value of ``symbol`` at step ``i``: ``m_t`` → ``m_i``, same assumptions."""
    return sp.Symbol(f"{_base(symbol.name)}_{i}", **symbol.assumptions0)


def domain_of(symbol: sp.Symbol) -> sp.Set:
    """The set a symbol ranges over: a hyperparameter's domain (also for its per-step copies
    γ₁, γ₂, …), else what its assumptions say (positive → (0, ∞), nonnegative → [0, ∞),
    integer → ℤ, else ℝ)."""
    for h in HYPERS.values():
        if h.symbol == symbol:
            return h.domain
    if symbol in _DOMAINS:
        return _DOMAINS[symbol]
    if symbol.is_integer:
        return sp.Range(1, sp.oo) if symbol.is_positive else sp.S.Integers
    if symbol.is_positive:
        return sp.Interval.open(0, sp.oo)
    if symbol.is_nonnegative:
        return sp.Interval(0, sp.oo)
    return sp.S.Reals


@dataclass(frozen=True)
class Unrolled:
    """k steps of a program.

    ``steps[i − 1]`` are the lines of step i with named targets, each expression in terms of
    θ₀, g₁ … g_i, the hyperparameters and earlier named symbols; ``definitions`` maps every
    named symbol to its expression; ``theta`` is (θ₀, θ₁, …, θ_k); ``state[key]`` is that state's
    value after steps 0 … k; ``hyper[key]`` the symbol of that hyperparameter at steps 1 … k.
    """

    program: Program
    k: int
    steps: tuple[tuple[Line, ...], ...]
    definitions: Mapping[sp.Symbol, sp.Expr]
    theta: tuple[sp.Expr, ...]
    grads: tuple[sp.Symbol, ...]
    state: Mapping[str, tuple[sp.Expr, ...]]
    hyper: Mapping[str, tuple[sp.Expr, ...]]
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def expand(self, expr: sp.Expr, keep: Iterable[sp.Symbol] = ()) -> sp.Expr:
        """``expr`` with every named symbol replaced by its definition, except those in
        ``keep`` (which stay as symbols, so θ_k can be written in terms of θ₁ … θ_{k−1})."""
        keep = frozenset(keep)
        full = self._cache.get(keep)
        if full is None:
            full = {}
            for symbol, definition in self.definitions.items():  # in order: one pass suffices
                if symbol not in keep:
                    full[symbol] = definition.xreplace(full)
            self._cache[keep] = full
        return sp.sympify(expr).xreplace(full)

    def closed(self, name: str = "param", step: int | None = None,
               keep: Iterable[sp.Symbol] = ()) -> sp.Expr:
        """Output ``name`` (``param`` or a state key) after ``step`` (default k) steps, as one
        expression of θ₀ and the gradients (and of the symbols in ``keep``)."""
        step = self.k if step is None else step
        value = self.theta[step] if name == "param" else self.state[name][step]
        return self.expand(value, keep)

    def named(self, target: sp.Symbol, i: int) -> sp.Symbol:
        """The named symbol of program target ``target`` (``m_t``, ``u_t``…) at step i."""
        symbol = step_symbol(target, i)
        if symbol not in self.definitions:
            raise KeyError(f"step {i} names no {symbol}")
        return symbol

    def lines(self) -> list[Line]:
        """All steps' lines in order (for the printers)."""
        return [line for step in self.steps for line in step]

    def cse(self, *exprs: sp.Expr, prefix: str = "x") -> tuple[list[tuple[sp.Symbol, sp.Expr]],
                                                            list[sp.Expr]]:
        """``sympy.cse`` of ``exprs`` with symbols x₀, x₁, … for the shared subexpressions."""
        symbols = sp.numbered_symbols(prefix, real=True)
        return sp.cse(list(exprs), symbols=symbols, optimizations="basic")


def unroll(program: Program, k: int, *, vary: Iterable[str] = (),
           given: Mapping[sp.Symbol, sp.Expr] | None = None,
           start: Mapping[str, sp.Expr] | str = "init", first_step: int = 1) -> Unrolled:
    """Unroll ``program`` for ``k`` steps.

    ``vary``: hyper-dict keys (``"lr"``, ``"schedule_multiplier"``…) that take a fresh symbol
    per step (γ₁ … γ_k), with the hyperparameter's domain. ``given``: substitutions applied to
    the program first (``{τ: 0}``, or a hyperparameter replaced by a symbol with a narrower
    domain, e.g. μ > 0). ``start``: ``"init"`` (each state's initial value: the zero state),
    ``"symbolic"`` (symbols m₀, v₀, …) or a mapping state key → value. ``first_step``: the
    value of t in the first unrolled step.
    """
    if k < 0:
        raise ValueError(f"k must be a non-negative number of steps, got {k}")
    given = dict(given or {})
    vary = tuple(vary)
    known = {h.key for h in program.hypers}
    for key in vary:
        if key not in known:
            raise ValueError(f"the program has no hyperparameter {key!r}; it has "
                             f"{', '.join(sorted(known))}")
    lines = [Line(line.target, line.expr.xreplace(given), line.why) for line in program.lines]
    inputs = {g, theta_prev, *(s.prev for s in program.states)}
    last = {line.target: n for n, line in enumerate(lines)}

    def state0(s) -> sp.Expr:
        if start == "init":
            return s.init.xreplace(given)
        if start == "symbolic":
            return sp.Symbol(f"{_base(s.prev.name)}_0", **s.prev.assumptions0)
        return sp.sympify(start.get(s.key, s.init)) if isinstance(start, Mapping) else s.init

    theta = [sp.Symbol(f"{_base(theta_prev.name)}_0", **theta_prev.assumptions0)]
    grads: list[sp.Symbol] = []
    state = {s.key: [state0(s)] for s in program.states}
    hypers: dict[str, list[sp.Expr]] = {h.key: [] for h in program.hypers}
    definitions: dict[sp.Symbol, sp.Expr] = {}
    steps = []
    for i in range(first_step, first_step + k):
        gi = step_symbol(g, i)
        grads.append(gi)
        env: dict[sp.Symbol, sp.Expr] = {t: sp.Integer(i), theta_prev: theta[-1], g: gi}
        for s in program.states:
            env[s.prev] = state[s.key][-1]
        for h in program.hypers:
            value = given.get(h.symbol, h.symbol)
            if h.key in vary:
                value = step_symbol(h.symbol, i)
                _DOMAINS[value] = h.domain
                env[h.symbol] = value
            hypers[h.key].append(value)
        out = []
        for n, line in enumerate(lines):
            expr = line.expr.xreplace(env)
            if line.target in inputs or last[line.target] != n or expr.is_Atom:
                env[line.target] = expr  # a rebinding, an intermediate value, or trivial
                continue
            symbol = step_symbol(line.target, i)
            definitions[symbol] = expr
            env[line.target] = symbol
            out.append(Line(symbol, expr, line.why))
        steps.append(tuple(out))
        theta.append(env.get(program.outputs["param"], theta[-1]))
        for s in program.states:
            state[s.key].append(env.get(s.new, state[s.key][-1]))
    return Unrolled(program, k, tuple(steps), definitions, tuple(theta), tuple(grads),
                    {key: tuple(v) for key, v in state.items()},
                    {key: tuple(v) for key, v in hypers.items()})


def per_step(h: Hyper, k: int) -> tuple[sp.Symbol, ...]:
    """The per-step symbols h₁ … h_k `unroll` uses for a varying hyperparameter."""
    return tuple(step_symbol(h.symbol, i) for i in range(1, k + 1))
