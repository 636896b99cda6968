"""The compiled evaluator (`Tape`) against the tree evaluator (`_Bounds` on the expressions):
the same exact value, bound, sign claim and underflow part, bit for bit, on the audit's own
plans (every hypothesis, configuration, step, tensor and element of real audits) and on
expressions with every operation the rounding model knows; and `ulp`, read off the
representation, against the definition of a binade."""

from __future__ import annotations

import random
import re

import mpmath
import pytest
import sympy as sp

from optproof.audit import audit
from optproof.reference.bounds import (PRECISIONS, Bounded, Tape, _Bounds, _cast, _exact, ulp,
                                       _rounded)


def _bits(value) -> object:
    """A number's exact representation (NaN and ∞ included), or the value itself."""
    return value._mpf_ if isinstance(value, mpmath.mpf) else value


def _same(ours: Bounded, theirs: Bounded) -> bool:
    return len(ours) == len(theirs) and all(_bits(a) == _bits(b) and type(a) is type(b)
                                            for a, b in zip(ours, theirs))


class _Checked:
    """Wraps `Tape.__call__`: every call also evaluates the tree and records a mismatch."""

    def __init__(self, call):
        self.call, self.calls, self.mismatches = call, 0, []

    def __call__(self, tape: Tape, bounds: _Bounds):
        ours = self.call(tape, bounds)
        tree = _Bounds.__new__(_Bounds)
        tree.__dict__.update(bounds.__dict__, memo={})  # the same evaluator, an empty memo
        theirs = {name: tree(expr) for name, expr in tape.exprs.items()}
        self.calls += 1
        assert ours.keys() == theirs.keys()
        self.mismatches += [(name, ours[name], theirs[name]) for name in ours
                            if not _same(ours[name], theirs[name])]
        return ours


@pytest.mark.parametrize("target,dtype,extra", [
    ("torch.optim.Adam", "float64", {"amsgrad": True}),
    ("torch.optim.NAdam", "float32", {}),
    ("torch.optim.RMSprop", "float16", {}),
    ("torch.optim.SGD", "bfloat16", {}),
])
def test_tape_equals_tree_on_audit_plans(monkeypatch, target, dtype, extra):
    checked = _Checked(Tape.__call__)
    monkeypatch.setattr(Tape, "__call__", lambda tape, bounds: checked(tape, bounds))
    audit(target, dtype=dtype, steps=2, extra=extra, timeout=60)
    assert checked.calls > 1000  # every element of every configuration went through it
    assert not checked.mismatches, checked.mismatches[:3]


a, b, c, t = sp.symbols("a b c t", real=True)
EXPRESSIONS = {
    "sum": a + b * c - 3 * a * b,
    "powers": a ** 2 * b ** 3 + sp.sqrt(sp.Abs(c)) + (a ** 2 + 1) ** sp.Rational(3, 2),
    "inverses": 1 / (a ** 2 + 1) + (b ** 2 + 2) ** sp.Rational(-3, 2) + (c ** 2 + 1) ** -2,
    "variable power": sp.Rational(9, 10) ** t * a + (b ** 2 + 1) ** (c / 4),
    "max": sp.Max(sp.Abs(a), b * c) - sp.Max(a, b, c),
    "heaviside": sp.Heaviside(a - b) * c + sp.Heaviside(b) * a,
    "piecewise": sp.Piecewise((a * b, a > b), (c + 1, True)) + sp.Piecewise((0, t < 2), (b, True)),
    "no model": 1 + a ** sp.Rational(1, 3),
}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("seed", range(6))
def test_tape_equals_tree_on_every_operation(dtype, seed):
    """Random operands (exact, rounded, near underflow, zero, ties of max and Heaviside),
    with a scalar evaluator for t as the audit has: each value and bound bit for bit, and
    the same error where there is no rounding model."""
    rng = random.Random(seed)
    p = PRECISIONS[dtype]
    with mpmath.workdps(30):
        def operand():
            x = mpmath.mpf(rng.choice([0.0, 1e-40, -0.5, 2.0, rng.uniform(-3, 3)]))
            if rng.random() < 0.4:
                return _exact(x)
            return _rounded(x, abs(x) * p.u * rng.randint(0, 4), p)
        shared = operand()
        env = {a: shared, b: shared if rng.random() < 0.3 else operand(), c: operand()}
        scalar = _Bounds(PRECISIONS["float64"], {t: _exact(mpmath.mpf(rng.randint(1, 4)))})

        def evaluator():
            return _Bounds(p, env, scalar, lambda v: _cast(v, p))
        for name, expr in EXPRESSIONS.items():
            try:
                theirs = evaluator()(expr)
            except NotImplementedError as error:
                with pytest.raises(NotImplementedError, match=re.escape(str(error))):
                    Tape({name: expr}, frozenset(scalar.env))(evaluator())
                continue
            ours = Tape({name: expr}, frozenset(scalar.env))(evaluator())[name]
            assert _same(ours, theirs), (name, ours, theirs)
        # all at once: shared sub-expressions take one slot, each output still the tree's
        modelled = {n: e for n, e in EXPRESSIONS.items() if n != "no model"}
        ours = Tape(modelled, frozenset(scalar.env))(evaluator())
        tree = evaluator()
        assert all(_same(ours[n], tree(e)) for n, e in modelled.items())


@pytest.mark.parametrize("dps", [15, 30])
def test_ulp_is_the_spacing_of_the_binade(dps):
    """`ulp` reads ⌊log₂|x|⌋ off the representation: 2ᴱ ≤ |x| < 2ᴱ⁺¹ decided exactly,
    at powers of two, just above them, and well inside a binade, in every format's normal
    and subnormal range."""
    rng = random.Random(dps)
    with mpmath.workdps(dps):
        for _ in range(2000):
            k = rng.randint(-1080, 1030)
            one = mpmath.ldexp(1, k)
            for x in (one, one * (1 + mpmath.eps), one * (1 + mpmath.mpf(rng.random())),
                      -one * mpmath.mpf(1.5), one * (2 - mpmath.ldexp(1, -30))):
                assert mpmath.ldexp(1, k) <= abs(x) < mpmath.ldexp(1, k + 1)
                for p in PRECISIONS.values():
                    want = mpmath.ldexp(1, max(k, p.min_exponent) - p.bits + 1)
                    assert ulp(x, p) == want, (x, p.name)
