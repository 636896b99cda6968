"""Audits of other frameworks' optimizers (optional extras; each test skips cleanly when its
library is not installed)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on the backend optproof has

from optproof.audit import audit
from optproof.audit.auditor import AuditUsageError


@pytest.mark.parametrize("name,variant", [("adamw", "adamw"), ("sgd", "sgd:optax-trace"),
                                          ("rmsprop", "rmsprop:keras-centered"),
                                          ("nadam", "nadam:optax")])
def test_optax_follows_its_documented_variant(name, variant):
    pytest.importorskip("optax")
    result = audit(f"optax.{name}", steps=3)
    assert result.framework.startswith("optax")
    assert result.verdict == "conformant" and result.best == variant, result.diagnosis


def test_optax_amsgrad_takes_the_max_of_the_corrected_second_moment():
    pytest.importorskip("optax")
    result = audit("optax.amsgrad", steps=3)
    assert result.verdict == "deviation"  # from torch's AMSGrad, the expected variant
    assert result.best == "adam~amsgrad-max-of-vhat"
    assert any(o.skipped and "AMSGrad only" in o.skipped for o in result.observations)


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


def test_timm_sgdw():
    try:
        import timm.optim  # noqa: F401
    except Exception as error:  # timm imports torchvision, which must match torch
        pytest.skip(f"timm.optim does not import here: {error}")
    result = audit("timm.optim.SGDW", steps=3)
    assert result.verdict == "conformant" and result.best == "sgdw"


def test_unaudited_framework_object_is_a_usage_error():
    pytest.importorskip("optax")
    with pytest.raises(AuditUsageError, match="not an audited transformation"):
        audit("optax.lion")
