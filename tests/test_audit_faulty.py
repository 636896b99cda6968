"""The auditor against a library of faulty optimizers (``faulty_optimizers.py``): every fault
is flagged and named; every faithful rewrite passes (a few seeds here; the false-alarm
rate over 50 seeds is measured by ``measure_false_alarms.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import faulty_optimizers as F  # noqa: E402

from optproof.audit import audit  # noqa: E402
from optproof.audit.target import load_target  # noqa: E402


@pytest.mark.parametrize("name", sorted(F.FAULTS))
def test_fault_is_flagged_and_named(name):
    rule, dtype, words = F.FAULTS[name]
    result = audit(f"faulty_optimizers.{name}", rule=rule, dtype=dtype, steps=3,
                   timeout=1 if name == "AdamHangs" else 20)
    assert result.expected == rule
    assert result.verdict == "deviation" and result.exit_code == 1
    best = result.hypothesis(result.best)
    assert best is None or best.matches or result.best == rule  # never a failing explanation
    text = "\n".join(result.diagnosis)
    for word in words:
        assert word in text, f"{name}: {word!r} not in the diagnosis:\n{text}"


def test_at_least_twelve_distinct_faults():
    assert len({tuple(w) for _, _, w in F.FAULTS.values()}) >= 12


@pytest.mark.parametrize("name", sorted(F.FAITHFUL))
@pytest.mark.parametrize("seed", [0, 1])
def test_faithful_rewrite_passes(name, seed):
    result = audit(f"faulty_optimizers.{name}", rule=F.FAITHFUL[name], seed=seed, steps=3)
    assert result.verdict == "conformant", result.diagnosis
    assert result.best == F.FAITHFUL[name]


@pytest.mark.parametrize("path,extra", [
    ("torch.optim.Adam", {"foreach": True}),
    ("optproof.torch_impl.AdamW", {}),
    ("optproof.torch_impl.SGD", {"foreach": True}),
])
def test_other_code_paths_pass(path, extra):
    result = audit(load_target(path, extra=extra), steps=3)
    assert result.verdict == "conformant", result.diagnosis


def test_the_tutorial_adam_is_caught_only_with_several_tensors():
    """On one tensor the tutorial Adam is right; the audit steps several of one shape."""
    result = audit("faulty_optimizers.TutorialAdam", rule="adam", steps=3)
    same = result.probes["adam~shared-state+step-per-param"].configs
    assert list(same) == ["same-shapes"]
    isolation = next(e for e in result.experiments if e.name == "parameter independence")
    assert not isolation.passed
