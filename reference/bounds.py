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
a^(n/2)        as the product of n copies of √a  (derivatives of roots: ∂(1/√a) ∝ a^(−3/2))
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

A framework that holds its hyperparameters in a lower format and computes the per-step
scalars in the parameters' dtype (Keras 3 under its default floatx float32, optax with jax's
default float32) is described by a `Rounding` model rather than this default: each
hyperparameter enters with one rounding to that format (an *error* e = |fl(β) − β|, not a
changed value — Keras computes ``1 − β₁`` from the Python float but ``β₁ᵗ`` from the
float32 one, and both lie within it), the scalar arithmetic is charged that format's u, and
the power βᵗ its library's error (a libm ``pow`` within one ULP; jax's ``x ** n`` for an
integer n, repeated multiplication, n − 1 roundings: relative error ≤ (1 + u)ⁿ⁻¹ − 1,
Higham §3.1). The bound is derived for that order of operations; nothing is widened.

The bound is kernel-independent: any kernel that evaluates each operation of the rule once,
in any grouping of its factors, satisfies it. A kernel that computes per-step quantities in
lower precision than float64 (torch's fused kernels keep the step count and bias corrections
in float32, torch #88173; torch.optim.NAdam keeps its μ-product in float32) does not, and is
reported.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import mpmath
import sympy as sp

from optproof.derivations import Spec
from optproof.derivations.program import Program, State
from optproof.derivations.symbols import g, t, theta_prev

from .compile import nan_max
from .run import kept_state_keys, resolve, start_state, to_mpf

__all__ = ["Precision", "PRECISIONS", "Bounded", "Rounding", "FLOAT64_SCALARS", "Tape",
           "precision", "ulp", "bounded_run"]


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
    exponent = _binary_exponent(x)
    if exponent is None:
        exponent = max(int(mpmath.floor(mpmath.log(abs(x), 2))), p.min_exponent)
        # floor(log2) can be off by one at exact powers of two at finite precision: correct it
        if mpmath.ldexp(1, exponent + 1) <= abs(x):
            exponent += 1
    else:
        exponent = max(exponent, p.min_exponent)
    return mpmath.ldexp(1, exponent - p.bits + 1)


def _binary_exponent(x: Any) -> int | None:
    """⌊log₂|x|⌋ of a finite nonzero ``mpf`` read off its representation m·2ᵏ (k plus the
    bits of m, less one) where that is what `ulp`'s ⌊log(|x|, 2)⌋ at the working precision
    p gives: the logarithm, within |log₂ x|·2¹⁻ᵖ, can round up to the next integer only
    for an |x| within that of the next power of two (its top p − 16 bits all ones, for
    |log₂ x| < 2¹¹), and a floor one too low is corrected there; ``None`` otherwise."""
    if not isinstance(x, mpmath.mpf):
        return None
    _, mantissa, shift, bits = x._mpf_
    exponent, margin = shift + bits - 1, mpmath.mp.prec - 16
    near_next = bits > margin and mantissa >> (bits - margin) == 2 ** margin - 1
    if abs(exponent) >= 2 ** 11 or near_next:
        return None
    return exponent


POWERS = ("correctly rounded", "libm", "multiplication")


@dataclass(frozen=True)
class Rounding:
    """A precision model of a framework: how it holds the hyperparameters and computes the
    per-step scalars (bias corrections, step sizes) before they enter the elementwise kernel.

    ``hyper_dtype``: each hyperparameter (γ, β, ε, λ …) enters with one rounding to this
    format (``None``: exact, as Python floats) — an error e = |fl(β) − β| where some uses
    see the rounded value and others the exact one (Keras), or, with ``hyper_held``, the rounded
    value itself, exactly, where the framework holds it so and every use sees it (optax's
    ``inject_hyperparams`` arrays); ``scalar_dtype``: the format of the scalar
    arithmetic; ``power``: the error of one power βᵗ — ``"correctly rounded"`` (½ ULP),
    ``"libm"`` (a ``pow`` within 1 ULP) or ``"multiplication"`` (an integer power by
    repeated multiplication, t − 1 roundings; a non-integer one, 0.96^{tψ}, by the
    library's ``pow``, within 1 ULP). A constant of the rule (Keras's 0.96) enters with its
    rounding to ``scalar_dtype`` (torch.optim's model, `FLOAT64_SCALARS`, takes constants
    as exact). ``source`` cites the code it models.
    """

    name: str
    hyper_dtype: str | None = None
    hyper_held: bool = False
    scalar_dtype: str = "float64"
    power: str = "correctly rounded"
    source: str = ""

    def __post_init__(self):
        if self.power not in POWERS:
            raise ValueError(f"power must be one of {', '.join(POWERS)}, got {self.power!r}")
        precision(self.scalar_dtype)
        if self.hyper_dtype is not None:
            precision(self.hyper_dtype)

    def hyper(self, value: mpmath.mpf) -> Bounded:
        """A hyperparameter as the scalar arithmetic receives it."""
        if self.hyper_dtype is None:
            return _exact(value)
        import numpy as np
        rounded = mpmath.mpf(float(getattr(np, self.hyper_dtype)(float(value))))
        if self.hyper_held:
            return _exact(rounded)
        return Bounded(value, abs(rounded - value), value >= 0)  # exact or rounded: both within

    def scalars(self, env: Mapping[sp.Symbol, Bounded]) -> _Bounds:
        """The evaluator of the per-step scalars under this model."""
        return _Bounds(precision(self.scalar_dtype), env, power=self.power,
                       constants=None if self is FLOAT64_SCALARS else self.scalar_dtype)


class Bounded(NamedTuple):
    """An exact value, the bound on a kernel's error in computing it, whether the kernel's
    computed value is surely non-negative (so that its square root is real), and the part
    ``under`` of the bound that stems from underflow (absolute errors that a later small
    factor cannot be trusted to shrink)."""

    x: mpmath.mpf
    e: mpmath.mpf
    nonneg: bool = False
    under: mpmath.mpf = mpmath.mpf(0)


_ZERO, _ONE = mpmath.mpf(0), mpmath.mpf(1)


def _product(factors: Sequence[mpmath.mpf]) -> mpmath.mpf:
    """``mpmath.fprod`` (mpmath 1.3, ``ctx_mp.py``) without its precision bookkeeping: the
    product from 1, each partial product rounded at the working precision, in order.

    A multiplication by 1 changes nothing where the other factor has at most the working
    precision's bits (it is then not rounded): neither 1·a₁ for such a first factor, nor a
    factor 1 of a partial product, so the factors ``max(1, a)`` of the bounds are written
    as the factors above 1."""
    if not factors:
        return _ONE
    first = factors[0]
    product = first if _rounded_already(first) else _ONE * first
    for factor in factors[1:]:
        product = product * factor
    return product


def _rounded_already(x: mpmath.mpf) -> bool:
    """Whether ``x`` has at most the working precision's bits (0, ±∞ and NaN included), so
    that 1·x and x + 0 are x itself."""
    return isinstance(x, mpmath.mpf) and x._mpf_[3] <= mpmath.mp.prec


def _plus(a: mpmath.mpf, b: mpmath.mpf) -> mpmath.mpf:
    """a + b, where a term 0 changes nothing: the other term, if it has at most the working
    precision's bits (`_rounded_already`), is the sum itself."""
    if not b and _rounded_already(a):
        return a
    if not a and _rounded_already(b):
        return b
    return a + b


def _times(n: int, x: mpmath.mpf) -> mpmath.mpf:
    """n·x, where x is a result of the working precision's arithmetic (1·x is x itself)."""
    return x if n == 1 else n * x


def _exact(x: mpmath.mpf) -> Bounded:
    return Bounded(x, _ZERO, x >= 0)


def _rounded(x: mpmath.mpf, e: mpmath.mpf, p: Precision) -> Bounded:
    """An input the kernel holds as a rounding of ``x`` within ``e``: same sign as x, and
    at most η of the error from underflow."""
    if e < 0 or not mpmath.isfinite(e):
        raise ValueError(f"a state error bound must be finite and >= 0, got {e}")
    return Bounded(x, e, x >= 0, min(e, p.eta))


def _unbounded(x: mpmath.mpf) -> Bounded:
    return Bounded(x, mpmath.inf, False, mpmath.inf)


def _function_of(x: mpmath.mpf, e: mpmath.mpf, nonneg: bool, eta: mpmath.mpf) -> Bounded:
    """The result of √, 1/· or a power: no kernel moves a factor inside such a function, so
    only its own rounding's underflow is left that a small factor cannot shrink."""
    return Bounded(x, e, nonneg, min(eta, e))


class _Bounds:
    """Evaluates `Bounded` values of expression trees under one rounding model."""

    def __init__(self, p: Precision, env: Mapping[sp.Symbol, Bounded],
                 scalar: _Bounds | None = None, cast: Callable[[Bounded], Bounded] | None = None,
                 power: str = "correctly rounded", constants: str | None = None):
        """``scalar``, when given, evaluates the sub-expressions whose symbols are all its own
        (per-step values, in float64); ``cast`` then rounds them into this evaluator's type;
        ``power`` is the error model of aᵇ with a variable exponent (`Rounding`);
        ``constants``, the format a numeric constant of the rule is held in (``None``: exact)."""
        self.u, self.eta, self.env, self.power = p.u, p.eta, env, power
        self.constants = constants
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
            return self.number(expr)
        return self.apply(_operation(expr), self)

    def number(self, expr: sp.Number) -> Bounded:
        """A numeric constant of the rule, as the framework holds it (``constants``)."""
        x = mpmath.mpf(sp.Rational(expr).p) / sp.Rational(expr).q
        if self.constants is None:
            return _exact(x)
        import numpy as np  # the constant as the framework holds it (0.96 in float32)
        return Bounded(x, abs(mpmath.mpf(float(getattr(np, self.constants)(float(x)))) - x),
                       x >= 0)

    def apply(self, op: _Operation, get: Callable[[Any], Bounded]) -> Bounded:
        """The `Bounded` value of one operation node, its operands read by ``get`` (``self``
        on expressions; a `Tape`'s slots on their numbers). Operands are read lazily: a
        Piecewise evaluates only the branch whose condition holds."""
        kind, data, operands, expr = op
        if kind is _ADD:
            return self._add([get(a) for a in operands])
        if kind is _MUL:
            return self._mul([get(a) for a in operands], sign=data)
        if kind is _VARIABLE_POWER:  # βᵗ, 0.96^(tψ): one call of pow, within u of the exact
            return self._variable_power(get(operands[0]), get(operands[1]))
        if kind is _POWER:
            if data is None:
                raise NotImplementedError(f"no rounding model for the power {expr}")
            return self._rational_power(get(operands[0]), data)
        if kind is _ABS:
            a = get(operands[0])
            return Bounded(abs(a.x), a.e, True, a.under)
        if kind is _MAX:
            parts = [get(a) for a in operands]
            return Bounded(nan_max(*(p.x for p in parts)), max(p.e for p in parts),
                           any(p.nonneg for p in parts), max(p.under for p in parts))
        if kind is _HEAVISIDE:  # ∂max(a, b)/∂a = H(a − b), H(0) = 1/2
            a = get(operands[0])
            x = mpmath.mpf(1) if a.x > 0 else mpmath.mpf(0) if a.x < 0 else mpmath.mpf(0.5)
            # a kernel that may order the operands otherwise takes the other branch: no claim
            return _unbounded(x) if a.e and abs(a.x) <= a.e else _exact(x)
        if kind is _PIECEWISE:
            for value, condition, symbols in data:
                known = {s: sp.Float(get(operands[i]).x, 30) for s, i in symbols}
                if bool(condition.xreplace(known)):
                    return get(operands[value])
        raise NotImplementedError(f"no rounding model for {type(expr).__name__}: {expr}")

    def _add(self, parts: list[Bounded]) -> Bounded:
        x = mpmath.fsum(p.x for p in parts)
        if any(p.e == mpmath.inf for p in parts):
            return _unbounded(x)
        roundings = len(parts) - 1
        # the final rounding, plus one per partial sum or difference (≤ Σ|aᵢ| each)
        e = mpmath.fsum(p.e for p in parts) + self.round(x)
        e += _times(roundings, self.round(mpmath.fsum(abs(p.x) for p in parts)))
        under = mpmath.fsum(p.under for p in parts) + (roundings + 1) * self.eta
        return Bounded(x, e, all(p.nonneg for p in parts) or x - e >= 0, under)

    def _mul(self, parts: list[Bounded], sign: int = 1) -> Bounded:
        if not parts:
            return _exact(mpmath.mpf(sign))
        x = _product([p.x for p in parts])
        x = -x if sign < 0 else x  # (±1)·x: exact
        if any(p.e == mpmath.inf for p in parts):
            return _unbounded(x)
        reach = [_plus(abs(q.x), q.e) for q in parts]  # |aⱼ| + eⱼ
        e, under = _ZERO, _ZERO
        for i, part in enumerate(parts):
            if part.e:
                others = reach[:i] + reach[i + 1:]
                grown = part.under * _product([o for o in others if o > 1])  # Π max(1, ·)
                under = _plus(under, grown)
                e = _plus(e, (part.e - part.under) * _product(others) + grown)
        roundings = len(parts) - 1
        amplify = _product([o for o in reach if o > 1])
        e = _plus(e, _times(roundings, self.u * abs(x) + self.eta * amplify))
        under = _plus(under, _times(roundings, self.eta) * amplify)
        return Bounded(x, e, (sign > 0 and all(p.nonneg for p in parts)) or x - e >= 0, under)

    def _variable_power(self, a: Bounded, b: Bounded) -> Bounded:
        x = mpmath.power(a.x, b.x)
        # first order: d(aᵇ) = aᵇ·(b·da/a + ln(a)·db)
        spread = (abs(b.x) * a.e / abs(a.x) if a.e else 0) + (abs(mpmath.log(a.x)) * b.e if b.e else 0)
        return _function_of(x, abs(x) * spread + self._power_error(x, b), a.nonneg, self.eta)

    def _rational_power(self, a: Bounded, plan: tuple) -> Bounded:
        """aʳ for a constant rational r, as `_power_plan` spells it."""
        kind, n = plan
        if kind == "integer":
            power = self._mul([a] * n)
            return power._replace(nonneg=power.nonneg or n % 2 == 0)
        if kind == "root":
            return self._sqrt(a)
        if kind == "roots":  # a^(n/2) = (√a)ⁿ
            return self._mul([self._sqrt(a)] * n)
        return self._reciprocal(a if n is None else self._rational_power(a, n))

    def _power_error(self, x: mpmath.mpf, exponent: Bounded) -> mpmath.mpf:
        """The error of one evaluation of aᵇ from its computed operands (`Rounding.power`)."""
        if self.power == "correctly rounded":
            return self.round(x)
        n = exponent.x
        if self.power == "libm" or exponent.e or n != int(n) or n < 1:
            return 2 * self.u * abs(x) + self.eta  # a non-integer power: the library's pow
        return ((1 + self.u) ** (int(n) - 1) - 1) * abs(x) + (int(n) - 1) * self.eta

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


_ADD, _MUL, _VARIABLE_POWER, _POWER, _ABS, _MAX, _HEAVISIDE, _PIECEWISE = (
    "add", "mul", "variable power", "power", "abs", "max", "heaviside", "piecewise")


class _Operation(NamedTuple):
    """The operation at the root of an expression: its kind (``None``: no rounding model),
    its constant data, its operands (expressions, or a `Tape`'s slot numbers), and the
    expression itself (for messages)."""

    kind: str | None
    data: Any
    operands: tuple
    expr: sp.Expr


@lru_cache(maxsize=None)
def _operation(expr: sp.Expr) -> _Operation:
    """What `_Bounds.apply` does at the root of ``expr`` (a sum, product, power, |·|, max,
    Heaviside step or Piecewise), read off the tree once."""
    if isinstance(expr, sp.Add):
        return _Operation(_ADD, None, expr.args, expr)
    if isinstance(expr, sp.Mul):  # a factor ±1 is exact: a sign
        factors = tuple(a for a in expr.args if a not in (sp.S.One, sp.S.NegativeOne))
        return _Operation(_MUL, -1 if sp.S.NegativeOne in expr.args else 1, factors, expr)
    if isinstance(expr, sp.Pow):
        base, exponent = expr.args
        if exponent.free_symbols:
            return _Operation(_VARIABLE_POWER, None, (base, exponent), expr)
        return _Operation(_POWER, _power_plan(exponent), (base,), expr)
    if isinstance(expr, sp.Abs):
        return _Operation(_ABS, None, expr.args[:1], expr)
    if isinstance(expr, sp.Max):
        return _Operation(_MAX, None, expr.args, expr)
    if isinstance(expr, sp.Heaviside):
        return _Operation(_HEAVISIDE, None, expr.args[:1], expr)
    if isinstance(expr, sp.Piecewise):  # operands: the branches' values, then the symbols
        values = [value for value, _ in expr.args]  # of their conditions
        operands, branches = list(values), []
        for i, (_, condition) in enumerate(expr.args):
            symbols = []
            for s in condition.free_symbols:
                symbols.append((s, len(operands)))
                operands.append(s)
            branches.append((i, condition, tuple(symbols)))
        return _Operation(_PIECEWISE, tuple(branches), tuple(operands), expr)
    return _Operation(None, None, (), expr)


def _power_plan(exponent: sp.Expr) -> tuple | None:
    """How `_Bounds` evaluates aʳ for a constant r (`_Bounds._rational_power`):
    ``("integer", n)`` the product of n copies of a; ``("root", None)`` √a; ``("roots", n)``
    the product of n copies of √a (r = n/2); ``("reciprocal", plan)`` one over a^(−r) (plan
    ``None``: r = −1); ``None`` where there is no rounding model."""
    if exponent.is_Integer and exponent > 0:
        return ("integer", int(exponent))
    if exponent == sp.S.Half:
        return ("root", None)
    if exponent.is_Rational and exponent.q == 2 and exponent > 0:
        return ("roots", int(exponent.p))
    if exponent.is_negative:
        if exponent == -1:
            return ("reciprocal", None)
        positive = _power_plan(-exponent)
        return None if positive is None else ("reciprocal", positive)
    return None


_SYMBOL, _SCALAR, _NUMBER, _APPLY = "symbol", "scalar", "number", "apply"


class Tape:
    """Expressions compiled once for a `_Bounds` evaluation at many elements.

    `_Bounds` walks the expression trees at each element, hashing every node into its memo
    and dispatching on its type; the audit evaluates the same trees at every element of
    every tensor, step, configuration and hypothesis. A tape numbers the distinct nodes of
    ``exprs`` once (children before parents; a repeated sub-expression once, as the memo
    evaluates it once) and keeps per node what `_Bounds` does with it: read the
    environment (a symbol), evaluate a per-step sub-expression with the scalar evaluator
    and cast it (all its symbols in ``scalar``: the keys of the evaluators' ``scalar``
    environment), convert a constant, or apply an `_Operation` to the values of its
    operand slots. Calling the tape with a `_Bounds` runs that evaluator's own arithmetic
    (`_Bounds.apply`) on the slots, lazily as `_Bounds` does, so every value and bound is
    the one `_Bounds` gives for the same expressions (``tests/test_tape.py``).
    """

    def __init__(self, exprs: Mapping[Hashable, sp.Expr],
                 scalar: frozenset[sp.Symbol] | None = None):
        self.exprs = dict(exprs)
        self.nodes: list[tuple[str, Any]] = []
        slots: dict[sp.Expr, int] = {}

        def slot(expr: sp.Expr) -> int:
            if expr not in slots:
                if scalar is not None and not expr.is_Number and expr.free_symbols <= scalar:
                    node = (_SCALAR, expr)
                elif expr.is_Symbol:
                    node = (_SYMBOL, expr)
                elif expr.is_Number:
                    node = (_NUMBER, expr)
                else:
                    op = _operation(expr)
                    node = (_APPLY, op._replace(operands=tuple(slot(a) for a in op.operands)))
                slots[expr] = len(self.nodes)
                self.nodes.append(node)
            return slots[expr]

        self.outputs = {name: slot(expr) for name, expr in self.exprs.items()}

    def __call__(self, bounds: _Bounds) -> dict[Hashable, Bounded]:
        """The `Bounded` value of each expression under ``bounds`` (its environment, its
        scalar evaluator and cast, its rounding model)."""
        nodes, values = self.nodes, [None] * len(self.nodes)

        def get(i: int) -> Bounded:
            value = values[i]
            if value is None:
                kind, data = nodes[i]
                if kind is _APPLY:
                    value = bounds.apply(data, get)
                elif kind is _SYMBOL:
                    value = bounds.env[data]
                elif kind is _SCALAR:
                    value = bounds.cast(bounds.scalar(data))
                else:
                    value = bounds.number(data)
                values[i] = value
            return value

        return {name: get(i) for name, i in self.outputs.items()}


def _cast(value: Bounded, p: Precision) -> Bounded:
    """A float64 scalar entering an elementwise kernel, rounded to the tensor's dtype."""
    return Bounded(value.x, value.e + p.u * (abs(value.x) + value.e) + p.eta, value.nonneg,
                   value.under + p.eta)


def _finite(value: Bounded, p: Precision) -> Bounded:
    """No claim where the exact value (or its bound) leaves the dtype's finite range."""
    if not mpmath.isfinite(value.x) or abs(value.x) + value.e > p.max:
        return _unbounded(value.x)
    return value


def _tangent(symbol: sp.Symbol) -> sp.Symbol:
    """The symbol of the derivative of ``symbol`` (an input or output of a step)."""
    return sp.Symbol(f"d_{symbol.name}", real=True)


@lru_cache(maxsize=None)
def tangent_forms(program: Program, zeros: frozenset[sp.Symbol], wrt: sp.Symbol | None
                  ) -> dict[str, sp.Expr]:
    """Forward-mode derivatives of one step, by ``sympy.diff`` of its closed forms.

    For each output o (``param`` and every state key) of the step's closed forms
    o(θₜ₋₁, sₜ₋₁, gₜ, t, h) (the terms of the coefficients in ``zeros`` absent), the chain
    rule gives its derivative along the run, keyed ``d_<output>``:

        ȯ = ∂o/∂θₜ₋₁ · θ̇ₜ₋₁ + Σₛ ∂o/∂sₜ₋₁ · ṡₜ₋₁ + ∂o/∂h

    with θ̇ₜ₋₁, ṡₜ₋₁ the previous step's derivatives (symbols ``d_<input>``) and h = ``wrt``
    the hyperparameter differentiated by (None for θ₀: no direct term). Gradients gₜ are
    inputs, not functions of θ (torch's ``p.grad`` is not on the graph). ∂max(a, b)/∂a is a
    Heaviside step with H(0) = 1/2, as torch's ``maximum`` backward splits a tie.
    """
    absent = {z: sp.S.Zero for z in zeros}
    inputs = program.inputs
    forms = {}
    for name, expr in program.closed_form.items():
        expr = expr.xreplace(absent)
        dot = sp.Add(*(sp.diff(expr, inputs[x]) * _tangent(inputs[x]) for x in inputs
                       if x != "grad" and inputs[x] in expr.free_symbols))
        forms[f"d_{name}"] = dot + (sp.diff(expr, wrt) if wrt is not None else 0)
    return forms


def _tangent_states(program: Program, wrt: sp.Symbol | None,
                    values: Mapping[sp.Symbol, Any]) -> list[State]:
    """The derivatives as extra states ``d_param``, ``d_<key>``, starting from θ̇₀ (1 for θ₀,
    else 0) and ṡ₀ = ∂s₀/∂h with the hyperparameters at ``values``."""
    states = [State("d_param", _tangent(theta_prev), _tangent(program.outputs["param"]),
                    sp.S.One if wrt is None else sp.S.Zero, "derivative of param")]
    for s in program.states:
        start = sp.diff(s.init, wrt).xreplace(values) if wrt is not None else sp.S.Zero
        states.append(State(f"d_{s.key}", _tangent(s.prev), _tangent(s.new), start,
                            f"derivative of {s.key}", s.per_step))
    return states


def _derivative_symbol(resolved, key: str) -> sp.Symbol | None:
    """The hyperparameter symbol ``key`` names (None for ``"param"``, θ₀)."""
    if key == "param":
        return None
    for h in resolved.compiled.program.hypers:
        if h.key == key:
            if isinstance(resolved.schedule[h.symbol], list):
                raise ValueError(f"derivative by {key}: a schedule has one value per step, "
                                 "give a constant")
            if h.symbol in resolved.zeros:
                raise ValueError(f"derivative by {key} at 0: the term is absent there "
                                 "(torch skips it), give a positive value")
            return h.symbol
    keys = ", ".join(h.key for h in resolved.compiled.program.hypers)
    raise ValueError(f"derivative must be 'param' or a hyperparameter of rule "
                     f"{resolved.spec.name!r} ({keys}), got {key!r}")


def bounded_run(rule: Spec | str, hyper: Mapping[str, Any] | None, params: Sequence[Any],
                grads: Sequence[Sequence[Any]], dtype: Any, *, dps: int = 40,
                state: Mapping[str, Any] | None = None,
                derivative: str | None = None,
                rounding: Rounding | None = None,
                state_errors: Mapping[str, Sequence[Any]] | None = None) -> list[dict[str, Any]]:
    """Like `run`, with a derived error bound for a kernel in ``dtype``.

    Returns one dict per step, ``{key: [(exact, bound), ...]}`` for ``param`` and every
    state key (a per-step state gives one pair), and ``"step"``. Starting from
    exact inputs, the first step's bounds are the one-step oracle's; later steps carry the
    earlier errors forward (the trajectory bound). A bound is ``inf`` where the exact value
    or its bound leaves the dtype's finite range, or where the computed value may not be a
    real number; the exact value is NaN where the rule itself takes the root of a negative
    number (from a kernel's own, already rounded, state). ``rounding`` is the framework's
    precision model (default `FLOAT64_SCALARS`: torch.optim's Python-float scalars).

    ``derivative`` (a hyperparameter key such as ``lr``, ``betas[0]``, ``weight_decay``, or
    ``"param"`` for the starting parameter θ₀) adds ``"d_param"`` (and ``"d_<key>"`` for
    each state) to the records: per element the exact derivative ∂θₜ/∂``derivative``
    through the t steps so far (∂θₜ[i]/∂θ₀[i] for ``"param"``: the rules are elementwise),
    from `tangent_forms`, with a bound on a kernel's error in computing it by the
    chain rule in ``dtype`` (autograd through the kernel's own steps, or forward mode). The
    bound is the same running error analysis applied to the derivative's expressions, whose
    operands are the kernel's trajectory (each value with its bound from this run) and the
    previous step's derivatives (with theirs). Every sum and product is charged on the
    absolute values of its operands, so to first order in u the bound holds for any order
    of evaluating the chain rule's sums of products: reverse mode, which multiplies the
    steps' Jacobians from the last one back, included.

    ``state_errors`` (``{key: [bound, ...]}``, one per element of ``state[key]``) says the
    kernel read not ``state[key]`` itself but a rounding of it within that bound — a
    low-bit state dequantized in ``dtype`` (`optproof.reference.quantized`): the error is
    carried from the first step on, and, being a rounding's, keeps the exact value's sign.
    """
    rounding = rounding or FLOAT64_SCALARS
    p = precision(dtype)
    with mpmath.workdps(dps):
        resolved = resolve(rule, hyper)
        program = resolved.compiled.program
        absent = {z: sp.S.Zero for z in resolved.zeros}  # a term with a zero factor is absent
        closed = {name: expr.xreplace(absent) for name, expr in program.closed_form.items()}
        step, start = start_state(resolved, len(params), state)
        all_states, kept = list(program.states), kept_state_keys(resolved)
        if derivative is not None:
            if state:
                raise ValueError("derivative needs the run from the rule's initial state "
                                 "(the derivatives of a given state are not known)")
            wrt = _derivative_symbol(resolved, derivative)
            extra = _tangent_states(program, wrt, resolved.values(0))
            forms = tangent_forms(program, resolved.zeros, wrt)
            all_states += extra
            closed.update(forms)
            kept |= set(forms)
            for s in extra:
                init = mpmath.mpf(sp.Float(s.init, mpmath.mp.dps))
                start[s.prev] = init if s.per_step else [init] * len(params)
        theta = [_exact(to_mpf(v, "params")) for v in params]
        states = {s.prev: (_exact(start[s.prev]) if s.per_step else [_exact(x) for x in start[s.prev]])
                  for s in all_states}
        for key, errors in (state_errors or {}).items():
            states_of = {s.key: s for s in program.states if not s.per_step}
            if key not in states_of or key not in (state or {}):
                raise ValueError(f"state_errors[{key!r}] needs a per-element state[{key!r}]; "
                                 f"state keys: {', '.join(sorted(states_of))}")
            column = states[states_of[key].prev]
            if len(errors) != len(column):
                raise ValueError(f"state_errors[{key!r}] has {len(errors)} elements, "
                                 f"state {len(column)}")
            states[states_of[key].prev] = [_rounded(b.x, to_mpf(e, f"state_errors[{key!r}]"), p)
                                           for b, e in zip(column, errors)]
        out = []
        for k, grad in enumerate(grads):
            scalars = {t: _exact(mpmath.mpf(step + k + 1)),
                       **{sym: rounding.hyper(v) for sym, v in resolved.values(k).items()},
                       **{s.prev: states[s.prev] for s in all_states if s.per_step}}
            scalar_eval = rounding.scalars(scalars)
            for s in all_states:
                if s.per_step:
                    states[s.prev] = _finite(scalar_eval(closed[s.key]), p)
            elementwise = {"param": closed["param"],
                           **{s.key: closed[s.key] for s in all_states if not s.per_step}}
            columns: dict[str, list[Bounded]] = {name: [] for name in elementwise}
            for i, theta_i in enumerate(theta):
                env = {theta_prev: theta_i, g: _exact(to_mpf(grad[i], f"grads[{k}]")),
                       **{s.prev: states[s.prev][i] for s in all_states if not s.per_step}}
                evaluate = _Bounds(p, env, scalar_eval, lambda v: _cast(v, p))
                for name, expr in elementwise.items():
                    columns[name].append(_finite(evaluate(expr), p))
            theta = columns["param"]
            for s in all_states:
                if not s.per_step:
                    states[s.prev] = columns[s.key]
            record = {"param": [(b.x, b.e) for b in theta], "step": step + k + 1}
            for s in all_states:
                if s.key in kept:
                    value = states[s.prev]
                    record[s.key] = (value.x, value.e) if s.per_step else [(b.x, b.e) for b in value]
            out.append(record)
        return out


#: torch.optim's model (and the default): hyperparameters are Python floats, the per-step
#: scalars Python float64 arithmetic (``torch/optim/adam.py`` @ 2.13, ``_single_tensor_adam``:
#: ``bias_correction1 = 1 - beta1 ** step`` on Python floats)
FLOAT64_SCALARS = Rounding("float64 scalars", source="torch/optim/adam.py @ 2.13")
