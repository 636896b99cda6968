"""``optproof audit`` on torch.optim's lineage, the report formats, exit codes and errors.

Audits run with 3 steps per configuration (the conventions and faults show at the first or
second step) to keep the suite fast.
"""

from __future__ import annotations

import inspect
import json
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from optproof.audit import audit
from optproof.audit.adapters.torch import TorchAdapter
from optproof.audit.auditor import AuditUsageError
from optproof.audit.target import Target
from optproof.cli import main

sys.path.insert(0, str(Path(__file__).parent))

STEPS = 3


@lru_cache(maxsize=None)
def audited(target: str, dtype: str = "float32", rule: str | None = None):
    return audit(target, dtype=dtype, steps=STEPS, rule=rule, timeout=20)


@pytest.mark.parametrize("name,rule", [("SGD", "sgd"), ("Adagrad", "adagrad"),
                                       ("Adadelta", "adadelta"), ("RMSprop", "rmsprop"),
                                       ("Adam", "adam"), ("AdamW", "adamw"), ("NAdam", "nadam")])
def test_torch_optim_lineage_conforms_in_float32(name, rule):
    result = audited(f"torch.optim.{name}")
    assert result.verdict == "conformant", result.diagnosis
    assert result.expected == result.best == rule
    assert result.exit_code == 0
    assert f"class name {name!r}" in result.inference
    assert result.conventions  # named, with evidence
    assert all(e.passed for e in result.experiments)


def test_torch_adamw_conventions_are_named_with_the_configuration_that_exposed_them():
    result = audited("torch.optim.AdamW")
    rows = {e.axis: (e.detected, e.evidence) for e in result.conventions if e.measured}
    assert rows["weight decay"][0].startswith("decoupled, lr-scaled")
    assert "adam rejected by 'decay-schedule'" in rows["weight decay"][1]
    assert "adamw:paper rejected by 'decay-schedule'" in rows["weight decay"][1]
    assert rows["epsilon"][0].startswith("outside the root")
    assert "AMSGrad" in rows


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_torch_optim_conforms_in_float64(name):
    assert audited(f"torch.optim.{name}", "float64").verdict == "conformant"


def test_torch_nadam_float64_keeps_mu_product_in_float32():
    """A real deviation of torch 2.13 (confirmed by hand): mu_product is a float32 tensor
    for float64 parameters, ~1e-10 relative error in the step."""
    result = audited("torch.optim.NAdam", "float64")
    assert result.verdict == "deviation"
    assert result.best == "nadam~scalars-float32"
    text = "\n".join(result.diagnosis)
    assert "'mu_product' is kept in float32" in text
    first = result.first_divergence
    rel = abs(float(first.exact) - first.target) / abs(float(first.exact))
    assert 1e-12 < rel < 1e-8


def test_torch_nadam_float32_conforms():
    """torch adds NAdam's two terms to θ in two roundings (two ``addcdiv_``), up to ~0.9 ULP
    (confirmed by emulating torch's operation order); the derived bound allows the partial
    sums a kernel may form, so this is conformant."""
    result = audited("torch.optim.NAdam")
    assert result.verdict == "conformant", result.diagnosis
    assert result.expected_result.worst_ratio <= 1



@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_torch_fused_sgd_16bit_is_caught_by_the_vector_loop_configuration(dtype):
    """A real fault of torch 2.13 (tests/test_vector_loops.py has the mechanism): its fused
    CPU SGD never writes θ in the vector loop of 16-bit parameters.  Every configuration
    with short tensors reaches only the scalar tail and passes; 'vector-loop' does not."""
    result = audited("faulty_optimizers.torch_fused_sgd", dtype, rule="sgd")
    assert result.verdict == "deviation"
    first = result.first_divergence
    assert (first.config, first.key, first.tensor) == ("vector-loop", "param", 0)
    expected = result.expected_result
    assert expected.failed == ["vector-loop"]


def test_torch_fused_sgd_float32_conforms():
    result = audited("faulty_optimizers.torch_fused_sgd", rule="sgd")
    assert result.verdict == "conformant", result.diagnosis

def test_rule_given_that_does_not_match_names_the_variant_that_does():
    result = audited("torch.optim.Adam", rule="adamw")
    assert result.verdict == "deviation" and result.best == "adam"
    assert "weight decay: L2 (coupled)" in result.diagnosis[0]
    assert result.first_divergence.config == "decay-schedule"


def test_usage_errors():
    with pytest.raises(AuditUsageError, match="has no attribute 'AdamX'; did you mean Adam"):
        audit("torch.optim.AdamX")
    with pytest.raises(AuditUsageError, match="cannot import"):
        audit("no_such_package.Optimizer")
    with pytest.raises(AuditUsageError, match="unknown rule 'adamx'"):
        audit("torch.optim.Adam", rule="adamx")
    with pytest.raises(AuditUsageError, match="cannot infer the rule"):
        audit("torch.optim.LBFGS")


@pytest.mark.parametrize("argv,code,message", [
    (["audit", "torch.optim.Nope"], 2, "has no attribute 'Nope'"),
    (["audit", "torch.optim.SGD", "--rule", "sgx"], 2, "unknown rule"),
    (["audit", "torch.optim.SGD", "--steps", "0"], 2, "expected a positive integer"),
    (["audit", "torch.optim.SGD", "--dtype", "int8"], 2, "invalid choice"),
    (["audit", "math.sqrt"], 2, "cannot infer the rule"),
    (["vectors", "adamx"], 2, "unknown rule"),
])
def test_cli_usage_errors_exit_2_in_one_line(capsys, argv, code, message):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_json_and_exit_codes(capsys):
    assert main(["audit", "torch.optim.SGD", "--steps", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "conformant" and data["best_match"]["name"] == "sgd"
    assert data["variants"]["sgd"]["matches"] is True
    assert data["variants"]["sgd:sutskever"]["first_divergence"]["config"] == "momentum-schedule"
    assert {c["axis"] for c in data["conventions"]} >= {"weight decay", "momentum"}
    assert main(["audit", "faulty_optimizers.AdamWWithL2", "--rule", "adamw", "--steps", "2",
                 "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["best_match"]["name"] == "adam" and data["exit_code"] == 1


def test_cli_human_report(capsys):
    assert main(["audit", "torch.optim.Adagrad", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    for text in ("verdict: CONFORMANT", "conventions detected", "error per step",
                 "adagrad:keras", "eps-large", "checkpoint round trip"):
        assert text in out


def test_cli_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "adagrad.png"
    assert main(["audit", "torch.optim.Adagrad", "--steps", "2", "--plot", str(out)]) == 0
    assert out.stat().st_size > 10_000


def test_target_errors_are_reported_not_raised():
    for name, words in (("AdamRaises", "raised RuntimeError"), ("AdamNaNLater", "NaN/Inf")):
        result = audit(f"faulty_optimizers.{name}", rule="adam", steps=STEPS, timeout=20)
        assert result.verdict == "deviation" and words in "\n".join(result.diagnosis)


def test_a_hanging_target_times_out():
    result = audit("faulty_optimizers.AdamHangs", rule="adam", steps=STEPS, timeout=1)
    assert result.verdict == "deviation"
    text = "\n".join(result.diagnosis)
    assert "timed out" in text
    skipped = [o for o in result.observations if o.skipped]
    assert skipped and "timed out in an earlier configuration" in skipped[0].skipped


def test_vectors(capsys):
    assert main(["vectors", "adamw", "--steps", "2", "--dps", "25"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rule"] == "adamw" and data["dps"] == 25
    case = next(c for c in data["cases"] if c["name"] == "decay-schedule")
    assert case["hyper"]["lr"] == ["0.05", "0.01"]
    assert len(case["expected"]) == 2 and set(case["expected"][0]) >= {"param", "exp_avg"}
    # the vectors reproduce torch.optim.AdamW to float64 rounding
    import torch
    params = [torch.tensor([float(x) for x in p], dtype=torch.float64, requires_grad=True)
              for p in case["params"]]
    opt = torch.optim.AdamW(params, lr=0.05, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.2)
    for k, step in enumerate(case["expected"]):
        for p, g in zip(params, case["grads"][k]):
            p.grad = torch.tensor([float(x) for x in g], dtype=torch.float64)
        opt.param_groups[0]["lr"] = float(case["hyper"]["lr"][k])
        opt.step()
        for p, want in zip(params, step["param"]):
            assert p.detach().tolist() == pytest.approx([float(w) for w in want], rel=1e-14)


def test_public_names_survive_importing_every_submodule():
    """``optproof.audit``'s public names are its functions and classes, also once all of its
    submodules are imported (a submodule named like a public function would shadow it)."""
    import importlib
    import pkgutil

    import optproof.audit as package
    for module in pkgutil.walk_packages(package.__path__, "optproof.audit."):
        importlib.import_module(module.name)
    from optproof.audit import AuditResult, AuditUsageError, audit, vectors
    assert all(callable(f) and not inspect.ismodule(f)
               for f in (audit, vectors, AuditResult, AuditUsageError))


class NaNAdamW(torch.optim.Optimizer):
    """A class whose name contains ``AdamW`` and which follows no registered rule."""

    def __init__(self, params, lr=1e-3):
        super().__init__(params, {"lr": lr})


@pytest.mark.parametrize("target", ["torch.optim.RAdam", "torch.optim.Adamax",
                                    "torch.optim.SparseAdam", "torch.optim.ASGD", NaNAdamW])
def test_a_name_that_contains_a_rule_name_is_not_inferred_to_follow_it(target):
    if not isinstance(target, str):
        target = Target("test.NaNAdamW", target, target.__name__, TorchAdapter(target, "NaNAdamW"))
    with pytest.raises(AuditUsageError, match="cannot infer the rule .*pass --rule"):
        audit(target, steps=1)


def test_cli_asks_for_rule_where_the_class_is_not_torch_s(capsys):
    assert main(["audit", "torch.optim.RAdam"]) == 2
    err = capsys.readouterr().err
    assert "pass --rule" in err and err.count("\n") == 1


def test_a_subclass_of_a_torch_optimizer_follows_its_base():
    class Mine(torch.optim.Adam):
        pass
    result = audit(Target("test.Mine", Mine, "Mine", TorchAdapter(Mine, "Mine")), steps=1)
    assert result.expected == "adam" and "'Adam'" in result.inference
