"""optproof.testing.assert_conforms: passes conforming optimizers, explains the others."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from optproof.testing import assert_conforms

sys.path.insert(0, str(Path(__file__).parent))
import faulty_optimizers as F  # noqa: E402


def test_torch_adamw_conforms():
    assert_conforms(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1), "adamw",
                    lr_schedule=[0.01, 0.05, 0.02], cases=3, steps=3)


def test_float64_and_momentum():
    assert_conforms(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.5), "sgd",
                    dtype="float64", cases=2, steps=3)


def test_wrong_rule_names_the_variant_it_follows():
    with pytest.raises(AssertionError, match=r"(?s)does not conform to rule 'adamw'.*"
                                             r"behaves as 'adam'"):
        assert_conforms(lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1), "adamw",
                        lr_schedule=[0.01, 0.05], cases=2, steps=2)


def test_a_fault_is_reported_with_its_first_divergence():
    with pytest.raises(AssertionError, match=r"(?s)first divergence: config 'case 0', step 1"):
        assert_conforms(lambda p: F.AdamEpsInside(p, lr=1e-2, eps=1e-3), "adam",
                        grad_scale=1e-3, cases=2, steps=2)


def test_a_class_is_driven_through_the_rules_configurations():
    assert_conforms(torch.optim.AdamW, "adamw", steps=2)
    with pytest.raises(AssertionError, match="behaves as 'adam'"):
        assert_conforms(F.AdamWWithL2, "adamw", steps=2)
