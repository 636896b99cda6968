"""Helpers the theorems share: spec values, witnesses, and reference cross-checks."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import mpmath
import sympy as sp

from ..program import Program
from ..spec import Spec, rule
from ..symbols import HYPERS
from ..unroll import Unrolled, domain_of
from .core import DPS, Check

__all__ = ["H", "values", "witness", "reference_check", "runs_compare", "opaque"]


def H(key: str) -> sp.Symbol:
    """The symbol of hyperparameter ``key`` (``lr`` → γ)."""
    return HYPERS[key].symbol


def values(program: Program, keep: Iterable[sp.Symbol] = ()) -> dict[sp.Symbol, sp.Expr]:
    """Each target of ``program`` as an expression of the step's inputs, the lines substituted
    in order (the last assignment wins), except the targets in ``keep``, which stay symbols."""
    keep = set(keep)
    env: dict[sp.Symbol, sp.Expr] = {}
    for line in program.lines:
        value = line.expr.xreplace(env)
        env[line.target] = line.target if line.target in keep else value
    return env


def opaque(unrolled: Unrolled, target: sp.Symbol) -> list[sp.Symbol]:
    """The named symbols of ``target`` (u_t → u₁ … u_k) in an unrolled program."""
    return [unrolled.named(target, i) for i in range(1, unrolled.k + 1)]


def witness(exprs: Sequence[sp.Expr], **by_name: Any) -> dict[sp.Symbol, sp.Expr]:
    """A point inside the domains for every free symbol of ``exprs``: a finite interval's
    midpoint (β = ½), 1/10 for a positive or non-negative hyperparameter, t = 2, and distinct
    small rationals for the reals (θ₀, g₁, …). ``by_name`` overrides by symbol name."""
    free = sorted(set().union(*(sp.sympify(e).free_symbols for e in exprs)), key=str)
    point: dict[sp.Symbol, sp.Expr] = {}
    reals = 0
    for s in free:
        if s.name in by_name:
            point[s] = sp.nsimplify(by_name[s.name])
            continue
        domain = domain_of(s)
        if s.is_integer:
            point[s] = sp.Integer(2)
        elif isinstance(domain, sp.FiniteSet):
            point[s] = sorted(domain)[0]
        elif isinstance(domain, sp.Interval) and domain.sup.is_finite:
            point[s] = (domain.inf + domain.sup) / 2
        elif isinstance(domain, sp.Interval) and domain.inf == 0:
            point[s] = sp.Rational(1, 10)
        else:
            reals += 1
            point[s] = sp.Rational((-1) ** reals * (reals + 1), 2)
    return point


def _hyper_value(spec: Spec, hyper: Mapping[str, Any], key: str, i: int):
    keyword, _, index = key.partition("[")
    raw = hyper.get(keyword, spec.defaults.get(keyword))
    if index:
        raw = raw[int(index[:-1])]
    return raw[i] if isinstance(raw, (list, tuple)) else raw


def _point(unrolled: Unrolled, spec: Spec, hyper: Mapping[str, Any], theta0, grads, j: int,
           extra: Mapping[sp.Symbol, Any]) -> dict[sp.Symbol, Any]:
    point: dict[sp.Symbol, Any] = {unrolled.theta[0]: mpmath.mpf(theta0[j])}
    for i, gi in enumerate(unrolled.grads):
        point[gi] = mpmath.mpf(grads[i][j])
    for key, symbols in unrolled.hyper.items():
        for i, symbol in enumerate(symbols):
            if isinstance(symbol, sp.Symbol) and symbol not in point:
                point[symbol] = mpmath.mpf(_hyper_value(spec, hyper, key, i))
    point.update({s: mpmath.mpf(v) for s, v in extra.items()})
    return point


def _evaluate(expr: sp.Expr, point: Mapping[sp.Symbol, Any]):
    symbols = sorted(expr.free_symbols, key=str)
    return sp.lambdify(symbols, expr, modules="mpmath")(*(point[s] for s in symbols))


def _draw(rng: random.Random, k: int, n: int) -> tuple[list[float], list[list[float]]]:
    theta0 = [rng.uniform(-2, 2) for _ in range(n)]
    grads = [[rng.uniform(-2, 2) for _ in range(n)] for _ in range(k)]
    return theta0, grads


def reference_check(label: str, unrolled: Unrolled, spec: Spec | str, hyper: Mapping[str, Any],
                    rng: random.Random, *, name: str = "param", elements: int = 3,
                    extra: Mapping[sp.Symbol, Any] | None = None) -> Check:
    """The unrolled closed form of output ``name`` after k steps against the mpmath reference
    trajectory `optproof.reference.run` of ``spec`` with ``hyper`` (torch keywords; a
    list is a per-step schedule), at random θ₀ and gradients."""
    from optproof.reference import run

    spec = rule(spec) if isinstance(spec, str) else spec
    theta0, grads = _draw(rng, unrolled.k, elements)
    with mpmath.workdps(DPS):
        records = run(spec, hyper, theta0, grads, dps=DPS)
        closed = unrolled.closed(name)
        worst = mpmath.mpf(0)
        for j in range(elements):
            point = _point(unrolled, spec, hyper, theta0, grads, j, extra or {})
            a, b = _evaluate(closed, point), records[-1][name][j]
            worst = max(worst, abs(a - b) / (1 + abs(b)))
    return Check(f"{label}: closed form vs reference.run ({unrolled.k} steps)", float(worst),
                 bool(worst < mpmath.mpf(10) ** -(DPS - 10)))


def runs_compare(label: str, a: tuple[Spec | str, Mapping[str, Any]],
                 b: tuple[Spec | str, Mapping[str, Any]], k: int, rng: random.Random, *,
                 agree: bool = True, elements: int = 3) -> Check:
    """Two reference trajectories from the same θ₀ and gradients: with ``agree`` every step's
    parameters must coincide to 40 digits; otherwise the last step's must differ."""
    from optproof.reference import run

    theta0, grads = _draw(rng, k, elements)
    with mpmath.workdps(DPS):
        ra = run(a[0], a[1], theta0, grads, dps=DPS)
        rb = run(b[0], b[1], theta0, grads, dps=DPS)
        gaps = [max(abs(x - y) / (1 + abs(y)) for x, y in zip(sa["param"], sb["param"]))
                for sa, sb in zip(ra, rb)]
    worst = max(gaps)
    if agree:
        return Check(f"{label}: reference trajectories agree ({k} steps)", float(worst),
                     bool(worst < mpmath.mpf(10) ** -(DPS - 10)))
    return Check(f"{label}: reference trajectories differ at step {k}", float(gaps[-1]),
                 bool(gaps[-1] > mpmath.mpf(10) ** -20))


def collected(expr: sp.Expr, inputs: Sequence[sp.Symbol]) -> sp.Expr:
    """A polynomial in ``inputs`` (θ₀, g₁, …) written as Σ (factored coefficient)·input: the
    readable form of a linear closed form."""
    poly = sp.collect(sp.expand(expr), list(inputs), evaluate=False)
    return sp.Add(*[sp.factor(c) * (1 if m == 1 else m) for m, c in poly.items()])


__all__ += ["collected"]
