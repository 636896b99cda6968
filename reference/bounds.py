"""Derived error bounds for a kernel's step: running error analysis of the rule's program.

A kernel that computes a rule in floating point rounds after every operation. Writing
u for the unit roundoff of the tensor's dtype and η for half its smallest subnormal, each
rounding obeys fl(x ∘ y) = (x ∘ y)(1 + δ) + η', |δ| ≤ u, |η'| ≤ η (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., §2.2 and §2.8). Walking the rule's expression
tree with the exact operands, each node's error bound follows from its operands' bounds:

=============  ==========================================================================
node           bound on |computed − exact| (x exact value, e operand bounds)
=============  ==========================================================================
a₁ + … + aₙ    Σeᵢ + u·|x| + (n − 2)·u·Σ|aᵢ| + (n − 1)·η  (partial sums ≤ Σ|aᵢ|)
a₁ · … · aₙ    Σᵢ eᵢ·Πⱼ≠ᵢ(|aⱼ| + eⱼ) + (n − 1)·(u·|x| + η)   (a factor ±1 is exact)
aⁿ, n ∈ ℕ      as the product of n copies of a
aᵇ, b ∉ ℤ      |x|·(|b|·e_a/|a| + |ln a|·e_b) + u·|x| + η      (per-step powers βᵗ)
1/a            e/(|a|·(|a| − e)) + u·|x| + η                  (∞ if e ≥ |a|)
√a             min(e/√a, √e) + u·|x| + η
max(a, b)      max(e_a, e_b)                                  (exact operation)
=============  ==========================================================================

The bound thus carries the conditioning of every subtraction (|x| small against Σ|aᵢ|), the
quantity DESIGN.md asks a bound to account for. Sub-expressions that depend only on t and
the hyperparameters (bias corrections, step sizes) are computed by torch.optim and optproof
in Python float64 (u = 2⁻⁵³) and then enter the elementwise kernel as scalars, cast to the
kernel's compute type (float32 for float32, bfloat16 and float16 tensors; float64 for
float64): one more rounding of that type. Elementwise nodes are charged a rounding of the
*storage* dtype each, an upper bound for kernels that keep intermediates in float32
(torch's ``opmath``) and round once.

The bound is kernel-independent: any kernel that evaluates each operation of the rule once,
in any algebraically equivalent grouping of per-step scalars, satisfies it. A kernel that
computes per-step quantities in lower precision than float64 (torch's fused kernels keep
the step count and bias corrections in float32, torch #88173) does not, and is reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import sympy as sp

from optproof.derivations import Spec
from optproof.derivations.symbols import g, t, theta_prev

from .run import resolve, start_state, to_mpf

__all__ = ["Precision", "PRECISIONS", "precision", "ulp", "bounded_run"]


@dataclass(frozen=True)
class Precision:
    """A binary floating-point format: ``bits`` of significand (with the implicit one),
    unit roundoff u = 2⁻ᵇⁱᵗˢ, underflow error η = half the smallest subnormal, largest finite
    value, and the format its elementwise arithmetic is computed in (``opmath``)."""

    name: str
    bits: int
    min_exponent: int  # exponent of the smallest normal number
    max: float
    opmath: str

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
        Precision("float64", 53, -1022, 1.7976931348623157e308, "float64"),
        Precision("float32", 24, -126, 3.4028234663852886e38, "float32"),
        Precision("bfloat16", 8, -126, 3.3895313892515355e38, "float32"),
        Precision("float16", 11, -14, 65504.0, "float32"),
    )
}


def precision(dtype: Any) -> Precision:
    """The :class:`Precision` of a dtype given as a name or a torch/numpy dtype."""
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


class _Bounds:
    """Evaluates (value, error bound) of an expression tree under one rounding model."""

    def __init__(self, u: mpmath.mpf, eta: mpmath.mpf, env: Mapping[sp.Symbol, tuple],
                 scalar: _Bounds | None = None, cast=None):
        """``scalar``, when given, evaluates the sub-expressions whose symbols are all its own
        (per-step values, in float64); ``cast`` then rounds them into this evaluator's type."""
        self.u, self.eta, self.env = u, eta, env
        self.scalar, self.cast = scalar, cast

    def round(self, x: mpmath.mpf) -> mpmath.mpf:
        return self.u * abs(x) + self.eta

    def __call__(self, expr: sp.Expr) -> tuple[mpmath.mpf, mpmath.mpf]:
        if self.scalar is not None and expr.free_symbols <= self.scalar.env.keys():
            return self.cast(self.scalar(expr))
        if expr.is_Symbol:
            return self.env[expr]
        if expr.is_Number:
            return mpmath.mpf(sp.Rational(expr).p) / sp.Rational(expr).q, mpmath.mpf(0)
        if isinstance(expr, sp.Add):
            return self._add([self(a) for a in expr.args])
        if isinstance(expr, sp.Mul):
            return self._mul([self(a) for a in expr.args if a not in (sp.S.One, sp.S.NegativeOne)],
                             sign=-1 if sp.S.NegativeOne in expr.args else 1)
        if isinstance(expr, sp.Pow):
            return self._pow(expr)
        if isinstance(expr, sp.Max):
            parts = [self(a) for a in expr.args]
            return max(p[0] for p in parts), max(p[1] for p in parts)
        if isinstance(expr, sp.Piecewise):
            for value, condition in expr.args:
                if bool(condition.xreplace({s: sp.Float(v[0], 30) for s, v in self.env.items()
                                            if s in condition.free_symbols})):
                    return self(value)
        raise NotImplementedError(f"no rounding model for {type(expr).__name__}: {expr}")

    def _add(self, parts):
        x = mpmath.fsum(p[0] for p in parts)
        e = mpmath.fsum(p[1] for p in parts) + self.round(x)
        if len(parts) > 2:
            e += (len(parts) - 2) * self.round(mpmath.fsum(abs(p[0]) for p in parts))
        return x, e

    def _mul(self, parts, sign=1):
        if not parts:
            return mpmath.mpf(sign), mpmath.mpf(0)
        x = sign * mpmath.fprod(p[0] for p in parts)
        e = mpmath.mpf(0)
        for i, (_, ei) in enumerate(parts):
            if ei:
                e += ei * mpmath.fprod(abs(xj) + ej for j, (xj, ej) in enumerate(parts) if j != i)
        return x, e + (len(parts) - 1) * self.round(x)

    def _pow(self, expr: sp.Pow):
        base, exponent = expr.args
        if exponent.free_symbols:  # βᵗ, 0.96^(tψ): one call of pow, within u of the exact
            (a, ea), (b, eb) = self(base), self(exponent)
            x = mpmath.power(a, b)
            # first order: d(aᵇ) = aᵇ·(b·da/a + ln(a)·db)
            spread = (abs(b) * ea / abs(a) if ea else 0) + (abs(mpmath.log(a)) * eb if eb else 0)
            return x, abs(x) * spread + self.round(x)
        a, ea = self(base)
        if exponent.is_Integer and exponent > 0:
            return self._mul([(a, ea)] * int(exponent))
        if exponent == sp.S.Half:
            x = mpmath.sqrt(a)
            err = mpmath.sqrt(ea) if a == 0 else min(ea / mpmath.sqrt(a), mpmath.sqrt(ea))
            return x, err + self.round(x)
        if exponent.is_negative:
            positive = self._pow(sp.Pow(base, -exponent, evaluate=False)) if exponent != -1 else (a, ea)
            return self._reciprocal(*positive)
        raise NotImplementedError(f"no rounding model for the power {expr}")

    def _reciprocal(self, a, ea):
        if ea >= abs(a):
            return (mpmath.inf if a == 0 else 1 / a), mpmath.inf
        x = 1 / a
        return x, ea / (abs(a) * (abs(a) - ea)) + self.round(x)


def _cast(value: tuple, p: Precision) -> tuple:
    """A float64 scalar entering an elementwise kernel: rounded to the compute type."""
    x, e = value
    op = PRECISIONS[p.opmath]
    return x, e + op.u * (abs(x) + e) + op.eta


def bounded_run(rule: Spec | str, hyper: Mapping[str, Any] | None, params: Sequence[Any],
                grads: Sequence[Sequence[Any]], dtype: Any, *, dps: int = 40,
                state: Mapping[str, Any] | None = None,
                ) -> list[dict[str, Any]]:
    """Like :func:`~optproof.reference.run`, with a derived error bound for a kernel in ``dtype``.

    Returns one dict per step, ``{key: [(exact value, bound), ...]}`` for ``param`` and every
    state key (a per-step state gives one pair). Starting from exact inputs, the first step's
    bounds are the one-step oracle's; later steps carry the earlier errors forward (the
    trajectory bound). A bound is ``inf`` where the exact value or its bound leaves the
    dtype's finite range (the kernel cannot represent it).
    """
    p = precision(dtype)
    f64 = PRECISIONS["float64"]
    with mpmath.workdps(dps):
        resolved = resolve(rule, hyper)
        program = resolved.compiled.program
        per_step = program.per_step
        zero = mpmath.mpf(0)
        theta = [(to_mpf(v, "params"), zero) for v in params]
        step, start = start_state(resolved, len(theta), state)
        states = {s.prev: ((v, zero) if s.per_step else [(x, zero) for x in v])
                  for s, v in ((s, start[s.prev]) for s in program.states)}
        out = []
        for k, grad in enumerate(grads):
            scalars = {t: (mpmath.mpf(step + k + 1), zero),
                       **{sym: (v, zero) for sym, v in resolved.values(k).items()},
                       **{s.prev: states[s.prev] for s in program.states if s.per_step}}
            scalar_eval = _Bounds(f64.u, f64.eta, scalars)
            element_lines = []
            for line in program.lines:
                if line.target in per_step and line.expr.free_symbols <= set(scalars):
                    scalars[line.target] = scalar_eval(line.expr)
                else:
                    element_lines.append(line)
            new_theta, new_states = [], {s.prev: [] for s in program.states if not s.per_step}
            for i, (theta_i, gi) in enumerate(zip(theta, grad)):
                env = {theta_prev: theta_i, g: (to_mpf(gi, f"grads[{k}]"), zero),
                       **{s.prev: states[s.prev][i] for s in program.states if not s.per_step}}
                evaluate = _Bounds(p.u, p.eta, env, scalar_eval, lambda v: _cast(v, p))
                for line in element_lines:
                    env[line.target] = evaluate(line.expr)
                new_theta.append(_finite(env[program.outputs["param"]], p))
                for s in program.states:
                    if not s.per_step:
                        new_states[s.prev].append(_finite(env.get(s.new, env[s.prev]), p))
            theta = new_theta
            for s in program.states:
                states[s.prev] = (_finite(scalars.get(s.new, states[s.prev]), p) if s.per_step
                                  else new_states[s.prev])
            record = {"param": theta, "step": step + k + 1}
            record.update({s.key: states[s.prev] for s in program.states})
            out.append(record)
        return out


def _finite(value: tuple, p: Precision) -> tuple:
    x, e = value
    return (x, mpmath.inf) if abs(x) + e > p.max else value
