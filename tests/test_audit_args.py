"""``optproof audit --arg KEY=VALUE``: constructor arguments reach the target and, where they
have a meaning in the rules, the reference; and the defaults run (the target with its own
defaults, measured). torch.optim only: the other frameworks are in test_audit_frameworks."""

from __future__ import annotations

import pytest

from optproof.audit import audit
from optproof.audit.auditor import AuditUsageError
from optproof.cli import main


@pytest.mark.parametrize("argv,message", [
    (["--arg", "eps_root"], "expected KEY=VALUE"),
    (["--arg", "1x=2"], "expected KEY=VALUE"),
    (["--arg", "eps=fast"], "eps: the value must be a Python literal"),
    (["--arg", "foo=1"], "--arg foo: torch.optim.Adam takes no keyword 'foo'"),
])
def test_bad_argument_is_a_one_line_usage_error(argv, message, capsys):
    assert main(["audit", "torch.optim.Adam", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_torch_keyword_reaches_target_and_reference():
    """amsgrad=True on every configuration: the target runs AMSGrad and so does the
    reference (conformant), which it would not be against plain Adam's reference."""
    result = audit("torch.optim.Adam", steps=2, extra={"amsgrad": True})
    assert all(o.config.hyper.get("amsgrad") for o in result.observations)
    assert result.verdict == "conformant", result.diagnosis
    assert result.framework == "torch (amsgrad=True)"


def test_the_defaults_run_measures_torch_adamw_weight_decay():
    result = audit("torch.optim.AdamW", steps=2)
    measured = result.defaults.measured
    assert measured["weight_decay"] == pytest.approx(1e-2, rel=1e-3)
    assert measured["lr"] == pytest.approx(1e-3, rel=1e-3)
    assert result.defaults.ascends is None


def test_the_defaults_run_sees_a_changed_default():
    """The measurement is of the run, not of a table: a subclass with another default λ is
    measured at that value."""
    import torch

    class AdamW3(torch.optim.AdamW):
        def __init__(self, params, lr=1e-3, weight_decay=3e-2, **kw):
            super().__init__(params, lr=lr, weight_decay=weight_decay, **kw)

    from optproof.audit.target import Target
    from optproof.audit.adapters.torch import TorchAdapter
    target = Target("AdamW3", AdamW3, "AdamW3", TorchAdapter(AdamW3, "AdamW3"))
    result = audit(target, steps=1)
    assert result.defaults.measured["weight_decay"] == pytest.approx(3e-2, rel=1e-3)


def test_an_optimizer_that_ascends_with_its_defaults_is_a_deviation():
    import torch

    class Ascending(torch.optim.SGD):  # maximize by default
        def __init__(self, params, lr=1e-3, maximize=True, **kw):
            super().__init__(params, lr=lr, maximize=maximize, **kw)

    from optproof.audit.target import Target
    from optproof.audit.adapters.torch import TorchAdapter
    target = Target("Ascending", Ascending, "Ascending", TorchAdapter(Ascending, "Ascending"))
    result = audit(target, rule="sgd", steps=1)
    assert result.verdict == "deviation"
    assert any("ascends the objective" in f for f in result.findings)


def test_unknown_keyword_names_the_argument():
    with pytest.raises(AuditUsageError, match="--arg foo: torch.optim.SGD takes no keyword"):
        audit("torch.optim.SGD", extra={"foo": 1})
