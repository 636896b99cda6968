"""The audit of the memory-saving and offload optimizers: bitsandbytes, torchao, DeepSpeed's
CPU Adam, heavyball. Each test skips when its library is absent (none is a dependency).

What is asserted is what the audit measured on these libraries (the versions in
``docs/data/lowbit.json``); each claim is one a registered variant or probe separated from
its alternatives, not a number copied from the library."""

from __future__ import annotations

import numpy as np
import pytest

from optproof.audit import audit
from optproof.audit.target import load_target

STEPS = 3


def _open(path, shapes, extra=None, hyper=None, steps=2, seed=0):
    """A session of ``path`` stepped ``steps`` times on random tensors of ``shapes``."""
    rng = np.random.default_rng(seed)
    target = load_target(path, extra=extra or {})
    session = target.adapter.open({"lr": 0.01, "weight_decay": 0.1, **(hyper or {})},
                                  [rng.uniform(-1, 1, s).astype(np.float32).astype(float)
                                   for s in shapes], "float32", "cpu")
    for _ in range(steps):
        session.step([rng.standard_normal(s).astype(np.float32).astype(float) for s in shapes],
                     0.01)
    return target, session


# ------------------------------------------------------------------------------ bitsandbytes


def test_bitsandbytes_adamw_ignores_amsgrad():
    pytest.importorskip("bitsandbytes")
    result = audit("bitsandbytes.optim.AdamW", steps=STEPS)
    assert result.expected == "adamw" and result.verdict == "deviation"
    assert result.best == "adamw~amsgrad-ignored"
    assert "amsgrad ignored" in "\n".join(result.diagnosis)
    # decay before the update on CPU: the CUDA kernels' order is rejected
    assert not result.variants["adamw:decay-after"].matches
    assert result.variants["adamw:decay-after"].first.config == "decay-schedule"


def test_bitsandbytes_adam_is_adamw_and_ignores_amsgrad():
    """bitsandbytes' Adam is AdamW with λ = 0 by default: given a λ it decays θ(1 − γλ); and
    it drops amsgrad: two differences, named together."""
    pytest.importorskip("bitsandbytes")
    result = audit("bitsandbytes.optim.Adam", steps=STEPS)
    assert result.expected == "adam" and result.best == "adamw~amsgrad-ignored"
    text = "\n".join(result.diagnosis)
    assert "behaves as adamw rather than adam" in text and "amsgrad ignored" in text
    assert "also diverge" not in text
    assert dict((a, d) for a, d, _ in result.conventions)["weight decay"].startswith("decoupled")


def test_bitsandbytes_8bit_state_is_quantized_above_its_threshold_and_not_called_conformant():
    pytest.importorskip("bitsandbytes")
    result = audit("bitsandbytes.optim.AdamW8bit", steps=STEPS)
    q = result.quantization
    assert q is not None and q.error is None
    assert q.sizes[4095] == {} and set(q.sizes[4096]) == {"exp_avg", "exp_avg_sq"}
    assert "block 256" in q.sizes[4096]["exp_avg"]
    assert result.variants["adamw"].matches  # the small tensors' float state conforms …
    assert result.verdict == "unverified" and result.exit_code == 1  # … the codes were not checked
    assert len(q.median_ulps) == 3 and q.median_ulps[0] < 2  # step 1 reads zero state


def test_bitsandbytes_quantized_configurations_name_no_convention():
    pytest.importorskip("bitsandbytes")
    result = audit("bitsandbytes.optim.AdamW8bit", steps=2, extra={"min_8bit_size": 0})
    assert result.verdict == "unverified" and result.conventions == []
    assert "state is quantized in configuration" in result.diagnosis[0]


def test_bitsandbytes_quantized_state_reads_as_the_library_dequantizes():
    pytest.importorskip("bitsandbytes")
    from bitsandbytes.functional import dequantize_blockwise
    _, session = _open("bitsandbytes.optim.AdamW8bit", [(600,), (3,)], {"min_8bit_size": 0})
    for entries, p in zip(session.quantized_state(), session.tensors):
        state = session.optimizer.state[p]
        for key, stored in (("exp_avg", "1"), ("exp_avg_sq", "2")):
            q = entries[key]
            theirs = dequantize_blockwise(state["state" + stored], absmax=state["absmax" + stored],
                                          code=state["qmap" + stored], blocksize=q.block_size)
            assert np.array_equal(q.values(), theirs.double().reshape(-1).numpy())
    assert session.state() == [{"step": [2.0]}, {"step": [2.0]}]  # codes never read as floats


# ------------------------------------------------------------------------------------ torchao


@pytest.mark.parametrize("name,bits", [("AdamW8bit", 8), ("AdamW4bit", 4), ("AdamWFp8", 8)])
def test_torchao_quantized_state_reads_as_the_library_dequantizes(name, bits):
    pytest.importorskip("torchao")
    _, session = _open(f"torchao.optim.{name}", [(4096,), (3,)])
    entries = session.quantized_state()
    assert entries[1] == {}  # below 4096 elements: plain tensors
    for key, q in entries[0].items():
        value = session.optimizer.state[session.tensors[0]][key]
        assert q.bits == bits
        assert np.array_equal(q.values(), value.dequantize().double().reshape(-1).numpy())


def _decay_separated(result, coupling, other):
    """The decay configuration rejects ``other`` and ``coupling`` comes orders of magnitude
    closer (torchao and DeepSpeed deviate from both by float32 rounding of their per-step
    scalars: a few ULP, beyond the bound but far from the other coupling)."""
    ours, theirs = result.variants[coupling], result.variants[other]
    assert theirs.configs["decay-schedule"].first is not None
    assert ours.worst_ulps * 100 < theirs.worst_ulps


def test_torchao_adamw8bit_decays_decoupled_and_is_not_called_conformant():
    pytest.importorskip("torchao")
    result = audit("torchao.optim.AdamW8bit", steps=STEPS)
    _decay_separated(result, "adamw", "adam")
    assert result.verdict != "conformant"
    q = result.quantization
    # torchao quantizes from 4096 elements that fill whole 256-element blocks
    assert q.sizes[4095] == {} and q.sizes[4224] == {} and q.sizes[4096]


def test_torchao_adam8bit_is_l2():
    pytest.importorskip("torchao")
    _decay_separated(audit("torchao.optim.Adam8bit", steps=STEPS), "adam", "adamw")


# ---------------------------------------------------------------------------------- DeepSpeed


def _deepspeed_built():
    pytest.importorskip("deepspeed")
    import os

    from torch.utils.cpp_extension import _get_build_directory
    if not os.path.isfile(os.path.join(_get_build_directory("cpu_adam", False), "cpu_adam.so")):
        pytest.skip("DeepSpeed's cpu_adam op is not built (it compiles for minutes on first use)")


@pytest.mark.parametrize("adamw_mode,coupling,other", [(True, "adamw", "adam"),
                                                       (False, "adam", "adamw")])
def test_deepspeed_adamw_mode_selects_the_decay(adamw_mode, coupling, other):
    _deepspeed_built()
    result = audit("deepspeed.ops.adam.DeepSpeedCPUAdam", steps=STEPS,
                   extra={"adamw_mode": adamw_mode})
    assert result.expected == coupling
    _decay_separated(result, coupling, other)


# ---------------------------------------------------------------------------------- heavyball


def test_heavyball_adamw_puts_eps_as_a_floor():
    pytest.importorskip("heavyball")
    result = audit("heavyball.AdamW", steps=STEPS)
    assert result.best == "adamw~eps-floor" and result.best_kind == "probe"
    assert "max(√v̂, ε)" in "\n".join(result.diagnosis)


def test_heavyball_nadam_puts_eps_as_a_floor_and_deviates_under_l2():
    """The ε configuration separates the floor from torch's ε; heavyball's NAdam with L2 decay
    (its default, ``decoupled_weight_decay=False``) matches no registered form, while its
    decoupled decay does."""
    pytest.importorskip("heavyball")
    result = audit("heavyball.NAdam", steps=STEPS)
    floor = result.probes["nadam~eps-floor"].configs
    assert result.variants["nadam"].configs["eps-large"].first is not None
    assert floor["eps-large"].first is None and floor["decoupled"].first is None
    assert floor["decay-schedule"].first is not None
    assert result.verdict == "deviation"
