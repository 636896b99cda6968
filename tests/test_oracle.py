"""The one-step oracle and the trajectory check for every optimizer of the lineage.

For optproof.torch_impl's kernels (for-loop, foreach, fused) and torch.optim's (for-loop,
foreach; fused for SGD, Adagrad, Adam and AdamW) in float64, float32, bfloat16 and float16:
every output element (the parameter and every state tensor the rule has: ``exp_avg``,
``exp_avg_sq``, ``max_exp_avg_sq``, ``momentum_buffer``, ``sum``, ``square_avg``,
``acc_delta``, ``grad_avg``; NAdam's per-tensor ``mu_product``) must lie within the derived
bound of ``optproof.reference.bounded_run``. A torch.optim kernel outside the bound on a
problem that exposes one of its documented deviations (``oracle.torch_mechanisms``) is
reported as xfail with the mechanism and the measured size; any other violation fails.
"""

from __future__ import annotations

import pytest

import oracle

NAMES = ["Adam", "AdamW", "SGD", "Adagrad", "Adadelta", "RMSprop", "NAdam"]


@pytest.mark.parametrize("case", oracle.cases(NAMES, "one_step"))
def test_one_step(case):
    """Step t of the kernel from its own state after step t − 1 is within the bound."""
    oracle.run_case(case, "one_step")


@pytest.mark.parametrize("case", oracle.cases(NAMES, "trajectory"))
def test_trajectory(case):
    """5–8 steps from one start stay within the k-step bound, and finite where it is."""
    oracle.run_case(case, "trajectory")
