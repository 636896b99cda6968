"""The one-step oracle and the trajectory check for the rest of the lineage: SGD, Adagrad, Adadelta, RMSprop, NAdam.

For optproof.torch_impl's kernels (for-loop, foreach; fused once it exists) and torch.optim's
(for-loop, foreach; fused for SGD and Adagrad) in float64, float32, bfloat16 and float16: every output element
(parameter and every state tensor the rule has: ``momentum_buffer``, ``sum``,
``square_avg``, ``acc_delta``, ``grad_avg``, ``exp_avg``, ``exp_avg_sq``; NAdam's per-tensor
``mu_product``) must lie within the derived
bound of ``optproof.reference.bounded_run``. Known deviations of torch.optim are marked
``xfail(strict=True)`` in ``oracle.KNOWN`` with their measured size and cause.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import oracle

NAMES = ["SGD", "Adagrad", "Adadelta", "RMSprop", "NAdam"]


@pytest.mark.parametrize("case", oracle.cases(NAMES, "one_step"))
@settings(max_examples=oracle.oracle_examples())
@given(data=st.data())
def test_one_step(case, data):
    """Step t of the kernel from its own state after step t − 1 is within the bound."""
    oracle.require(*case[:3])
    oracle.check_case(case, data, "one_step")


@pytest.mark.parametrize("case", oracle.cases(NAMES, "trajectory"))
@settings(max_examples=oracle.oracle_examples())
@given(data=st.data())
def test_trajectory(case, data):
    """5–8 steps from one start stay within the k-step bound, and finite where it is."""
    oracle.require(*case[:3])
    oracle.check_case(case, data, "trajectory")
