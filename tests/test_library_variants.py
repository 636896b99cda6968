"""The variants real libraries use, tied to their sources: for each, the reference compiled
from the spec is compared with an independent transcription of the library's update
(mpmath, the library's own order of operations), written from its source file:

* optax 0.2.8 ``optax/_src/transform.py``: ``scale_by_adam`` (``eps_root``, ``nesterov``),
  ``scale_by_amsgrad`` (``bias_correction_mu``/``bias_correction_nu``), ``scale_by_rms``
  (``initial_scale``); ``alias.py``: ``adamw`` (decay added to the update, then × −γ).
* timm 1.0.31 ``timm/optim/nadamw.py`` ``_single_tensor_nadamw``.
"""

from __future__ import annotations

import mpmath
import pytest

from optproof.reference import run

mpmath.mp.dps = 50
PARAMS = [0.7, -1.3, 0.25]
GRADS = [[0.5, -0.2, 1e-3], [0.1, 0.3, -2e-3], [0.05, -0.1, 4e-4], [0.02, 0.05, 1e-4]]
B1, B2, EPS, LR, WD = 0.8, 0.95, 1e-3, 0.05, 0.1
M = mpmath.mpf


def _close(reference, expected):
    for got, want in zip(reference, expected):
        assert abs(got - want) <= M(10) ** -40 * max(1, abs(want)), (got, want)


def _optax_adam(nesterov=False, eps_root=0.0, decay=0.0):
    theta, m, v, out = [M(p) for p in PARAMS], [M(0)] * 3, [M(0)] * 3, []
    for t, grad in enumerate(GRADS, start=1):
        g = [M(x) for x in grad]
        m = [B1 * mi + (1 - M(B1)) * gi for mi, gi in zip(m, g)]
        v = [B2 * vi + (1 - M(B2)) * gi ** 2 for vi, gi in zip(v, g)]
        if nesterov:  # b1·bias_correction(mu, t + 1) + (1 − b1)·bias_correction(g, t)
            mhat = [B1 * mi / (1 - M(B1) ** (t + 1)) + (1 - M(B1)) * gi / (1 - M(B1) ** t)
                    for mi, gi in zip(m, g)]
        else:
            mhat = [mi / (1 - M(B1) ** t) for mi in m]
        vhat = [vi / (1 - M(B2) ** t) for vi in v]
        u = [a / (mpmath.sqrt(b + eps_root) + EPS) for a, b in zip(mhat, vhat)]
        u = [ui + decay * th for ui, th in zip(u, theta)]  # add_decayed_weights
        theta = [th - LR * ui for th, ui in zip(theta, u)]  # scale_by_learning_rate
        out.append(theta)
    return out


@pytest.mark.parametrize("name,hyper,kwargs", [
    ("adam:eps-root", {"eps_root": 1e-2}, {"eps_root": 1e-2}),
    ("adamw:eps-root", {"eps_root": 1e-2, "weight_decay": WD}, {"eps_root": 1e-2, "decay": WD}),
    ("nadam:optax", {"eps_root": 1e-3}, {"nesterov": True, "eps_root": 1e-3}),
    ("nadamw:optax", {"weight_decay": WD}, {"nesterov": True, "decay": WD}),
])
def test_optax_adam_family_reference_matches_optax_update(name, hyper, kwargs):
    steps = run(name, {"lr": LR, "betas": (B1, B2), "eps": EPS, **hyper}, PARAMS, GRADS)
    for got, want in zip(steps, _optax_adam(**kwargs)):
        _close(got["param"], want)


@pytest.mark.parametrize("mu,nu", [(True, True), (True, False), (False, False)])
def test_optax_amsgrad_takes_the_max_of_the_corrected_second_moment(mu, nu):
    theta, m, v, vmax = [M(p) for p in PARAMS], [M(0)] * 3, [M(0)] * 3, [M(0)] * 3
    steps = run("adam:amsgrad-optax", {"lr": LR, "betas": (B1, B2), "eps": EPS,
                                       "eps_root": 1e-4, "bias_correction_mu": mu,
                                       "bias_correction_nu": nu}, PARAMS, GRADS)
    for t, (grad, step) in enumerate(zip(GRADS, steps), start=1):
        g = [M(x) for x in grad]
        m = [B1 * mi + (1 - M(B1)) * gi for mi, gi in zip(m, g)]
        v = [B2 * vi + (1 - M(B2)) * gi ** 2 for vi, gi in zip(v, g)]
        mhat = [mi / (1 - M(B1) ** t) for mi in m] if mu else m
        veff = [vi / (1 - M(B2) ** t) for vi in v] if nu else v
        vmax = [max(a, b) for a, b in zip(vmax, veff)]
        theta = [th - LR * a / (mpmath.sqrt(b + M(1e-4)) + EPS)
                 for th, a, b in zip(theta, mhat, vmax)]
        _close(step["param"], theta)


def test_optax_amsgrad_differs_from_torch_amsgrad():
    """torch keeps max(raw v) and corrects it; optax corrects first: with shrinking
    gradients the two maxima differ (the reason optax targets get their own variant)."""
    shrinking = [[1.0, 1.0, 1.0], [0.1, 0.1, 0.1], [0.01, 0.01, 0.01]]
    hyper = {"lr": LR, "betas": (B1, B2), "eps": EPS}
    optax = run("adam:amsgrad-optax", hyper, PARAMS, shrinking)
    torch = run("adam", {**hyper, "amsgrad": True}, PARAMS, shrinking)
    assert abs(optax[-1]["param"][0] - torch[-1]["param"][0]) > 1e-6


def test_timm_nadamw_reference_matches_timm_update():
    theta, m, v = [M(p) for p in PARAMS], [M(0)] * 3, [M(0)] * 3
    steps = run("nadamw:timm", {"lr": LR, "betas": (B1, B2), "eps": EPS, "weight_decay": WD},
                PARAMS, GRADS)
    for t, (grad, step) in enumerate(zip(GRADS, steps), start=1):
        g = [M(x) for x in grad]
        theta = [th * (1 - LR * M(WD)) for th in theta]  # param.mul_(1 - wd_scale * wd)
        m = [mi + (gi - mi) * (1 - M(B1)) for mi, gi in zip(m, g)]  # exp_avg.lerp_
        v = [B2 * vi + (1 - M(B2)) * gi ** 2 for vi, gi in zip(v, g)]
        ahead = [mi + (gi - mi) * (1 - M(B1)) for mi, gi in zip(m, g)]  # exp_avg.lerp(grad)
        step_size = LR / (1 - M(B1) ** t)
        denom = [mpmath.sqrt(vi) / mpmath.sqrt(1 - M(B2) ** t) + EPS for vi in v]
        theta = [th - step_size * a / d for th, a, d in zip(theta, ahead, denom)]
        _close(step["param"], theta)


def test_timm_and_optax_nadamw_differ_from_the_first_step():
    hyper = {"lr": LR, "betas": (B1, B2), "eps": EPS, "weight_decay": WD}
    timm = run("nadamw:timm", hyper, PARAMS, GRADS[:1])[0]["param"]
    optax = run("nadamw:optax", hyper, PARAMS, GRADS[:1])[0]["param"]
    assert abs(timm[0] - optax[0]) > 1e-4


@pytest.mark.parametrize("name,lr_inside", [("rmsprop:keras-centered", True),
                                            ("rmsprop:eps-inside", False)])
def test_rmsprop_state_starts_at_its_initial_scale(name, lr_inside):
    """optax ``scale_by_rms(initial_scale=v₀)``; timm RMSpropTF ``square_avg = ones_like(p)``."""
    alpha, mu, v0 = 0.9, 0.5, 1.0
    steps = run(name, {"lr": LR, "alpha": alpha, "eps": EPS, "momentum": mu,
                       "initial_scale": v0, "centered": False}, PARAMS, GRADS)
    theta, v, b = [M(p) for p in PARAMS], [M(v0)] * 3, [M(0)] * 3
    for grad, step in zip(GRADS, steps):
        g = [M(x) for x in grad]
        v = [vi + (gi ** 2 - vi) * (1 - M(alpha)) for vi, gi in zip(v, g)]
        u = [gi / mpmath.sqrt(vi + EPS) for gi, vi in zip(g, v)]
        if lr_inside:  # TensorFlow: buf = μ·buf + γ·g/avg; θ −= buf
            b = [mu * bi + LR * ui for bi, ui in zip(b, u)]
            theta = [th - bi for th, bi in zip(theta, b)]
        else:  # buf = μ·buf + g/avg; θ −= γ·buf
            b = [mu * bi + ui for bi, ui in zip(b, u)]
            theta = [th - LR * bi for th, bi in zip(theta, b)]
        _close(step["param"], theta)
