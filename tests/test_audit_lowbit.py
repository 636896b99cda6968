"""The audit of the memory-saving and offload optimizers: bitsandbytes, torchao, DeepSpeed's
CPU Adam, heavyball. Each test skips when its library is absent (none is a dependency).

What is asserted is what the audit measured on these libraries (the versions in
``docs/data/lowbit.json``); each claim is one a registered variant or probe separated from
its alternatives, not a number copied from the library."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from optproof.audit import audit, quantization
from optproof.audit.adapters.base import QuantizedState
from optproof.audit.adapters.torch import TorchAdapter
from optproof.audit.serialize import to_dict
from optproof.audit.target import Target, load_target

sys.path.insert(0, os.path.dirname(__file__))
from test_quantized import SyntheticAdamW8bit  # noqa: E402

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


# ----------------------------------------------------------- the oracle on a synthetic kernel

#: the synthetic optimizer quantizes tensors of at least this many elements, in blocks of 32:
#: above every configuration's tensors (at most 135 elements), as the libraries' 4096 is
MIN_CODED, BLOCK = 160, 32


class SyntheticAdamW8bitOptimizer(torch.optim.AdamW):
    """torch.optim.AdamW whose state of a tensor of at least ``MIN_CODED`` elements is kept
    as 8-bit codes by `test_quantized.SyntheticAdamW8bit` (the documented dynamic maps, one
    absmax per block, nearest rounding; ``mistake`` planted as there); smaller tensors keep
    float state, as bitsandbytes' below ``min_8bit_size``."""

    mistake: str | None = None

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, foreach=False)

    @torch.no_grad()
    def step(self, closure=None):
        coded = {p: p.grad for g in self.param_groups for p in g["params"]
                 if p.grad is not None and p.numel() >= MIN_CODED}
        for p in coded:
            p.grad = None
        super().step()
        for group in self.param_groups:
            hyper = {k: group[k] for k in ("lr", "betas", "eps", "weight_decay")}
            for p in (p for p in group["params"] if p in coded):
                state = self.state[p]
                if "kernel" not in state:
                    state["kernel"] = SyntheticAdamW8bit(p.numel(), BLOCK, mistake=self.mistake)
                kernel = state["kernel"]
                kernel.param = p.detach().reshape(-1).float().clone()
                kernel.step(coded[p].reshape(-1).float(), hyper)
                state["step"] = torch.tensor(float(kernel.step_count))
                p.copy_(kernel.param.view_as(p))
                p.grad = coded[p]


def _read_synthetic(optimizer, param) -> dict[str, QuantizedState]:
    kernel = optimizer.state.get(param, {}).get("kernel")
    if kernel is None:
        return {}
    return {key: QuantizedState(
        key=key, stored_as=key, codes=np.asarray(codes, np.int64),
        scales=np.asarray(scales, np.float64), code_map=np.asarray(kernel.maps(key)[0]),
        block_size=BLOCK, scale_rule="absmax", rounding="nearest", compute_dtype="float32",
        source="tests/test_quantized.py SyntheticAdamW8bit")
        for key, (codes, scales) in kernel.state.items()}


def _audit_synthetic(monkeypatch, mistake):
    """The audit of the synthetic optimizer; the quantization experiment's sizes moved to its
    threshold (one below, at, and two blocks above) so that each audit takes seconds."""
    monkeypatch.setattr(quantization, "SIZES", (MIN_CODED - 1, MIN_CODED, MIN_CODED + 2 * BLOCK))
    cls = type("SyntheticAdamW8bit", (SyntheticAdamW8bitOptimizer,), {"mistake": mistake})
    target = Target("tests.SyntheticAdamW8bit", cls, cls.__name__,
                    TorchAdapter(cls, cls.__name__, quantized=_read_synthetic))
    return audit(target, steps=STEPS)


def test_oracle_makes_a_faithful_synthetic_8bit_adamw_conformant(monkeypatch):
    result = _audit_synthetic(monkeypatch, None)
    q = result.quantization
    assert result.verdict == "conformant" and result.exit_code == 0, result.diagnosis
    assert q.checked and q.passed and len(q.oracle) == STEPS
    codes = [s.checks["code:exp_avg"] for s in q.oracle]
    assert all(c["checked"] == MIN_CODED + 2 * BLOCK and c["failed"] == 0 for c in codes)
    assert all(s.checks["param"]["worst_ulps"] <= s.checks["param"]["bound_ulps"]
               for s in q.oracle)
    text = "\n".join(result.diagnosis)  # the quantization it was checked under
    assert "256-entry map, block 32, absmax scale, nearest" in text and "pass" in text
    assert to_dict(result)["quantization"]["oracle"]["passed"] is True


@pytest.mark.parametrize("mistake,check", [("linear-map", "code of exp_avg"),
                                           ("neighbour-scale", "scale of exp_avg"),
                                           ("truncate", "code of exp_avg")])
def test_oracle_names_the_failed_check_of_a_faulty_synthetic_8bit_adamw(monkeypatch, mistake,
                                                                        check):
    """The negative controls: codes of another map than the state's, each block's scale from
    the next block, truncation for rounding: a deviation naming the check, step and element."""
    result = _audit_synthetic(monkeypatch, mistake)
    q = result.quantization
    assert result.verdict == "deviation" and q.checked and not q.passed
    first = q.oracle[0]
    assert check in first.failed() and first.failures
    assert "θ" not in first.failed()  # step 1 reads zero state: θ is right
    if mistake != "neighbour-scale":
        assert not any(name.startswith("scale") for name in first.failed())
    text = "\n".join(result.diagnosis)
    assert "failed step 1: " in text and check in text
    data = to_dict(result)["quantization"]["oracle"]
    assert data["passed"] is False and check in data["steps"][0]["failed"]


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
    decay = {e.axis: e for e in result.conventions}["weight decay"]
    assert decay.measured and decay.detected.startswith("decoupled"), decay


def test_bitsandbytes_adamw8bit_is_conformant_under_the_quantized_state_oracle():
    """Float state below 4096 elements conforms to adamw; every step on the 4224-element
    tensor's 8-bit state passes the oracle under bitsandbytes' own maps, block 256 and its
    CPU table rounding: θ within its bound, every scale and every code."""
    pytest.importorskip("bitsandbytes")
    result = audit("bitsandbytes.optim.AdamW8bit", rule="adamw", steps=STEPS)
    q = result.quantization
    assert q is not None and q.error is None
    assert q.sizes[4095] == {} and set(q.sizes[4096]) == {"exp_avg", "exp_avg_sq"}
    assert result.variants["adamw"].matches
    assert q.checked and q.passed and len(q.oracle) == STEPS and q.measured_on == 4224
    for step in q.oracle:
        assert {k: c["checked"] for k, c in step.checks.items()} == {
            "param": 4224, "scale:exp_avg": 17, "code:exp_avg": 4224,
            "scale:exp_avg_sq": 17, "code:exp_avg_sq": 4224}
        assert step.checks["param"]["worst_ulps"] <= step.checks["param"]["bound_ulps"]
    assert result.verdict == "conformant" and result.exit_code == 0
    text = "\n".join(result.diagnosis)
    assert "block 256" in text and "lut65536" in text and "pass" in text
    assert len(q.median_ulps) == 3 and q.median_ulps[0] < 2  # step 1 reads zero state


def test_bitsandbytes_adam8bit_is_adamw_with_its_quantized_steps_checked():
    """Adam8bit decays decoupled: the float-state configurations name adamw instead of adam;
    the oracle (λ = 0, where the two agree) passes its quantized steps and the report says so."""
    pytest.importorskip("bitsandbytes")
    result = audit("bitsandbytes.optim.Adam8bit", rule="adam", steps=STEPS)
    assert result.verdict == "deviation" and result.best == "adamw"
    text = "\n".join(result.diagnosis)
    assert "behaves as adamw rather than adam" in text
    assert result.quantization.passed and "quantized-state oracle (adam)" in text


def test_bitsandbytes_quantized_configurations_name_no_convention():
    pytest.importorskip("bitsandbytes")
    result = audit("bitsandbytes.optim.AdamW8bit", rule="adamw", steps=2,
                   extra={"min_8bit_size": 0})
    assert result.verdict == "unverified" and result.conventions == []
    assert "state is quantized in configuration" in result.diagnosis[0]
    assert result.quantization.passed  # the oracle's steps pass; the configurations ran on codes


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
    closer in ULPs (a separation that holds whatever precision model the target is judged
    under)."""
    ours, theirs = result.variants[coupling], result.variants[other]
    assert theirs.configs["decay-schedule"].first is not None
    assert ours.worst_ulps * 100 < theirs.worst_ulps


def test_torchao_adamw8bit_decays_decoupled_and_conforms_under_its_precision_model():
    """Decoupled decay; on the 4096-element tensor every new scale and code is the exact new
    state's under torchao's map and block 256, and θ is within the bound of torchao's
    precision model (float32 lr and bias corrections: without it θ leaves the bound,
    ``test_quantized.test_torchao_float32_step_scalars_leave_the_bound``)."""
    pytest.importorskip("torchao")
    result = audit("torchao.optim.AdamW8bit", rule="adamw", steps=STEPS)
    _decay_separated(result, "adamw", "adam")
    q = result.quantization
    # torchao quantizes from 4096 elements that fill whole 256-element blocks
    assert q.sizes[4095] == {} and q.sizes[4224] == {} and q.sizes[4096]
    assert q.checked and q.passed and q.measured_on == 4096
    assert all(c["failed"] == 0 and c["checked"] for s in q.oracle for c in s.checks.values())
    assert result.rounding is not None and "torchao" in result.rounding.name
    assert result.verdict == "conformant", result.diagnosis


def test_torchao_adam8bit_is_l2():
    pytest.importorskip("torchao")
    _decay_separated(audit("torchao.optim.Adam8bit", rule="adam", steps=STEPS), "adam", "adamw")


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
    # float32 hyperparameters and per-step scalars, βᵗ a running product: DeepSpeed's model
    assert "DeepSpeed" in result.rounding.name
    assert result.verdict == "conformant", result.diagnosis


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
