"""Test configuration: hypothesis profiles and the ``device`` fixture.

Profiles (select with the environment variable ``HYPOTHESIS_PROFILE``; the default is ``ci``
when ``CI`` is set, ``dev`` otherwise):

* ``ci`` — derandomised (the same examples on every run, no example database), a bounded
  number of examples so that the whole suite stays well under 15 minutes on 2 cores, and no
  shrinking (a failure is reported with the example that found it; rerun that test under
  ``dev`` to shrink it to a minimal example).
* ``dev`` — random, moderate, with shrinking: for working on the code.
* ``thorough`` — many examples; run by hand and on the GPU machine.

The oracle tests (``test_oracle_*.py``) are expensive (the reference runs in mpmath, element by
element) and run a quarter of the profile's ``max_examples`` (``oracle.oracle_examples()``).
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, Phase, settings

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci", derandomize=True, database=None, max_examples=24, deadline=None,
    suppress_health_check=_SLOW, print_blob=True,
    phases=[Phase.explicit, Phase.generate, Phase.target])
settings.register_profile("dev", max_examples=48, deadline=None, suppress_health_check=_SLOW,
                          print_blob=True)
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=_SLOW, print_blob=True)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)

CUDA_REASON = "no CUDA device (torch.cuda.is_available() is False)"

#: the devices tests run on: "cpu" always, "cuda" skipped cleanly without a GPU
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda,
                                pytest.mark.skipif(not torch.cuda.is_available(),
                                                   reason=CUDA_REASON)]),
]


@pytest.fixture(scope="session", params=DEVICES)
def device(request) -> str:
    """Each test using it runs on "cpu" and on "cuda" (skipped without a GPU)."""
    return request.param


def pytest_report_header(config):
    return (f"hypothesis profile: {PROFILE}; torch {torch.__version__}; "
            f"cuda available: {torch.cuda.is_available()}")
