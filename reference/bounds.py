"""Derived error bounds for a kernel's step: running error analysis of the rule.

A kernel that computes a rule in floating point rounds after every operation. Writing u for
the unit roundoff of the tensor's dtype and η for half its smallest subnormal, each rounding
obeys fl(x ∘ y) = (x ∘ y)(1 + δ) + η', |δ| ≤ u, |η'| ≤ η (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., §2.2 and §2.8). Walking each output's closed form (the
program's lines substituted into one another, so that a kernel may group the operations of
several lines as it likes) with the exact operands, each node's bound follows from its
operands' bounds:

```text
=============  ==========================================================================
node           bound on |computed − exact| (x exact value, eᵢ operand bounds)
=============  ==========================================================================
a₁ + … + aₙ    Σeᵢ + u·|x| + (n − 1)·u·Σ|aᵢ| + n·η
               (the final rounding, and one for each of the n − 1 partial sums or
               differences a kernel may form, each at most Σ|aᵢ|: lerp computes
               β·x + (1 − β)·y as x + (1 − β)·(y − x), rounding y − x on the way)
a₁ · … · aₙ    Σᵢ eᵢ·Πⱼ≠ᵢ(|aⱼ| + eⱼ) + (n − 1)·(u·|x| + η·A), A = Πⱼ max(1, |aⱼ| + eⱼ)
               (a factor ±1 is exact; an underflow in any partial product is amplified by
               at most the product A of the factors above 1 that follow it; the part of eᵢ
               that stems from underflow is carried with Πⱼ≠ᵢ max(1, |aⱼ| + eⱼ) instead,
               since a kernel may have applied a small factor before the underflow)
aⁿ, n ∈ ℕ      as the product of n copies of a
1/a            e/(|a|·(|a| − e)) + u·|x| + η                  (∞ if e ≥ |a|)
√a             min(e/√a, √e) + u·|x| + η  when the computed a is surely ≥ 0 (a sum or
               product of non-negative terms); ∞ when e ≥ a otherwise, since the kernel may
               then take the root of a negative number; NaN (no claim) when a < 0
aᵇ, b ∉ ℤ      |x|·(|b|·e_a/|a| + |ln a|·e_b) + u·|x| + η      (per-step powers βᵗ)
max(a, b)      max(e_a, e_b)                                  (exact operation)
|a|            e_a                                            (exact operation)
=============  ==========================================================================
```

The bound carries the conditioning of every subtraction (|x| small against Σ|aᵢ|), as
DESIGN.md asks. Sub-expressions that depend only on t and the hyperparameters (bias
corrections, step sizes) are computed by torch.optim and optproof in Python float64
(u = 2⁻⁵³) and then enter the elementwise kernel as scalars; a kernel may round such a
scalar to the tensor's own dtype before using it (torch's float16 ``add_(…, alpha=)`` does,
measured with torch 2.13), so each scalar is charged one rounding of the storage dtype,
precision and range. Elementwise nodes are charged a rounding of the storage dtype each, an
upper bound for kernels that keep intermediates in float32 (torch's ``opmath``) and round once.

The bound is kernel-independent: any kernel that evaluates each operation of the rule once,
in any grouping of its factors, satisfies it. A kernel that computes per-step quantities in
lower precision than float64 (torch's fused kernels keep the step count and bias corrections
in float32, torch #88173; torch.optim.NAdam keeps its μ-product in float32) does not, and is
reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import mpmath
import sympy as sp

from optproof.derivations import Spec
from optproof.derivations.symbols import g, t, theta_prev

from .compile import nan_max
from .run import kept_state_keys, resolve, start_state, to_mpf

__all__ = ["Precision", "PRECISIONS", "Bounded", "precision", "ulp", "bounded_run"]


@dataclass(frozen=True)
class Precision:
    """A binary floating-point format: ``bits`` of significand (with the implicit one),
    unit roundoff u = 2⁻ᵇⁱᵗˢ, underflow error η = half the smallest subnormal, and the
    largest finite value."""

    name: str
    bits: int
    min_exponent: int  # exponent of the smallest normal number
    max: float

    @property
    def u(self) -> mpmath.mpf:
        return mpmath.ldexp(1, -self.bits)

    @property
    def eta(self) -> mpmath.mpf:
        return mpmath.ldexp(1, self.min_exponent - self.bits)

    @property
    def tiny(self) -> mpmath.mpf:
        """The smallest positive subnormal number."""
        return mpmath.ldexp(1, self.min_exponent - self.bits + 1)


PRECISIONS = {
    p.name: p
    for p in (
        Precision("float64", 53, -1022, 1.7976931348623157e308),
        Precision("float32", 24, -126, 3.4028234663852886e38),
        Precision("bfloat16", 8, -126, 3.3895313892515355e38),
        Precision("float16", 11, -14, 65504.0),
    )
}


def precision(dtype: Any) -> Precision:
    """The `Precision` of a dtype given as a name or a torch/numpy dtype."""
    name = str(dtype).removeprefix("torch.")
    if name not in PRECISIONS:
        raise ValueError(f"dtype must be one of {', '.join(PRECISIONS)}, got {dtype!r}")
    return PRECISIONS[name]


def ulp(x: mpmath.mpf, p: Precision) -> mpmath.mpf:
    """The spacing of ``p``'s numbers at |x| (the subnormal spacing below the normal range)."""
    if x == 0:
        return p.tiny
    if not mpmath.isfinite(x):
        return mpmath.inf
    exponent = max(int(mpmath.floor(mpmath.log(abs(x), 2))), p.min_exponent)
    # floor(log2) can be off by one at exact powers of two at finite precision: correct it
    if mpmath.ldexp(1, exponent + 1) <= abs(x):
        exponent += 1
    return mpmath.ldexp(1, exponent - p.bits + 1)


class Bounded(NamedTuple):
    """An exact value, the bound on a kernel's error in computing it, whether the kernel's
    computed value is surely non-negative (so that its square root is real), and the part
    ``under`` of the bound that stems from underflow (absolute errors that a later small
    factor cannot be trusted to shrink)."""

    x: mpmath.mpf
    e: mpmath.mpf
    nonneg: bool = False
    under: mpmath.mpf = mpmath.mpf(0)


_ZERO = mpmath.mpf(0)


def _exact(x: mpmath.mpf) -> Bounded:
    return Bounded(x, _ZERO, x >= 0)


def _unbounded(x: mpmath.mpf) -> Bounded:
    return Bounded(x, mpmath.inf, False, mpmath.inf)


def _function_of(x: mpmath.mpf, e: mpmath.mpf, nonneg: bool, eta: mpmath.mpf) -> Bounded:
    """The result of √, 1/· or a power: no kernel moves a factor inside such a function, so
    only its own rounding's underflow is left that a small factor cannot shrink."""
    return Bounded(x, e, nonneg, min(eta, e))


class _Bounds:
    """Evaluates `Bounded` values of expression trees under one rounding model."""

    def __init__(self, p: Precision, env: Mapping[sp.Symbol, Bounded],
                 scalar: _Bounds | None = None, cast: Callable[[Bounded], Bounded] | None = None):
        """``scalar``, when given, evaluates the sub-expressions whose symbols are all its own
        (per-step values, in float64); ``cast`` then rounds them into this evaluator's type."""
        self.u, self.eta, self.env = p.u, p.eta, env
        self.scalar, self.cast = scalar, cast
        self.memo: dict[sp.Expr, Bounded] = {}

    def round(self, x: mpmath.mpf) -> mpmath.mpf:
        return self.u * abs(x) + self.eta

    def __call__(self, expr: sp.Expr) -> Bounded:
        if expr not in self.memo:
            self.memo[expr] = self._evaluate(expr)
        return self.memo[expr]

    def _evaluate(self, expr: sp.Expr) -> Bounded:
        if self.scalar is not None and not expr.is_Number and expr.free_symbols <= self.scalar.env.keys():
            return self.cast(self.scalar(expr))
        if expr.is_Symbol:
            return self.env[expr]
        if expr.is_Number:
            return _exact(mpmath.mpf(sp.Rational(expr).p) / sp.Rational(expr).q)
        if isinstance(expr, sp.Add):
            return self._add([self(a) for a in expr.args])
        if isinstance(expr, sp.Mul):
            negated = sp.S.NegativeOne in expr.args
            return self._mul([self(a) for a in expr.args if a not in (sp.S.One, sp.S.NegativeOne)],
                             sign=-1 if negated else 1)
        if isinstance(expr, sp.Pow):
            return self._pow(expr)
        if isinstance(expr, sp.Abs):
            a = self(expr.args[0])
            return Bounded(abs(a.x), a.e, True, a.under)
        if isinstance(expr, sp.Max):
            parts = [self(a) for a in expr.args]
            return Bounded(nan_max(*(p.x for p in parts)), max(p.e for p in parts),
                           any(p.nonneg for p in parts), max(p.under for p in parts))
        if isinstance(expr, sp.Piecewise):
            for value, condition in expr.args:
                known = {s: sp.Float(self(s).x, 30) for s in condition.free_symbols}
                if bool(condition.xreplace(known)):
                    return self(value)
        raise NotImplementedError(f"no rounding model for {type(expr).__name__}: {expr}")

    def _add(self, parts: list[Bounded]) -> Bounded:
        x = mpmath.fsum(p.x for p in parts)
        if any(p.e == mpmath.inf for p in parts):
            return _unbounded(x)
        roundings = len(parts) - 1
        # the final rounding, plus one per partial sum or difference (≤ Σ|aᵢ| each)
        e = mpmath.fsum(p.e for p in parts) + self.round(x)
        e += roundings * self.round(mpmath.fsum(abs(p.x) for p in parts))
        under = mpmath.fsum(p.under for p in parts) + (roundings + 1) * self.eta
        return Bounded(x, e, all(p.nonneg for p in parts) or x - e >= 0, under)

    def _mul(self, parts: list[Bounded], sign: int = 1) -> Bounded:
        if not parts:
            return _exact(mpmath.mpf(sign))
        x = sign * mpmath.fprod(p.x for p in parts)
        if any(p.e == mpmath.inf for p in parts):
            return _unbounded(x)
        e, under = _ZERO, _ZERO
        for i, part in enumerate(parts):
            if part.e:
                others = [abs(q.x) + q.e for j, q in enumerate(parts) if j != i]
                grown = part.under * mpmath.fprod(max(1, o) for o in others)
                under += grown
                e += (part.e - part.under) * mpmath.fprod(others) + grown
        roundings = len(parts) - 1
        amplify = mpmath.fprod(max(1, abs(q.x) + q.e) for q in parts)
        e += roundings * (self.u * abs(x) + self.eta * amplify)
        under += roundings * self.eta * amplify
        return Bounded(x, e, (sign > 0 and all(p.nonneg for p in parts)) or x - e >= 0, under)

    def _pow(self, expr: sp.Pow) -> Bounded:
        base, exponent = expr.args
        if exponent.free_symbols:  # βᵗ, 0.96^(tψ): one call of pow, within u of the exact
            a, b = self(base), self(exponent)
            x = mpmath.power(a.x, b.x)
            # first order: d(aᵇ) = aᵇ·(b·da/a + ln(a)·db)
            spread = (abs(b.x) * a.e / abs(a.x) if a.e else 0) + (abs(mpmath.log(a.x)) * b.e if b.e else 0)
            return _function_of(x, abs(x) * spread + self.round(x), a.nonneg, self.eta)
        a = self(base)
        if exponent.is_Integer and exponent > 0:
            power = self._mul([a] * int(exponent))
            return power._replace(nonneg=power.nonneg or exponent % 2 == 0)
        if exponent == sp.S.Half:
            return self._sqrt(a)
        if exponent.is_negative:
            positive = a if exponent == -1 else self._pow(sp.Pow(base, -exponent, evaluate=False))
            return self._reciprocal(positive)
        raise NotImplementedError(f"no rounding model for the power {expr}")

    def _sqrt(self, a: Bounded) -> Bounded:
        if a.x < 0 or not mpmath.isfinite(a.x):
            return _unbounded(mpmath.nan)  # not a real number: no claim
        x = mpmath.sqrt(a.x)
        if a.e == mpmath.inf or (not a.nonneg and a.e >= a.x):
            return _unbounded(x)  # the computed radicand may be negative
        err = mpmath.sqrt(a.e) if a.x == 0 else min(a.e / x, mpmath.sqrt(a.e))
        return _function_of(x, err + self.round(x), True, self.eta)

    def _reciprocal(self, a: Bounded) -> Bounded:
        if a.e >= abs(a.x):
            return _unbounded(mpmath.inf if a.x == 0 else 1 / a.x)
        x = 1 / a.x
        e = a.e / (abs(a.x) * (abs(a.x) - a.e)) + self.round(x)
        return _function_of(x, e, a.nonneg, self.eta)


def _cast(value: Bounded, p: Precision) -> Bounded:
    """A float64 scalar entering an elementwise kernel, rounded to the tensor's dtype."""
    return Bounded(value.x, value.e + p.u * (abs(value.x) + value.e) + p.eta, value.nonneg,
                   value.under + p.eta)


def _finite(value: Bounded, p: Precision) -> Bounded:
    """No claim where the exact value (or its bound) leaves the dtype's finite range."""
    if not mpmath.isfinite(value.x) or abs(value.x) + value.e > p.max:
        return _unbounded(value.x)
    return value


def bounded_run(rule: Spec | str, hyper: Mapping[str, Any] | None, params: Sequence[Any],
                grads: Sequence[Sequence[Any]], dtype: Any, *, dps: int = 40,
                state: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Like `run`, with a derived error bound for a kernel in ``dtype``.

    Returns one dict per step, ``{key: [(exact, bound), ...]}`` for ``param`` and every
    state key (a per-step state gives one pair), and ``"step"``. Starting from
    exact inputs, the first step's bounds are the one-step oracle's; later steps carry the
    earlier errors forward (the trajectory bound). A bound is ``inf`` where the exact value
    or its bound leaves the dtype's finite range, or where the computed value may not be a
    real number; the exact value is NaN where the rule itself takes the root of a negative
    number (from a kernel's own, already rounded, state).
    """
    p = precision(dtype)
    f64 = PRECISIONS["float64"]
    with mpmath.workdps(dps):
        resolved = resolve(rule, hyper)
        program = resolved.compiled.program
        absent = {z: sp.S.Zero for z in resolved.zeros}  # a term with a zero factor is absent
        closed = {name: expr.xreplace(absent) for name, expr in program.closed_form.items()}
        step, start = start_state(resolved, len(params), state)
        theta = [_exact(to_mpf(v, "params")) for v in params]
        states = {s.prev: (_exact(start[s.prev]) if s.per_step else [_exact(x) for x in start[s.prev]])
                  for s in program.states}
        kept = kept_state_keys(resolved)
        out = []
        for k, grad in enumerate(grads):
            scalars = {t: _exact(mpmath.mpf(step + k + 1)),
                       **{sym: _exact(v) for sym, v in resolved.values(k).items()},
                       **{s.prev: states[s.prev] for s in program.states if s.per_step}}
            scalar_eval = _Bounds(f64, scalars)
            for s in program.states:
                if s.per_step:
                    states[s.prev] = _finite(scalar_eval(closed[s.key]), p)
            elementwise = {"param": closed["param"],
                           **{s.key: closed[s.key] for s in program.states if not s.per_step}}
            columns: dict[str, list[Bounded]] = {name: [] for name in elementwise}
            for i, theta_i in enumerate(theta):
                env = {theta_prev: theta_i, g: _exact(to_mpf(grad[i], f"grads[{k}]")),
                       **{s.prev: states[s.prev][i] for s in program.states if not s.per_step}}
                evaluate = _Bounds(p, env, scalar_eval, lambda v: _cast(v, p))
                for name, expr in elementwise.items():
                    columns[name].append(_finite(evaluate(expr), p))
            theta = columns["param"]
            for s in program.states:
                if not s.per_step:
                    states[s.prev] = columns[s.key]
            record = {"param": [(b.x, b.e) for b in theta], "step": step + k + 1}
            for s in program.states:
                if s.key in kept:
                    value = states[s.prev]
                    record[s.key] = (value.x, value.e) if s.per_step else [(b.x, b.e) for b in value]
            out.append(record)
        return out
