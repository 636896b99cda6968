"""The audit's claims are backed by experiments (issue 15): a convention is reported only when
a configuration that exercised it ran and separated the alternatives, the explanation of a
target is never a hypothesis that failed a configuration it ran, and a framework's own
precision model (float32 hyperparameters and scalars) is not a deviation."""

from __future__ import annotations

import importlib.util

import json
import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on the backend optproof has

from optproof.audit import audit  # noqa: E402
from optproof.audit.adapters.torch import TorchAdapter  # noqa: E402
from optproof.audit.serialize import to_dict  # noqa: E402
from optproof.audit.target import Target  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

STEPS = 3


def _target(cls, expected_rule=None) -> Target:
    name = cls.__name__
    return Target(f"tests.{name}", cls, name, TorchAdapter(cls, name,
                                                          expected_rule=expected_rule))


def _rows(result):
    return {e.axis: e for e in result.conventions}


def _never_a_failing_explanation(result):
    """The best match, when named, reproduces every configuration it was compared on."""
    best = result.hypothesis(result.best)
    if best is not None and result.best != result.expected:
        assert best.matches, (result.best, best.failed)


class AdamWithoutDecay(torch.optim.Adam):
    """torch's Adam behind a constructor that takes no ``weight_decay``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad,
                         maximize=maximize)


class SGDWithoutMomentum(torch.optim.SGD):
    """torch's SGD behind a constructor that takes no ``momentum``."""

    def __init__(self, params, lr=1e-3, weight_decay=0.0, maximize=False):
        super().__init__(params, lr=lr, weight_decay=weight_decay, maximize=maximize)


def test_weight_decay_is_not_measured_when_every_decay_configuration_was_skipped():
    result = audit(_target(AdamWithoutDecay), steps=STEPS)
    assert result.verdict == "conformant", result.diagnosis
    decay = _rows(result)["weight decay"]
    assert not decay.measured and decay.shown() == "not measured"
    assert "every weight-decay (λ ≠ 0) configuration was skipped" in decay.evidence
    assert "weight_decay" in decay.evidence
    # the axes the runs did exercise and separate are still reported
    assert _rows(result)["epsilon"].measured
    data = to_dict(result)
    entry = next(c for c in data["conventions"] if c["axis"] == "weight decay")
    assert entry == {"axis": "weight decay", "measured": False, "detected": "not measured",
                     "evidence": decay.evidence}
    json.dumps(data)


def test_the_conventions_matrix_row_says_not_measured():
    from optproof.docgen.conventions import _row
    result = audit(_target(AdamWithoutDecay), steps=1)
    row = _row("tests.AdamWithoutDecay", result)
    assert row["conventions"]["weight decay"] == "not measured"


def test_momentum_is_not_measured_when_no_momentum_configuration_ran(capsys):
    result = audit(_target(SGDWithoutMomentum), steps=STEPS)
    assert result.verdict == "conformant", result.diagnosis
    momentum = _rows(result)["momentum"]
    assert not momentum.measured
    assert "every momentum (μ ≠ 0) configuration was skipped" in momentum.evidence
    assert "'momentum'" in momentum.evidence
    from optproof.audit.report import render
    from rich.console import Console
    render(result, Console(width=200, force_terminal=False))
    out = capsys.readouterr().out
    assert "not measured" in out and "every momentum (μ ≠ 0) configuration was skipped" in out


def test_a_measured_axis_names_the_exercising_configuration_that_separated_it():
    result = audit("torch.optim.SGD", steps=STEPS)
    rows = _rows(result)
    assert rows["momentum"].measured
    # the momentum forms agree without momentum: 'plain' (μ = 0) cannot be the evidence
    assert "'plain'" not in rows["momentum"].evidence
    assert "sgd:sutskever rejected by 'momentum-schedule'" in rows["momentum"].evidence
    assert rows["weight decay"].measured and "'decay-schedule'" in rows["weight decay"].evidence


def test_a_faulty_optimizer_is_explained_only_on_the_axes_its_runs_exercised():
    """AdamWWithL2 behaves as ``adam``; its AMSGrad form is measured (the AMSGrad
    configurations ran), and the diagnosis names only measured differences."""
    result = audit("faulty_optimizers.AdamWWithL2", rule="adamw", steps=STEPS)
    assert result.best == "adam"
    rows = _rows(result)
    assert rows["weight decay"].measured and rows["weight decay"].detected.startswith("L2")
    assert "weight decay: L2" in result.diagnosis[0]


class RMSpropFromOne(torch.optim.Optimizer):
    """A faithful reproduction of timm 1.0.31's ``RMSpropTF`` (``timm/optim/rmsprop_tf.py``,
    ``_single_tensor_rmsprop_tf``) on its default path: the squared average starts at
    **one** (``torch.ones_like(p)``), v ← v + (1 − α)(g² − v), ε inside the root
    d = √(v + ε) (centered: √(v − ḡ² + ε)), L2 decay, and with momentum the lr inside the
    buffer b ← μb + γ·g/d, θ ← θ − b; without, θ ← θ − γ·g/d."""

    def __init__(self, params, lr=1e-2, alpha=0.9, eps=1e-10, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            for p in group["params"]:
                grad, state = p.grad, self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)
                    state["momentum_buffer"] = torch.zeros_like(p)
                    state["grad_avg"] = torch.zeros_like(p)
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                v = state["square_avg"]
                v.add_(grad.pow(2) - v, alpha=1 - alpha)
                if group["centered"]:
                    gbar = state["grad_avg"]
                    gbar.add_(grad - gbar, alpha=1 - alpha)
                    avg = v.addcmul(gbar, gbar, value=-1).add(eps).sqrt_()
                else:
                    avg = v.add(eps).sqrt_()
                if group["momentum"] > 0:
                    buf = state["momentum_buffer"]
                    buf.mul_(group["momentum"]).addcdiv_(grad, avg, value=lr)
                    p.add_(-buf)
                else:
                    p.addcdiv_(grad, avg, value=-lr)


def _assert_no_failing_fault_named(result):
    _never_a_failing_explanation(result)
    text = "\n".join(result.diagnosis)
    assert "closest:" not in text
    for e in result.conventions:
        if e.measured:
            # a measured axis comes from a hypothesis that reproduced its runs: never the
            # shared-state probe that failed the one configuration it ran
            assert "shared by all parameters" not in e.detected, e


def test_the_closest_explanation_is_never_a_failing_probe():
    result = audit(_target(RMSpropFromOne, "rmsprop:keras-centered"), steps=STEPS)
    assert result.verdict == "deviation"
    _assert_no_failing_fault_named(result)
    isolation = next(e for e in result.experiments if e.name == "parameter independence")
    assert isolation.passed
    if result.best is None:  # no registered variant starts v at one
        assert "no registered variant or known fault reproduces the target" in \
            result.diagnosis[0]
        assert to_dict(result)["best_match"]["name"] is None


@pytest.mark.parametrize("name,rule", [("RMSpropTF", None), ("NAdamW", "nadam")])
def test_timm_closest_explanation_is_never_a_failing_probe(name, rule):
    if importlib.util.find_spec("timm") is None:  # found without importing torchvision
        pytest.skip("timm is not installed")
    _assert_no_failing_fault_named(audit(f"timm.optim.{name}", rule=rule, steps=STEPS))


@pytest.mark.parametrize("name", ["Adam", "AdamW", "Nadam"])
def test_keras_float32_is_conformant_under_its_precision_model(name):
    pytest.importorskip("keras")
    result = audit(f"keras.optimizers.{name}", steps=STEPS)
    assert result.verdict == "conformant", result.diagnosis
    assert result.rounding is not None and "float32" in result.rounding.name
    assert to_dict(result)["precision_model"]["scalar_dtype"] == "float32"


@pytest.mark.parametrize("name", ["SGD", "Nadam"])
def test_keras_float64_runs_at_floatx_float64(name):
    """At floatx float64 the learning rate is a float64 variable and Nadam's
    ``ops.power(0.96, t)`` converts 0.96 to float64: no float32 left to explain."""
    pytest.importorskip("keras")
    result = audit(f"keras.optimizers.{name}", dtype="float64", steps=STEPS)
    assert result.verdict == "conformant", result.diagnosis


def test_keras_adamw_weight_decay_is_not_measured():
    pytest.importorskip("keras")
    decay = _rows(audit("keras.optimizers.AdamW", steps=STEPS))["weight decay"]
    assert not decay.measured and "Keras has no L2 weight decay" in decay.evidence


def test_optax_adamw_float32_is_conformant_under_its_precision_model():
    pytest.importorskip("optax")
    result = audit("optax.adamw", steps=5)
    assert result.verdict == "conformant", result.diagnosis
    assert result.rounding.power == "multiplication"


def _keras_adam_float32(theta, grads, lr, b1, b2, eps):
    """Keras 3.15.1's ``Adam.update_step`` (``keras/src/optimizers/adam.py``) on the torch
    backend, operation by operation in float32: ``lr`` and β cast to float32,
    ``beta_power = ops.power(β, t)``, ``alpha = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)``,
    ``m += (g − m)·(1 − β₁)`` with the Python float ``1 - beta_1``,
    θ −= m·α/(√v + ε)."""
    f = torch.float32
    p = torch.tensor(theta, dtype=f)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        g = torch.tensor(g, dtype=f)
        lr_ = torch.tensor(lr, dtype=f)
        step = torch.tensor(float(t), dtype=f)
        b1p = torch.pow(torch.tensor(b1, dtype=f), step)
        b2p = torch.pow(torch.tensor(b2, dtype=f), step)
        alpha = lr_ * torch.sqrt(1 - b2p) / (1 - b1p)
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        p -= (m * alpha) / (torch.sqrt(v) + eps)
        out.append(p.tolist())
    return out


def _keras_adam_ratios(seed: int, rounding) -> list[float]:
    """|Keras − exact|/bound of every element of every step, under ``rounding``."""
    import numpy as np

    from optproof.reference import bounded_run

    rng = np.random.default_rng(seed)
    theta = np.float32(rng.uniform(-1, 1, 6)).tolist()
    grads = [np.float32(rng.standard_normal(6) + 0.3).tolist() for _ in range(4)]
    hyper = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}
    got = _keras_adam_float32(theta, grads, hyper["lr"], *hyper["betas"], hyper["eps"])
    records = bounded_run("adam:eps-hat", hyper, theta, grads, "float32", rounding=rounding)
    return [float(abs(y - x) / e) for record, values in zip(records, got)
            for (x, e), y in zip(record["param"], values)]


@pytest.mark.parametrize("seed", range(6))
def test_keras_operation_order_lies_within_its_derived_bound(seed):
    """The Keras precision model is derived, not widened: Keras's Adam, recomputed op by op
    in float32, lies within ``bounded_run`` under `KerasAdapter.rounding` at every step."""
    from optproof.audit.adapters.keras import KerasAdapter
    assert max(_keras_adam_ratios(seed, KerasAdapter(None, "Adam").rounding("float32"))) <= 1


def test_keras_operation_order_is_outside_the_float64_scalar_bound():
    """The model is needed: torch.optim's (float64 scalars from exact hyperparameters)
    does not bound Keras's float32 bias corrections."""
    assert max(r for seed in range(6) for r in _keras_adam_ratios(seed, None)) > 1
