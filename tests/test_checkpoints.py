"""Checkpoints and the rest of the torch.optim.Optimizer surface, against torch.optim 2.13.

* state_dict round trip: save after k steps, load into a fresh optimizer, continue; the
  result equals the uninterrupted run bit for bit.
* interop: a torch.optim checkpoint loads into the optproof class and vice versa, and the
  continued run equals the uninterrupted one (bit for bit; both compute the same ops).
* every checkpoint goes through ``torch.save`` / ``torch.load(..., weights_only=True)``
  (state_dicts hold only tensors, numbers, bools, strings, None, tuples, lists and dicts),
  for every configuration torch ships for the counterpart too.
* resume in a fresh process (subprocess) is bit-identical to an uninterrupted run.
* ``add_param_group``, ``zero_grad(set_to_none)`` and the step / state_dict /
  load_state_dict hooks (per optimizer and global) behave as torch's.

NAdam with float64 params runs under a float64 default dtype, where torch keeps
``mu_product`` in float64 like optproof (deviation D1 of ``test_conformance_torch.py``);
float32 params are checked under the float32 default, where both keep it in float32.
"""

from __future__ import annotations

import contextlib
import copy
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from torch_compat import (
    NAMES,
    classes,
    default_dtype,
    extra_group_keys,
    make_params,
    optim_info,
    random_grads,
    run_steps,
    same_bits,
    state_tensors,
)

#: one configuration per class that creates every state key the class has
RICH = {
    "Adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "maximize": True},
    # a float64 Tensor lr: with a float32 one torch computes lr/(1-β1ᵗ) in float32 (D2)
    "AdamW": {"lr": torch.tensor(0.01, dtype=torch.float64), "amsgrad": True},
    "SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    "Adagrad": {"lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.1},
    "Adadelta": {"rho": 0.8, "weight_decay": 0.1},
    "RMSprop": {"centered": True, "momentum": 0.5, "weight_decay": 0.1},
    "NAdam": {"weight_decay": 0.1, "momentum_decay": 6e-3, "decoupled_weight_decay": True},
}
K, N = 3, 4  # steps before the checkpoint, steps after


def ctx(name: str, dtype: torch.dtype = torch.float64):
    """torch keeps NAdam's μ-product in the default dtype, optproof in float64 (D1): a
    float64 default makes the two runs comparable bit for bit, whatever the param dtype."""
    return default_dtype(torch.float64) if name == "NAdam" else contextlib.nullcontext()


def through_disk(obj):
    """``torch.save`` then ``torch.load(weights_only=True)`` (also breaks any aliasing)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def uninterrupted(cls, kwargs, dtype=torch.float64, foreach=None):
    params = make_params(1, dtype=dtype)
    opt = cls(params, **copy.deepcopy(kwargs), foreach=foreach)
    run_steps(opt, params, random_grads(1), range(K + N))
    return params, opt


def resumed(first, second, kwargs, dtype=torch.float64, foreach=None):
    params = make_params(1, dtype=dtype)
    opt = first(params, **copy.deepcopy(kwargs), foreach=foreach)
    run_steps(opt, params, random_grads(1), range(K))
    checkpoint = through_disk({"params": [p.detach() for p in params], "opt": opt.state_dict()})
    params = [p.clone().requires_grad_() for p in checkpoint["params"]]
    opt = second(params, **copy.deepcopy(kwargs), foreach=foreach)
    opt.load_state_dict(checkpoint["opt"])
    run_steps(opt, params, random_grads(1), range(K, K + N))
    return params, opt


def assert_same_run(a, b):
    (pa, oa), (pb, ob) = a, b
    assert all(same_bits(x, y) for x, y in zip(pa, pb, strict=True))
    sa, sb = state_tensors(oa), state_tensors(ob)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert same_bits(sa[key], sb[key]), key


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_and_interop(name, dtype, foreach):
    ours, theirs = classes(name)
    kwargs = RICH[name]
    if (foreach or dtype != torch.float64) and isinstance(kwargs.get("lr"), torch.Tensor):
        # torch: a Tensor lr needs capturable with foreach; on float32 params torch's
        # θ·(1 − lr·λ) with a 0-d float64 tensor factor rounds differently (D2)
        kwargs = {**kwargs, "lr": 0.01}
    with ctx(name, dtype):
        reference = uninterrupted(theirs, kwargs, dtype, foreach)
        assert_same_run(uninterrupted(ours, kwargs, dtype, foreach), reference)
        for first, second in ((ours, ours), (theirs, ours), (ours, theirs)):
            run = resumed(first, second, kwargs, dtype, foreach)
            if name == "NAdam" and dtype != torch.float64 and second is theirs:
                # torch's own loader casts mu_product to the param dtype, so torch resumed
                # is not torch uninterrupted either (D1): check exactly that cast
                (_, opt) = run
                assert all(s["mu_product"].dtype == dtype for s in opt.state.values())
                continue
            assert_same_run(run, reference)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_is_stable_and_weights_only_loadable(name):
    ours, theirs = classes(name)
    with ctx(name):
        params = make_params(2)
        opt = ours(params, **copy.deepcopy(RICH[name]))
        run_steps(opt, params, random_grads(2), range(2))
        saved = opt.state_dict()
        loaded = through_disk(saved)
        fresh = ours(make_params(2), **copy.deepcopy(RICH[name]))
        fresh.load_state_dict(loaded)
        again = fresh.state_dict()
        assert again["param_groups"] == saved["param_groups"] or _groups_equal(
            again["param_groups"], saved["param_groups"])
        for i, state in saved["state"].items():
            assert state.keys() == again["state"][i].keys()
            for key, value in state.items():
                assert same_bits(value, again["state"][i][key]), (i, key)
        # the torch counterpart's state_dict has the same layout (ours may add the
        # decoupled_weight_decay flag to a group)
        theirs_opt = theirs(params, **copy.deepcopy(RICH[name]))
        run_steps(theirs_opt, params, random_grads(2), range(1))
        t_sd = theirs_opt.state_dict()
        assert set(t_sd["param_groups"][0]) <= set(saved["param_groups"][0])
        assert not extra_group_keys(saved["param_groups"][0], t_sd["param_groups"][0])
        assert {k: set(v) for k, v in t_sd["state"].items()} == {
            k: set(v) for k, v in saved["state"].items()}


def _groups_equal(a, b) -> bool:
    def same(x, y):
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and torch.equal(x, y)
        if isinstance(x, (tuple, list)):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        return x == y
    return all(g.keys() == h.keys() and all(same(g[k], h[k]) for k in g) for g, h in zip(a, b))


@pytest.mark.parametrize("name", NAMES)
def test_every_shipped_configuration_checkpoints_weights_only(name):
    """For each configuration torch ships for the counterpart (the optproof-supported ones),
    the state_dict after two steps survives ``torch.load(weights_only=True)`` and a second
    optimizer loads it and takes a step."""
    ours, _ = classes(name)
    configs = optim_info(name).optim_inputs_func("cpu")
    assert configs
    for config in configs:
        params = make_params(3)
        opt = ours(params, **copy.deepcopy(config.kwargs))
        run_steps(opt, params, random_grads(3), range(2))
        state = through_disk(opt.state_dict())
        other = ours(params, **copy.deepcopy(config.kwargs))
        other.load_state_dict(state)
        run_steps(other, params, random_grads(3), range(2, 3))


# --------------------------------------------------------------------------- fresh process

_STAGE = textwrap.dedent("""
    import copy, sys
    sys.path.insert(0, {tests!r})
    import torch
    from torch_compat import classes, default_dtype, make_params, random_grads, run_steps
    from test_checkpoints import RICH, K, N
    stage, path = sys.argv[1], sys.argv[2]
    out = {{}}
    for name, kwargs in RICH.items():
        cls = classes(name)[0]
        with default_dtype(torch.float64 if name == "NAdam" else torch.float32):
            if stage == "first":
                params = make_params(1)
                opt = cls(params, **copy.deepcopy(kwargs))
                run_steps(opt, params, random_grads(1), range(K))
            else:
                saved = torch.load(path, weights_only=True)[name]
                params = [p.clone().requires_grad_() for p in saved["params"]]
                opt = cls(params, **copy.deepcopy(kwargs))
                opt.load_state_dict(saved["opt"])
                run_steps(opt, params, random_grads(1), range(K, K + N))
            out[name] = {{"params": [p.detach() for p in params], "opt": opt.state_dict()}}
    torch.save(out, path)
""")


def test_resume_in_a_fresh_process_is_bit_identical(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(_STAGE.format(tests=str(Path(__file__).parent)))
    checkpoint = tmp_path / "checkpoint.pt"
    for stage in ("first", "resume"):
        subprocess.run([sys.executable, str(script), stage, str(checkpoint)], check=True,
                       capture_output=True, text=True, timeout=120)
    final = torch.load(checkpoint, weights_only=True)
    for name, kwargs in RICH.items():
        with ctx(name):
            params, opt = uninterrupted(classes(name)[0], kwargs)
        got = final[name]
        assert all(same_bits(a, b) for a, b in zip(got["params"], params, strict=True)), name
        expected = state_tensors(opt)
        loaded = {f"{i}.{k}": v for i, s in got["opt"]["state"].items() for k, v in s.items()
                  if isinstance(v, torch.Tensor)}
        assert loaded.keys() == expected.keys()
        assert all(same_bits(loaded[k], expected[k]) for k in loaded), name


# --------------------------------------------------------------------------- the API surface


@pytest.mark.parametrize("name", NAMES)
def test_add_param_group_like_torch(name):
    runs = []
    for cls in classes(name):
        with ctx(name):
            a, b, c = make_params(4)
            opt = cls([a], **copy.deepcopy(RICH[name]))
            run_steps(opt, [a], random_grads(4), range(1))
            opt.add_param_group({"params": [b], "lr": 0.003})
            opt.add_param_group({"params": c})  # a bare tensor is accepted
            errors = []
            for bad in ({"params": [a]}, [b], {"params": {b}}):
                try:
                    opt.add_param_group(bad)
                except Exception as exc:  # noqa: BLE001
                    errors.append((type(exc), str(exc)))
            run_steps(opt, [a, b, c], random_grads(5), range(2))
            groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
            runs.append(([a, b, c], opt, groups, errors))
    (p_o, o_o, g_o, e_o), (p_t, o_t, g_t, e_t) = runs
    assert e_o == e_t and len(e_o) == 3
    for go, gt in zip(g_o, g_t, strict=True):
        assert set(gt) <= set(go) and not extra_group_keys(go, gt)
        assert _groups_equal([{k: go[k] for k in gt}], [gt])
    assert_same_run((p_o, o_o), (p_t, o_t))


@pytest.mark.parametrize("set_to_none", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_zero_grad_like_torch(name, set_to_none):
    grads = []
    for cls in classes(name):
        params = make_params(6)
        opt = cls(params)
        run_steps(opt, params, random_grads(6), range(1))
        params[1].grad = None
        params[2].grad.requires_grad_()  # a grad with a grad_fn-less requires_grad
        opt.zero_grad(set_to_none=set_to_none)
        grads.append([None if p.grad is None else (p.grad.clone(), p.grad.requires_grad)
                      for p in params])
    ours, theirs = grads
    assert len(ours) == len(theirs)
    for x, y in zip(ours, theirs):
        assert (x is None) == (y is None)
        if x is not None:
            assert same_bits(x[0], y[0]) and x[1] == y[1]


def three():
    return 3.0


def seven():
    return 7.0


def _hook_log(cls, kwargs):
    log = []
    params = make_params(7)
    opt = cls(params, **copy.deepcopy(kwargs))
    handles = [
        # torch passes the step's args including the optimizer itself: log the rest
        opt.register_step_pre_hook(lambda o, a, kw: log.append(("pre", a[1:], dict(kw)))),
        opt.register_step_post_hook(lambda o, a, kw: log.append(("post", a[1:], dict(kw)))),
        opt.register_state_dict_pre_hook(lambda o: log.append("sd_pre")),
        opt.register_state_dict_post_hook(
            lambda o, sd: (log.append(("sd_post", sorted(sd))), {**sd, "extra": 1})[1]),
        opt.register_load_state_dict_pre_hook(
            lambda o, sd: (log.append(("load_pre", sorted(sd))),
                           {k: v for k, v in sd.items() if k != "extra"})[1]),
        opt.register_load_state_dict_post_hook(lambda o: log.append("load_post")),
    ]
    # a pre hook may replace (args, kwargs): here it swaps in a closure
    swap = opt.register_step_pre_hook(lambda o, args, kw: ((o, seven), {}))
    for p, g in zip(params, random_grads(7)(0, params)):
        p.grad = g
    loss = opt.step()
    swap.remove()
    loss2 = opt.step(closure=three)
    sd = opt.state_dict()
    opt.load_state_dict(sd)
    for h in handles:
        h.remove()
    opt.step()
    opt.state_dict()
    log.append(("losses", loss, loss2, "extra" in sd))
    # global hooks apply to every optimizer, ours included
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )
    g1 = register_optimizer_step_pre_hook(lambda o, a, k: log.append(("gpre", type(o).__name__)))
    g2 = register_optimizer_step_post_hook(lambda o, a, k: log.append(("gpost", type(o).__name__)))
    try:
        opt.step()
    finally:
        g1.remove()
        g2.remove()
    return log, [p.detach().clone() for p in params]


@pytest.mark.parametrize("name", NAMES)
def test_hooks_like_torch(name):
    with ctx(name):
        (log_o, p_o), (log_t, p_t) = (_hook_log(cls, RICH[name]) for cls in classes(name))
    assert log_o == log_t
    assert ("losses", 7.0, 3.0, True) in log_o
    assert all(same_bits(a, b) for a, b in zip(p_o, p_t))
