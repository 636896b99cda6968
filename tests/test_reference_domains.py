"""The reference accepts every hyperparameter torch.optim accepts, at the edges of the domain.

``Hyper.contains`` must decide membership for the float itself (a float is an exact dyadic
rational): β = 1 − 1e-8 is a valid decay (torch accepts it; ``strategies.decays`` draws it),
and must not be judged equal to 1.
"""

from __future__ import annotations

import math

import pytest
import sympy
from hypothesis import strategies as st
from hypothesis import given

from optproof.testing import strategies
from optproof.derivations.symbols import HYPERS
from optproof.reference import run

NEAR_ONE = [1 - 1e-8, 1 - 2**-30, 0.99999998855613936, 1 - 2**-53]


@pytest.mark.parametrize("value", NEAR_ONE)
def test_decay_near_one_is_in_domain(value):
    assert value < 1
    assert HYPERS["betas[0]"].contains(value), (
        f"β = {value!r} < 1 judged outside [0, 1): Hyper.contains rounds the float "
        "(sympy.nsimplify) instead of reading it exactly (sympy.Rational)")


@given(beta=strategies.decays())
def test_reference_accepts_every_drawn_decay(beta):
    run("adam", {"betas": (beta, beta)}, [1.0], [[0.5]])


@given(eps=strategies.epsilons(), lr=strategies.lrs(), wd=strategies.weight_decays())
def test_reference_accepts_positive_edges(eps, lr, wd):
    run("adam", {"lr": lr, "eps": eps, "weight_decay": wd}, [1.0], [[0.5]])


@pytest.mark.parametrize("value", [-1e-300, 1.0, 1 + 2**-52])
def test_decay_outside_domain_is_rejected(value):
    assert not HYPERS["betas[0]"].contains(value)


@given(value=st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 1.0, 1 - 2**-53, 1 + 2**-52,
                                                     5e-324, -5e-324, float("inf")])))
def test_contains_reads_the_float_as_sympy_does(value):
    """The exact rational comparison agrees with SymPy's ``Interval.contains`` on every
    domain (the Nesterov forms' ones included) and at the ends; NaN and ±∞, which
    ``sympy.Rational`` reads as 0, are in no domain."""
    from optproof.derivations.specs.sgd import MU_NESTEROV, TAU_NESTEROV
    for h in (*HYPERS.values(), MU_NESTEROV, TAU_NESTEROV):
        expected = math.isfinite(value) and bool(h.domain.contains(sympy.Rational(value)))
        assert h.contains(value) == expected, (h.key, value)


@pytest.mark.parametrize("key,value", [("eps", float("nan")), ("lr", float("inf")),
                                       ("weight_decay", float("-inf")), ("betas", (float("nan"), 0.9))])
def test_reference_rejects_non_finite_hyperparameters(key, value):
    """NaN and ±∞ are usage errors naming the hyperparameter (they were read as 0 and run)."""
    with pytest.raises(ValueError, match=key):
        run("adam", {key: value}, [1.0], [[0.5]])
