"""Audits of other frameworks' optimizers (optional extras; each test skips cleanly when its
library is not installed)."""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on the backend optproof has

from optproof.audit import audit
from optproof.audit.auditor import AuditUsageError


@pytest.mark.parametrize("name,variant", [("adamw", "adamw:eps-root"), ("sgd", "sgd:optax-trace"),
                                          ("rmsprop", "rmsprop:keras-centered"),
                                          ("nadam", "nadam:optax"), ("nadamw", "nadamw:optax"),
                                          ("amsgrad", "adam:amsgrad-optax")])
def test_optax_follows_its_documented_variant(name, variant):
    pytest.importorskip("optax")
    result = audit(f"optax.{name}", steps=3)
    assert result.framework.startswith("optax")
    assert result.verdict == "conformant" and result.best == variant, result.diagnosis


def test_optax_amsgrad_is_judged_against_optax_not_torch():
    pytest.importorskip("optax")
    result = audit("optax.amsgrad", steps=3)
    assert result.expected == "adam:amsgrad-optax"
    assert not result.variants["adam"].matches  # torch's AMSGrad (max of the raw v) differs
    assert any(o.skipped and "AMSGrad only" in o.skipped for o in result.observations)


@pytest.mark.parametrize("target,args,expected", [
    ("optax.adam", {"eps_root": 1e-2}, "adam:eps-root"),
    ("optax.rmsprop", {"initial_scale": 1.0}, "rmsprop:keras-centered"),
    ("optax.amsgrad", {"bias_correction_mu": False, "bias_correction_nu": False},
     "adam:amsgrad-optax"),
    ("optax.adam", {"nesterov": True}, "nadam:optax"),
])
def test_optax_constructor_arguments_reach_the_reference(target, args, expected):
    pytest.importorskip("optax")
    result = audit(target, steps=3, extra=args)
    assert result.expected == expected
    assert result.verdict == "conformant", result.diagnosis


def test_an_argument_the_reference_ignored_would_be_caught():
    """The reference computes with --arg values: the same target with v₀ = 1 does not
    match the variant resolved at v₀ = 0 (so the conformant verdict above is informative)."""
    pytest.importorskip("optax")
    from optproof.audit.target import load_target
    target = load_target("optax.rmsprop", extra={"initial_scale": 1.0})
    target.adapter.reference_hyper = lambda: {}  # what the auditor did before --arg
    result = audit(target, steps=3)
    assert result.verdict == "deviation"


def test_optax_adadelta_with_its_default_learning_rate_ascends():
    pytest.importorskip("optax")
    result = audit("optax.adadelta", steps=2)
    assert result.verdict == "deviation"
    assert result.defaults.ascends and "ascends the objective" in result.defaults.ascends
    assert "1.0032" in result.defaults.ascends


@pytest.mark.parametrize("target,rule,key,value", [
    ("torch.optim.AdamW", None, "weight_decay", 1e-2),
    ("optax.adamw", None, "weight_decay", 1e-4),
])
def test_the_defaults_run_measures_the_default_weight_decay(target, rule, key, value):
    pytest.importorskip(target.split(".")[0])
    result = audit(target, rule=rule, steps=2)
    assert result.defaults.measured[key] == pytest.approx(value, rel=1e-3)


def test_keras_adamw_default_weight_decay_is_measured():
    pytest.importorskip("keras")
    result = audit("keras.optimizers.AdamW", steps=2)
    assert result.defaults.measured["weight_decay"] == pytest.approx(4e-3, rel=1e-2)


def test_bad_constructor_argument_is_a_usage_error():
    pytest.importorskip("optax")
    with pytest.raises(AuditUsageError, match="--arg foo: optax.adam takes no keyword 'foo'"):
        audit("optax.adam", extra={"foo": 1})
    with pytest.raises(AuditUsageError, match="--arg foo: torch.optim.Adam takes no keyword"):
        audit("torch.optim.Adam", extra={"foo": 1})


@pytest.mark.parametrize("name,variant", [("SGD", "sgd:sutskever"),
                                          ("RMSprop", "rmsprop:keras-centered"),
                                          ("Adagrad", "adagrad:keras")])
def test_keras_follows_its_documented_variant_in_float32(name, variant):
    pytest.importorskip("keras")
    result = audit(f"keras.optimizers.{name}", steps=3)
    assert result.framework.startswith("keras")
    assert result.verdict == "conformant" and result.best == variant, result.diagnosis
    assert any(o.skipped and "no L2 weight decay" in o.skipped for o in result.observations)


def test_pytorch_optimizer_sgdw():
    pytest.importorskip("pytorch_optimizer")
    result = audit("pytorch_optimizer.SGDW", steps=3)
    assert result.verdict == "conformant" and result.best == "sgdw"


def test_pytorch_optimizer_sgdw_without_decoupling_is_expected_to_follow_sgd():
    pytest.importorskip("pytorch_optimizer")
    result = audit("pytorch_optimizer.SGDW", steps=3, extra={"weight_decouple": False})
    assert result.expected == "sgd"
    assert result.verdict == "conformant" and result.best == "sgd"


@pytest.mark.parametrize("name,args,variant", [
    ("SGDW", {}, "sgdw"),
    ("RMSpropTF", {}, "rmsprop:keras-centered"),  # v₀ = 1
    ("RMSpropTF", {"lr_in_momentum": False}, "rmsprop:eps-inside"),
    ("NAdamW", {}, "nadamw:timm"),
])
def test_timm_is_audited_without_its_vision_imports(name, args, variant):
    if importlib.util.find_spec("timm") is None:  # found without importing torchvision
        pytest.skip("timm is not installed")
    result = audit(f"timm.optim.{name}", steps=3, extra=args)
    assert result.framework.startswith("timm")
    assert result.verdict == "conformant" and result.best == variant, result.diagnosis


def test_unaudited_framework_object_is_a_usage_error():
    pytest.importorskip("optax")
    with pytest.raises(AuditUsageError, match="not an audited transformation"):
        audit("optax.lion")
