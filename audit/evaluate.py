"""Bounded reference steps for the audit: one hypothesis, one configuration, any start.

A *hypothesis* is what a target might compute: a registered variant (``adamw``), or a probe
that mutates one (ε inside the root, a missing bias correction, a counter advanced per
parameter, one state shared by all parameter tensors, state kept in a lower precision).
`prepare` resolves it against a configuration (or finds it does not apply);
`bounded_step` evaluates one step for several parameter tensors from given inputs and
returns, per output element, the exact value and the derived bound on a kernel's error.

The arithmetic is `optproof.reference.bounds`'s (running error analysis after Higham,
*Accuracy and Stability of Numerical Algorithms*, §2.2, §2.8) applied line by line to the
spec's program: per-step scalars (bias corrections, step sizes) in float64 then cast into
the kernel's compute type, elementwise lines charged one rounding of the storage dtype each.
It is `optproof.reference.bounded_run`'s loop with three freedoms the audit needs:

* the inputs of a step may be the *target's own* values with zero error (the one-step
  oracle) or the reference's carried values with their bounds (the trajectory check);
* each tensor has its own step number t (a probe can map t to a per-parameter counter) and
  its own per-step state (torch keeps one ``mu_product`` per tensor);
* hyperparameters are resolved once per configuration without re-deriving or re-compiling
  the program (``Spec.program`` is cached; nothing is lambdified).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath
import sympy as sp

from optproof.derivations import Spec
from optproof.derivations.symbols import g, t as T, theta_prev
from optproof.reference.bounds import (FLOAT64_SCALARS, Bounded, Rounding, Tape, _Bounds,
                                       _cast, _exact, _finite, precision)

from .configs import Config
from .families import IMPLIED, TORCH_VARIANT

__all__ = ["Hypothesis", "Prepared", "prepare", "bounded_step", "exact_inputs", "DPS"]

DPS = 30
ZERO = mpmath.mpf(0)


@dataclass(frozen=True, eq=False)
class Hypothesis:
    """A candidate for what the target computes.

    ``kind`` is ``"variant"`` (a registered rule) or ``"probe"`` (a named fault or
    convention that no registered rule states). ``flags`` override the configuration's
    switches (``maximize=False``: "maximize ignored"); ``step_map(t, i, n)`` gives the step
    number tensor ``i`` of ``n`` uses at optimizer step ``t``; ``shared_state`` chains one
    state through the tensors in order (one m and v for all parameters); ``state_dtype``
    rounds the state to a format after every step; ``scalar_state_dtype`` lets a per-tensor
    scalar state (``mu_product``) be stored in a format other than the parameters' (whose
    rounding every hypothesis allows); ``implied`` lists switches the rule has
    built in (``adamw`` is decoupled). ``fault`` is the one-line name reported when the
    hypothesis explains a target, ``conventions`` its conventions by axis. ``rounding``
    is the precision model of the framework under audit (`Rounding`: Keras and optax hold
    float32 hyperparameters and compute the per-step scalars in float32), which the audit
    applies to every hypothesis alike.
    """

    name: str
    spec: Spec
    kind: str = "variant"
    fault: str = ""
    flags: Mapping[str, bool] = field(default_factory=dict)
    step_map: Callable[[int, int, int], int] | None = None
    shared_state: bool = False
    state_dtype: str | None = None
    implied: Mapping[str, bool] | None = None
    conventions: Mapping[str, str] = field(default_factory=dict)
    needs: Callable[[Config], bool] | None = None  # extra applicability condition
    scalar_state_dtype: str | None = None  # per-tensor scalar state stored in this format
    hyper_dtype: str | None = None  # hyperparameters held in this format (Keras: float32 lr)
    hyper_keys: frozenset[str] | None = None  # which (None: all numeric keywords)
    rounding: Rounding | None = None  # the framework's precision model (None: float64 scalars)

    def implied_flags(self) -> Mapping[str, bool]:
        return IMPLIED.get(self.spec.name, {}) if self.implied is None else self.implied


@dataclass
class Prepared:
    """A hypothesis resolved against one configuration."""

    hypothesis: Hypothesis
    program: Any
    flags: dict[str, bool]
    values: list[dict[sp.Symbol, mpmath.mpf]]  # hyperparameter values of each step
    kept: tuple[str, ...]        # state keys the framework keeps
    per_step: frozenset[str]     # keys holding one value per tensor (``mu_product``)
    init: dict[str, mpmath.mpf]  # initial value of each state key
    shared: dict[str, Any] | None = None  # the state a shared-state probe threads along
    zeros: frozenset = frozenset()  # coefficients that are 0: their terms are absent

    @property
    def program_state_keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.program.states)


def _torch_defaults(spec: Spec) -> Mapping[str, Any]:
    from optproof.derivations import rule
    return rule(TORCH_VARIANT.get(spec.family, spec.name)).defaults if spec.family in TORCH_VARIANT \
        else spec.defaults


def prepare(h: Hypothesis, config: Config, lrs: Sequence[float],
            base_defaults: Mapping[str, Any] | None = None) -> Prepared | None:
    """Resolve ``h`` for ``config`` (its switches, its numbers, its lr per step), or ``None``
    where the hypothesis cannot express the configuration (Sutskever's form has no
    dampening, Keras's NAdam no ψ, Reddi's AMSGrad is AMSGrad only).

    ``base_defaults`` are the defaults the target was constructed under (torch.optim's for
    the group): a keyword the configuration leaves out takes that value, not the variant's
    own default (Keras's ε = 10⁻⁷ is a default, not a convention)."""
    spec = h.spec
    given = config.constructor_hyper()
    base = dict(base_defaults if base_defaults is not None else _torch_defaults(spec))
    implied = h.implied_flags()
    flags: dict[str, bool] = {}
    for key, value in {**{k: v for k, v in base.items() if isinstance(v, bool)}, **given}.items():
        if not isinstance(value, bool):
            continue
        if key in spec.flags:
            flags[key] = value
        elif key in implied:
            if key != "decoupled_weight_decay" and implied[key] != value:
                return None
        elif value:
            return None  # a switch the hypothesis cannot express
    flags.update({k: v for k, v in h.flags.items() if k in spec.flags})
    for key, value in given.items():
        if isinstance(value, bool) or key in spec.defaults or key == "lr":
            continue
        if key in base and value != base[key]:
            return None  # e.g. dampening ≠ 0 for a form without dampening
    if h.needs is not None and not h.needs(config):
        return None
    program = spec.program(**flags)
    first = lrs[0]
    values = []
    for k, lr in enumerate(lrs):
        step_values = {}
        for hy in program.hypers:
            if hy.keyword == "lr":
                raw = lr
            elif hy.keyword == "schedule_multiplier":
                step_values[hy.symbol] = mpmath.mpf(lr) / mpmath.mpf(first)
                continue
            else:
                raw = given.get(hy.keyword, base.get(hy.keyword, spec.defaults.get(hy.keyword)))
                if hy.index is not None:
                    raw = raw[hy.index]
            held = h.hyper_dtype if h.hyper_keys is None or hy.keyword in h.hyper_keys else None
            step_values[hy.symbol] = mpmath.mpf(_held(float(raw), held))
        if h.hyper_dtype and (h.hyper_keys is None or "lr" in h.hyper_keys):
            for hy in program.hypers:
                if hy.keyword == "lr":
                    step_values[hy.symbol] = mpmath.mpf(_held(float(lr), h.hyper_dtype))
        values.append(step_values)
    kept = tuple(s.key for s in program.states if bool(s.exists.xreplace(values[0])))
    # as optproof.reference.resolve: a coefficient a kernel skips at zero (λ = 0, μ = 0)
    # removes its term, and the roundings of that term, from the closed form
    zeros = frozenset(hy.symbol for hy in program.hypers if getattr(hy, "skipped_at_zero", False)
                      and all(v[hy.symbol] == 0 for v in values))
    per_step = frozenset(s.key for s in program.states if s.per_step)
    init = {}
    for s in program.states:
        v = s.init.xreplace(values[0])
        init[s.key] = mpmath.mpf(sp.Float(v, DPS)) if v != 0 else ZERO
    return Prepared(h, program, flags, values, kept, per_step, init, zeros=zeros)


def _held(value: float, dtype: str | None) -> float:
    """``value`` as a framework holding it in ``dtype`` has it (exact in float64)."""
    if not dtype:
        return value
    import numpy as np
    return float(getattr(np, dtype)(value))


_PLANS: dict[tuple, tuple] = {}


def _plan(program, zeros: frozenset = frozenset()) -> tuple[Tape, Tape]:
    """Split ``program``'s closed forms once, each part compiled into a `Tape`: the per-step
    values — the per-step outputs (``mu_product``, keyed by state key) and every maximal
    per-step sub-expression of the elementwise outputs (keyed by the placeholder that
    replaces it) — and the elementwise outputs with those placeholders, evaluated at
    every element.

    The reference's evaluator (``optproof.reference.bounds``) evaluates a non-numeric
    sub-expression whose symbols are all per-step with its float64 evaluator and casts it
    into the tensor's type, at every element; doing that once per tensor gives the same
    values and bounds (the trees are rewritten only at those nodes, so their shape — hence
    the rounding count — is unchanged). ``tests/test_audit_evaluate.py`` checks the
    equivalence with `bounded_run`. The tapes compute what the evaluator computes on the
    trees (the elementwise tape knows the per-step symbols: t, the hyperparameters and the
    per-step states, the keys of `bounded_step`'s scalar environment), bit for bit:
    ``tests/test_tape.py``.
    """
    plan = _PLANS.get((id(program), zeros))
    if plan is not None and plan[0] is program:
        return plan[1]
    absent = {z: sp.S.Zero for z in zeros}
    closed = {name: expr.xreplace(absent) for name, expr in program.closed_form.items()}
    scalar = {T, *(h.symbol for h in program.hypers),
              *(s.prev for s in program.states if s.per_step)}
    hoisted: list[tuple[sp.Symbol, sp.Expr]] = []
    memo: dict[sp.Expr, sp.Symbol] = {}

    def hoist(expr: sp.Expr) -> sp.Expr:
        if expr.is_Number:
            return expr
        if expr.free_symbols <= scalar:
            if expr not in memo:
                memo[expr] = sp.Dummy(f"c{len(memo)}")
                hoisted.append((memo[expr], expr))
            return memo[expr]
        if isinstance(expr, (sp.Add, sp.Mul, sp.Pow, sp.Max)):
            return expr.func(*(hoist(a) for a in expr.args), evaluate=False)
        return expr

    elementwise = Tape({"param": hoist(closed["param"]),
                        **{s.key: hoist(closed[s.key]) for s in program.states if not s.per_step}},
                       frozenset(scalar))
    per_step = Tape({**dict(hoisted),
                     **{s.key: closed[s.key] for s in program.states if s.per_step}})
    _PLANS[(id(program), zeros)] = (program, (per_step, elementwise))
    return per_step, elementwise


def exact_inputs(values: Sequence[float]) -> list[Bounded]:
    """Floats as exact inputs (error 0)."""
    return [_exact(mpmath.mpf(v)) for v in values]


def _bounded(pair) -> Bounded:
    if isinstance(pair, Bounded):
        return pair
    x, e = pair
    return Bounded(x, e, bool(e == 0 and x >= 0))


def bounded_step(prep: Prepared, k: int, tensors: Sequence[Mapping[str, Any]], dtype: str
                 ) -> list[dict[str, Any]]:
    """One step (the ``k``-th, 0-based) for every tensor.

    Each tensor is ``{"t": step number, "param": [(x, e)], "grad": [float], key: [(x, e)]}``
    (a per-step key holds one pair, or a list of one); a state key left out starts at the
    rule's initial value. Returns per tensor ``{"param": [b], key: [b] | b}`` of
    `Bounded` ``b = (x, e, nonneg)``: x the exact value, e
    the bound on a kernel's error (``inf`` where no claim is made). Every
    state is returned (a trajectory carries them); only ``prep.kept`` are the framework's.

    A probe with ``scalar_state_dtype`` lets every per-step scalar (μ-product, bias
    corrections, step sizes) be held in that format: its cast into the kernel is charged a
    rounding of that format rather than of the tensor's.
    """
    p = precision(dtype)
    rounding = prep.hypothesis.rounding or FLOAT64_SCALARS
    program = prep.program
    per_step, elementwise = _plan(program, prep.zeros)
    held = prep.hypothesis.scalar_state_dtype
    scalar_p = precision(held) if held and precision(held).bits < p.bits else p
    out = []
    with mpmath.workdps(DPS):
        for tensor in tensors:
            scalars = {T: _exact(mpmath.mpf(tensor["t"])),
                       **{sym: rounding.hyper(v) for sym, v in prep.values[k].items()}}
            for s in program.states:
                if s.per_step:
                    value = tensor.get(s.key, (prep.init[s.key], ZERO))
                    scalars[s.prev] = _bounded(value[0] if isinstance(value, list) else value)
            scalar_eval = rounding.scalars(scalars)
            step_values = per_step(scalar_eval)
            consts = {d: _cast(v, scalar_p) for d, v in step_values.items()
                      if isinstance(d, sp.Dummy)}
            result: dict[str, Any] = {key: [] for key in elementwise.exprs}
            grads = tensor["grad"]
            element_states = [s for s in program.states if not s.per_step]
            for i in range(len(tensor["param"])):
                env = dict(consts)
                env[theta_prev] = _bounded(tensor["param"][i])
                env[g] = _exact(mpmath.mpf(grads[i]))
                for s in element_states:
                    col = tensor.get(s.key)
                    env[s.prev] = _bounded(col[i]) if col is not None else _exact(prep.init[s.key])
                values = elementwise(_Bounds(p, env, scalar_eval, lambda v: _cast(v, p)))
                for key, value in values.items():
                    result[key].append(_finite(value, p))
            for key, value in step_values.items():
                if isinstance(key, str):
                    result[key] = _finite(value, p)
            out.append(result)
    return out
