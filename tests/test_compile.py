"""``torch.compile(optimizer.step)`` on optproof's optimizers: every class on every kernel
path, several parameters of different shapes, several steps, compiled against eager.

* **Capture** (every class × path, two param groups, float32 and float64 parameters): dynamo
  with the ``eager`` backend and its own optimizer decompositions off
  (``enable_dynamo_decompositions=False``, which rewrites ``addcmul`` as ``mul`` + ``fma``)
  runs the very kernels of the eager step that takes the compiled branch (scalars as 0-d
  tensors, ``torch.compiler.is_compiling()`` patched to true), so the compiled step must
  equal it bit for bit, parameters and every state tensor. Any difference is a capture
  fault: a graph replayed for the wrong parameter, a state tensor read from the wrong
  source, a step counted twice. (Before the state dicts were handed down by ``_step_group``
  and the step stayed a tensor under compile, the for-loop path's per-tensor frame,
  split by the ``.item()`` of the step, resolved ``self.state[p]`` to the first parameter's
  state for every parameter: its step advanced once per parameter, the others' never.)
* **Inductor, fused**: the step runs eagerly outside the graph (a graph break; the kernels
  are opaque calls fed by host-side bookkeeping), so it equals the eager step bit for bit,
  as torch.optim's fused step does under ``torch.compile``.
* **Inductor, for-loop and foreach**: inductor fuses the ops into kernels of its own (and
  dynamo rewrites ``addcmul``), so the compiled step is not bitwise the eager one, and
  neither is torch.optim's (torch 2.13, measured: SGD, Adagrad, RMSprop, Adam differ in the
  last bits on both paths); it must stay inside the same derived trajectory bound as every
  other kernel. Two inductor faults this check caught, each 10⁴–10¹⁶ ULPs off: with the
  step's ``.item()`` floats fed to the graph, Adam (AMSGrad, L2) moved parameters by up to
  37 % of a step wrong (the scalars now stay 0-d tensors under compile); and NAdam's
  in-place ``mu_product.mul_`` on a 0-d float64 input was dropped, the product stuck at μ₁
  (under compile it is rebound, not mutated).
"""

from __future__ import annotations

import pytest
import torch

import oracle
import optproof.torch_impl as ours
from test_fused import _rule_map, _steps_taken, grads_at, make_params

STEPS = 3

#: per class, keywords that give it state and weight decay to carry from step to step
CONFIGS = {
    "SGD": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    "Adagrad": {"lr_decay": 0.1, "weight_decay": 0.1},
    "Adadelta": {"weight_decay": 0.1},
    "RMSprop": {"centered": True, "momentum": 0.5},
    "Adam": {"amsgrad": True, "weight_decay": 0.1},
    "AdamW": {},
    "NAdam": {"weight_decay": 0.1, "decoupled_weight_decay": True},
}
PATHS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def _groups() -> list[dict]:
    """make_params' four float32 tensors, and a second group (its own lr) of two equal-length
    tensors of two dtypes: two foreach buckets of one tensor each."""
    gen = torch.Generator().manual_seed(1)
    second = [torch.randn(5, generator=gen, dtype=dtype).requires_grad_()
              for dtype in (torch.float32, torch.float64)]
    return [{"params": make_params(torch.float32)}, {"params": second, "lr": 0.05}]


def _steps(name: str, path: str, compile_=None):
    """``STEPS`` steps of ``name`` on ``path``, the step compiled by ``compile_`` if given."""
    groups = _groups()
    params = [p for g in groups for p in g["params"]]
    opt = getattr(ours, name)(groups, **CONFIGS[name], **PATHS[path])
    step = compile_(opt.step) if compile_ else opt.step
    for k in range(STEPS):
        grads_at(params, k)
        step()
    return params, opt


def _assert_bitwise(eager, compiled) -> None:
    (pa, oa), (pb, ob) = eager, compiled
    for i, (a, b) in enumerate(zip(pa, pb)):
        assert torch.equal(a, b), f"parameter {i}"
        assert oa.state[a].keys() == ob.state[b].keys(), f"parameter {i}"
        for key, value in oa.state[a].items():
            assert torch.equal(value, ob.state[b][key]), f"parameter {i}: state {key!r}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", CONFIGS)
def test_compiled_step_captures_every_parameter_bitwise(name, path, monkeypatch):
    torch._dynamo.reset()
    with torch._dynamo.config.patch(enable_dynamo_decompositions=False):
        compiled = _steps(name, path, lambda f: torch.compile(f, backend="eager"))
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    _assert_bitwise(_steps(name, path), compiled)


@pytest.mark.parametrize("name", CONFIGS)
def test_compiled_fused_step_equals_eager_bitwise(name):
    torch._dynamo.reset()
    _assert_bitwise(_steps(name, "fused"), _steps(name, "fused", torch.compile))


@pytest.mark.parametrize("path", ["for-loop", "foreach"])
@pytest.mark.parametrize("name", CONFIGS)
def test_compiled_step_within_derived_bound(name, path):
    torch._dynamo.reset()
    params = make_params(torch.float32)
    opt = getattr(ours, name)(params, **CONFIGS[name], **PATHS[path])
    opt.step = torch.compile(opt.step)  # what oracle.trajectory calls
    report = oracle.trajectory(opt, _rule_map(name), lambda k: grads_at(params, k), STEPS,
                               steps_taken=_steps_taken(name, 0))
    assert report.checked > 0
    report.assert_ok()
