"""``torch.compile(optimizer.step)`` on optproof's optimizers, every kernel path.

* ``fused=True``: the step runs eagerly outside the graph (a graph break; the kernels are
  opaque calls fed by host-side bookkeeping), so the compiled step equals the eager one bit
  for bit.
* for-loop and foreach: inductor fuses the ops into kernels of its own, so the compiled step
  is not bitwise the eager one (neither is torch.optim's), but it must stay inside the same
  derived trajectory bound as every other kernel.

Each compile costs seconds, so a few representative configurations run here.
"""

from __future__ import annotations

import pytest
import torch

import oracle
import optproof.torch_impl as ours
from test_fused import _rule_map, _steps_taken, grads_at, make_params

STEPS = 3


def _run(name: str, kwargs: dict, path: dict, compiled: bool):
    torch._dynamo.reset()
    params = make_params(torch.float32)
    opt = getattr(ours, name)(params, **kwargs, **path)
    step = torch.compile(opt.step) if compiled else opt.step
    for k in range(STEPS):
        grads_at(params, k)
        step()
    return params, opt


@pytest.mark.parametrize("name,kwargs", [
    ("Adam", {"amsgrad": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("NAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RMSprop", {"centered": True, "momentum": 0.5}),
], ids=["Adam", "SGD", "NAdam", "RMSprop"])
def test_compiled_fused_step_equals_eager_bitwise(name, kwargs):
    (pa, oa), (pb, ob) = (_run(name, kwargs, {"fused": True}, compiled) for compiled in (False, True))
    for a, b in zip(pa, pb):
        assert torch.equal(a, b)
        for key, value in oa.state[a].items():
            assert torch.equal(value, ob.state[b][key]), key


@pytest.mark.parametrize("name,kwargs,path", [
    ("Adam", {"amsgrad": True, "weight_decay": 0.1}, {"foreach": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, {"foreach": False}),
], ids=["Adam-foreach", "SGD-for-loop"])
def test_compiled_step_within_derived_bound(name, kwargs, path):
    torch._dynamo.reset()
    params = make_params(torch.float32)
    opt = getattr(ours, name)(params, **kwargs, **path)
    opt.step = torch.compile(opt.step)  # what oracle.trajectory calls
    report = oracle.trajectory(opt, _rule_map(name), lambda k: grads_at(params, k), STEPS,
                               steps_taken=_steps_taken(name, 0))
    assert report.checked > 0
    report.assert_ok()
