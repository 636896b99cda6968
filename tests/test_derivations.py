"""The derivations: what is derived is derived, and every rule's program is well formed."""

import mpmath
import pytest
import sympy as sp

from optproof.derivations import HYPERS, rule, rules
from optproof.derivations.symbols import t
from optproof.derivations.transforms import ema_weight_sum, l2_gradient

BETA = HYPERS["betas[0]"]


def test_bias_correction_is_the_sum_of_the_ema_weights():
    beta = BETA.symbol
    assert sp.simplify(ema_weight_sum(BETA) - (1 - beta**t)) == 0
    # and the sum it was derived from, evaluated term by term at a point of the domain
    for b, steps in ((0.9, 7), (0.999, 3), (0.0, 4)):
        direct = mpmath.fsum((1 - mpmath.mpf(b)) * mpmath.mpf(b) ** (steps - i)
                             for i in range(1, steps + 1))
        derived = ema_weight_sum(BETA).subs({beta: sp.Float(b, 30), t: steps})
        assert abs(direct - mpmath.mpf(str(derived))) < mpmath.mpf(10) ** -25


def test_l2_term_is_the_gradient_of_the_regularised_loss():
    lam, theta, grad = sp.symbols("lambda theta g")
    assert sp.expand(l2_gradient(lam, theta, grad) - (grad + lam * theta)) == 0


def test_wrong_regulariser_would_change_the_derived_term():
    # negative control: the derivation is computed, so a different loss gives a different term
    lam, theta, grad = sp.symbols("lambda theta g")
    assert sp.expand(l2_gradient(lam, theta, grad) - (grad + lam * theta / 2)) != 0


@pytest.mark.parametrize("spec", rules(), ids=lambda s: s.name)
def test_every_rule_is_well_formed(spec):
    assert spec.sources, "every rule cites its sources"
    assert spec.summary and spec.mirrors
    for values in _flag_settings(spec):
        program = spec.program(**values)
        outputs = program.closed_form
        assert set(outputs) == {"param", *(s.key for s in program.states)}
        allowed = {t, *(h.symbol for h in program.hypers), *program.inputs.values()}
        for name, expr in outputs.items():
            assert expr.free_symbols <= allowed, (name, expr.free_symbols - allowed)
        for h in program.hypers:
            assert h.keyword in spec.defaults, f"{h.key} has no default in {spec.name}"


def _flag_settings(spec):
    settings = [{}]
    for flag in spec.flags:
        settings = [dict(s, **{flag: v}) for s in settings for v in (False, True)]
    return settings


def test_unknown_rule_names_the_closest():
    with pytest.raises(ValueError, match="did you mean adamw"):
        rule("adamww")


def test_unknown_flag_is_a_type_error():
    with pytest.raises(TypeError, match="no flag 'nesterov'"):
        rule("adam").program(nesterov=True)


def test_decay_after_the_update_differs_from_adamw_by_gamma_squared_lambda_u():
    """``adamw:decay-after`` (bitsandbytes' CUDA kernels) θ ← (θ − γu)(1 − γλ) against torch's
    θ(1 − γλ) − γu: the difference is exactly γ²λu, u the Adam direction."""
    from optproof.derivations.symbols import theta_prev

    after, before = rule("adamw:decay-after").program(), rule("adamw").program()
    lr, wd = (next(h.symbol for h in before.hypers if h.keyword == k)
              for k in ("lr", "weight_decay"))
    u = (theta_prev - before.closed_form["param"].subs(wd, 0)) / lr  # the undecayed step / γ
    diff = after.closed_form["param"] - before.closed_form["param"]
    assert sp.simplify(diff) != 0
    assert sp.simplify(diff - lr**2 * wd * u) == 0
