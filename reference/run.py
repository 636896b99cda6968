"""High-precision reference trajectories: ``run(rule, hyper, params, grads)``.

Inputs convert exactly: a Python float (or a float32/bfloat16/float16 value widened to
float64) is a dyadic rational, and ``mpmath.mpf`` holds it without rounding at any precision
of 53 bits or more, so the reference sees exactly the numbers a kernel saw — parameters,
gradients, state and hyperparameters alike. Every arithmetic step then runs at ``dps``
decimal digits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import mpmath
import sympy as sp

from optproof.derivations import Spec, rule as get_rule
from optproof.derivations.symbols import g, t, theta_prev

from .compile import Compiled, compile_program

__all__ = ["run", "resolve", "Resolved", "start_state", "to_mpf"]


def to_mpf(value: Any, name: str = "value", *, strings: bool = True) -> mpmath.mpf:
    """``value`` as an mpmath number, exactly for floats and ints; decimal strings are read at
    the working precision (unless ``strings`` is false). Anything else raises ``TypeError``
    naming ``name``."""
    if isinstance(value, mpmath.mpf):
        return value
    if isinstance(value, bool) or not isinstance(value, (Real, str)) or (
            isinstance(value, str) and not strings):
        if hasattr(value, "item"):  # numpy / torch scalars
            return to_mpf(value.item(), name)
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} "
                        f"{value!r}")
    if isinstance(value, str):
        try:
            return mpmath.mpf(value)
        except ValueError:
            raise ValueError(f"{name} must be a real number, got {value!r}") from None
    return mpmath.mpf(value)  # exact for int and float (a double has 53 bits)


@dataclass(frozen=True)
class Resolved:
    """A rule with its hyperparameters resolved: the compiled program and per-step values."""

    spec: Spec
    flags: dict[str, bool]
    compiled: Compiled
    schedule: dict[sp.Symbol, Any]  # symbol → value, or a sequence of one value per step
    zeros: frozenset[sp.Symbol] = frozenset()  # skipped-at-zero coefficients that are 0

    def values(self, step_index: int) -> dict[sp.Symbol, mpmath.mpf]:
        """The hyperparameter values of the ``step_index``-th step of this run (0-based)."""
        out = {}
        for symbol, value in self.schedule.items():
            if isinstance(value, (list, tuple)):
                if step_index >= len(value):
                    raise ValueError(f"schedule for {symbol} has {len(value)} values, "
                                     f"step {step_index + 1} needs more")
                value = value[step_index]
            out[symbol] = value
        return out


def _check_domain(spec: Spec, key: str, hyper, value: mpmath.mpf) -> None:
    if not hyper.contains(float(value)):
        raise ValueError(f"Invalid {key} for rule {spec.name!r}: {mpmath.nstr(value, 17)} "
                         f"(must lie in {sp.sstr(hyper.domain)})")


def resolve(spec: Spec | str, hyper: Mapping[str, Any] | None = None) -> Resolved:
    """Check ``hyper`` (torch.optim keyword names) against ``spec`` and fill in defaults.

    Flags must be ``bool``; numbers must be real numbers (not strings: torch.optim raises
    ``TypeError`` for ``lr="0.01"``) in their domains; a numeric hyperparameter may be a list
    with one value per step (a schedule). Errors name the parameter and its range.
    """
    spec = get_rule(spec) if isinstance(spec, str) else spec
    hyper = dict(hyper or {})
    unknown = sorted(set(hyper) - set(spec.defaults))
    if unknown:
        raise TypeError(f"rule {spec.name!r} got an unexpected keyword {unknown[0]!r}; "
                        f"it takes {', '.join(spec.defaults)}")
    for flag in spec.flags:
        if flag in hyper and not isinstance(hyper[flag], bool):
            raise TypeError(f"{flag} must be a bool, got {hyper[flag]!r}")
    flags = spec.flag_values(**{f: hyper[f] for f in spec.flags if f in hyper})
    program = spec.program(**flags)
    schedule = {}
    for h in program.hypers:
        raw = hyper.get(h.keyword, spec.defaults[h.keyword])
        if h.index is not None:
            if not isinstance(raw, (list, tuple)) or len(raw) <= h.index:
                raise TypeError(f"{h.keyword} must be a tuple of at least {h.index + 1} numbers")
            raw = raw[h.index]
        key = h.key
        values = [to_mpf(v, key, strings=False)
                  for v in (raw if isinstance(raw, (list, tuple)) else [raw])]
        for v in values:
            _check_domain(spec, key, h, v)
        schedule[h.symbol] = values if isinstance(raw, (list, tuple)) else values[0]
    zeros = frozenset(h.symbol for h in program.hypers if h.skipped_at_zero
                      and not isinstance(schedule[h.symbol], list) and schedule[h.symbol] == 0)
    return Resolved(spec, flags, compile_program(program, zeros), schedule, zeros)


def kept_state_keys(resolved: Resolved) -> set[str]:
    """The state keys the framework keeps for these hyperparameters: a state with an
    ``exists`` condition (torch keeps no ``momentum_buffer`` at momentum 0) is computed but
    not reported when the condition fails for the first step's values."""
    values = resolved.values(0)
    return {s.key for s in resolved.compiled.program.states
            if bool(s.exists.xreplace(values))}


def start_state(resolved: Resolved, n: int, state: Mapping[str, Any] | None):
    program = resolved.compiled.program
    state = dict(state or {})
    step = int(state.pop("step", 0))
    if step < 0:
        raise ValueError(f"state['step'] must be a non-negative integer, got {step}")
    keys = kept_state_keys(resolved)
    extra = sorted(set(state) - keys)
    if extra:
        raise ValueError(f"rule {resolved.spec.name!r} with {resolved.flags} has no state "
                         f"{extra[0]!r}; its state keys are step, {', '.join(sorted(keys))}")
    values = {}
    for s in program.states:
        if s.key in state and s.per_step:
            values[s.prev] = to_mpf(state[s.key], f"state[{s.key!r}]")
        elif s.key in state:
            values[s.prev] = [to_mpf(v, f"state[{s.key!r}]") for v in state[s.key]]
            if len(values[s.prev]) != n:
                raise ValueError(f"state[{s.key!r}] has {len(values[s.prev])} elements, params {n}")
        else:
            init = s.init.xreplace(resolved.values(0))
            init = mpmath.mpf(sp.Float(init, mpmath.mp.dps)) if init != 0 else mpmath.mpf(0)
            values[s.prev] = init if s.per_step else [init] * n
    return step, values


def run(rule: Spec | str, hyper: Mapping[str, Any] | None, params: Sequence[Any],
        grads: Sequence[Sequence[Any]], *, dps: int = 50,
        state: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run ``rule`` on the flat parameter list ``params`` for ``len(grads)`` steps.

    ``hyper`` uses torch.optim's keyword names (``lr``, ``betas``, ``eps``, ``weight_decay``,
    ``amsgrad``, ``maximize``, …); ``grads[k]`` is the flat gradient of step k + 1. Empty
    ``params`` (with empty gradients) are a valid run, as an empty tensor is to torch.optim:
    each step's record has empty lists and the step count. An element whose step divides by
    an exact zero (``eps = 0``, which torch.optim accepts, where the second moment is still 0:
    every gradient so far was 0, so the numerator is 0 too) is NaN, as torch's 0/0. ``state``
    starts the run from a given state: ``{"step": t₀, "exp_avg": [...], ...}`` (missing keys
    start at the rule's initial value). Returns one dict per step, ``{"param": [...],
    "step": t, <torch state key>: [...]}`` of ``mpmath.mpf`` numbers at ``dps`` digits.
    """
    if dps < 20:
        raise ValueError(f"dps must be at least 20 (exact float inputs need 53 bits), got {dps}")
    with mpmath.workdps(dps):
        resolved = resolve(rule, hyper)
        theta = [to_mpf(p, "params") for p in params]
        step, state_values = start_state(resolved, len(theta), state)
        compiled = resolved.compiled
        program = compiled.program
        kept = kept_state_keys(resolved)
        out = []
        for k, grad in enumerate(grads):
            if len(grad) != len(theta):
                raise ValueError(f"grads[{k}] has {len(grad)} elements, params {len(theta)}")
            scalars = {t: mpmath.mpf(step + k + 1), **resolved.values(k),
                       **{s.prev: state_values[s.prev] for s in program.states if s.per_step}}
            for ev in compiled.per_step:
                scalars[ev.target] = ev.fn(*(scalars[a] for a in ev.args))
            columns = {theta_prev: theta, g: [to_mpf(x, f"grads[{k}]") for x in grad],
                       **{s.prev: state_values[s.prev] for s in program.states if not s.per_step}}
            new = _elementwise(compiled, scalars, columns, len(theta))
            new.update({s.new: scalars[s.new] for s in program.states
                        if s.per_step and s.new in scalars})
            theta = new[program.outputs["param"]]
            state_values = {s.prev: new.get(s.new, state_values[s.prev]) for s in program.states}
            record = {"param": theta, "step": step + k + 1}
            record.update({s.key: state_values[s.prev] for s in program.states if s.key in kept})
            out.append(record)
        return out


def _elementwise(compiled: Compiled, scalars, columns, n: int) -> dict[sp.Symbol, list]:
    """Evaluate the per-element lines for every element; returns each target's column
    (empty columns for no elements)."""
    results: dict[sp.Symbol, list] = {ev.target: [None] * n for ev in compiled.per_element}
    for i in range(n):
        env = dict(scalars)
        env.update({sym: col[i] for sym, col in columns.items()})
        for ev in compiled.per_element:
            try:
                value = ev.fn(*(env[a] for a in ev.args))
            except ZeroDivisionError:  # eps = 0 where every gradient so far was 0: 0/0
                value = mpmath.nan
            # a real kernel's root of a negative number is NaN, not an imaginary number
            env[ev.target] = mpmath.nan if isinstance(value, mpmath.mpc) else value
        for target in results:
            results[target][i] = env[target]
    return results
