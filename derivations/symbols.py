"""Symbols of the update rules, each carrying its domain.

Hyperparameters are declared once here with the SymPy assumptions their domains imply
(``lr > 0`` is ``positive=True``, ``0 ≤ β < 1`` is ``nonnegative=True`` plus the interval
recorded in `Hyper`), the torch.optim keyword they stand for, and a one-line meaning.
Per-element quantities (θ, g and the state) are plain real symbols; the step counter ``t`` is a
positive integer.

Names follow SymPy's conventions so that the printers render them without a lookup table:
``theta_t-1`` prints as θₜ₋₁ / ``\\theta_{t-1}``, ``mhat_t`` as m̂ₜ / ``\\hat{m}_{t}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import sympy as sp

__all__ = [
    "Hyper", "HYPERS", "hyper", "t", "theta_prev", "theta", "g", "state_symbols",
]


@dataclass(frozen=True)
class Hyper:
    """A hyperparameter: its symbol, its domain and the torch.optim keyword it stands for.

    ``keyword`` is torch's constructor argument; ``index`` selects an element of a tuple
    argument (``betas[0]`` is β₁). ``skipped_at_zero`` marks a coefficient whose term the
    frameworks skip when it is 0 (torch's ``if weight_decay != 0``, ``if momentum != 0``):
    the term is then absent, rather than 0·θ, which is NaN for an infinite θ.
    """

    symbol: sp.Symbol
    domain: sp.Set
    keyword: str
    index: int | None
    meaning: str
    skipped_at_zero: bool = False

    @property
    def key(self) -> str:
        """The name used in ``hyper`` dicts: ``lr``, or ``betas[0]`` for a tuple element."""
        return self.keyword if self.index is None else f"{self.keyword}[{self.index}]"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the domain, read exactly (a finite float is a dyadic
        rational). NaN and ±∞ are in no domain (every domain is a set of real numbers;
        ``sp.Rational`` would read them as 0). An interval with rational or infinite ends is
        decided on `Fraction`s, as SymPy's ``Interval.contains`` decides it on
        ``sp.Rational(value)`` (the reference checks every hyperparameter of every run, and
        the defaults fit runs the reference over a thousand times); other domains by SymPy."""
        if not math.isfinite(value):
            return False
        ends = _rational_ends(self.domain)
        if ends is None:
            return bool(self.domain.contains(sp.Rational(value)))
        low, high, left_open, right_open = ends
        x = Fraction(value)
        return ((low is None or (low < x if left_open else low <= x))
                and (high is None or (x < high if right_open else x <= high)))


@lru_cache(maxsize=None)
def _rational_ends(domain: sp.Set) -> tuple | None:
    """``(low, high, left_open, right_open)`` of an interval with rational or infinite ends
    (an infinite end as ``None``), else ``None``."""
    if not isinstance(domain, sp.Interval):
        return None
    ends = []
    for end, infinite in ((domain.start, sp.S.NegativeInfinity), (domain.end, sp.S.Infinity)):
        if end == infinite:
            ends.append(None)
        elif end.is_Rational:
            ends.append(Fraction(int(end.p), int(end.q)))
        else:
            return None
    return (*ends, bool(domain.left_open), bool(domain.right_open))


def _h(name, keyword, domain, meaning, index=None, skipped_at_zero=False, **assumptions) -> Hyper:
    return Hyper(sp.Symbol(name, real=True, **assumptions), domain, keyword, index, meaning,
                 skipped_at_zero)


_unit = sp.Interval.Ropen(0, 1)
_nonneg = sp.Interval(0, sp.oo)
_pos = sp.Interval.open(0, sp.oo)

HYPERS: dict[str, Hyper] = {
    h.key: h
    for h in (
        _h("gamma", "lr", _pos, "learning rate (the value the optimizer sees this step)", positive=True),
        _h("beta_1", "betas", _unit, "decay of the first-moment EMA", index=0, nonnegative=True),
        _h("beta_2", "betas", _unit, "decay of the second-moment EMA", index=1, nonnegative=True),
        _h("epsilon", "eps", _nonneg, "term added for numerical stability", nonnegative=True),
        _h("lambda", "weight_decay", _nonneg, "weight-decay coefficient", skipped_at_zero=True,
           nonnegative=True),
        _h("eta_t", "schedule_multiplier", _pos,
           "schedule multiplier η_t of Loshchilov & Hutter (lr = η_t·α)", positive=True),
        _h("alpha", "alpha", _unit, "decay of the squared-gradient EMA (RMSprop)", nonnegative=True),
        _h("mu", "momentum", _unit, "momentum factor", skipped_at_zero=True, nonnegative=True),
        _h("tau", "dampening", sp.Interval(0, 1), "dampening of the momentum buffer", nonnegative=True),
        _h("rho", "rho", _unit, "decay of the running averages (Adadelta)", nonnegative=True),
        _h("kappa", "lr_decay", _nonneg, "learning-rate decay (Adagrad)", nonnegative=True),
        _h("s_0", "initial_accumulator_value", _nonneg, "initial value of the accumulator",
           nonnegative=True),
        _h("psi", "momentum_decay", _nonneg, "momentum decay ψ (NAdam schedule)", nonnegative=True),
        _h("epsilon_root", "eps_root", _nonneg, "term added inside the root (optax eps_root)",
           nonnegative=True),
        _h("v_0", "initial_scale", _nonneg, "initial value of the squared-gradient EMA "
           "(optax initial_scale; 1 in TensorFlow 1 and timm RMSpropTF)", nonnegative=True),
    )
}


def hyper(key: str) -> Hyper:
    """The hyperparameter with hyper-dict key ``key`` (``lr``, ``betas[0]``, …)."""
    return HYPERS[key]


t = sp.Symbol("t", integer=True, positive=True)
theta_prev = sp.Symbol("theta_t-1", real=True)
theta = sp.Symbol("theta_t", real=True)
g = sp.Symbol("g_t", real=True)


def state_symbols(letter: str, **assumptions) -> tuple[sp.Symbol, sp.Symbol]:
    """The pair (value before the step, value after it) of a state variable: mₜ₋₁, mₜ."""
    return (sp.Symbol(f"{letter}_t-1", real=True, **assumptions),
            sp.Symbol(f"{letter}_t", real=True, **assumptions))
