"""Non-finite values propagate exactly as in torch.optim (docs/guides/nonfinite.md).

Gradients with NaN, +Inf and −Inf in some elements (and finite elsewhere), over several
steps, on the for-loop and foreach paths, float64 and float32: every parameter and state
tensor equals torch's bit for bit — NaN positions, NaN sign/payload, infinities and signed
zeros included. Also a parameter that is already ±Inf/NaN, and an infinite lr/eps.
"""

from __future__ import annotations

import copy

import pytest
import torch

from torch_compat import NAMES, classes, default_dtype, make_params, same_bits, state_tensors

CONFIGS = {
    "Adam": [{}, {"amsgrad": True, "weight_decay": 0.1, "maximize": True},
             {"weight_decay": 0.1, "decoupled_weight_decay": True}],
    "AdamW": [{}, {"amsgrad": True}],
    "SGD": [{"lr": 0.1}, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.1},
            {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}],
    "Adagrad": [{}, {"lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.1}],
    "Adadelta": [{}, {"weight_decay": 0.1, "maximize": True}],
    "RMSprop": [{}, {"centered": True, "momentum": 0.5, "weight_decay": 0.1}],
    "NAdam": [{}, {"weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}],
}
CASES = [(name, kw) for name in NAMES for kw in CONFIGS[name]]
NAN, INF = float("nan"), float("inf")


def nonfinite_grads(k: int, params):
    """Step 0: NaN, +Inf, −Inf in the first param; step 1: +Inf elsewhere, −0.0 and
    subnormals; step 2: finite (NaN/Inf already in the state must carry on as torch's)."""
    gen = torch.Generator().manual_seed(40 + k)
    out = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    first = out[0].view(-1)
    if k == 0:
        first[0], first[1], first[2] = NAN, INF, -INF
    elif k == 1:
        first[3], first[4] = INF, -0.0
        first[5] = torch.finfo(first.dtype).tiny / 4  # subnormal
        out[1].view(-1)[0] = -INF
    return out


def _run(cls, kwargs, dtype, foreach, grads, start=None):
    params = make_params(11, dtype=dtype)
    if start is not None:
        with torch.no_grad():
            for p, s in zip(params, start):
                p.copy_(s)
    opt = cls(params, **copy.deepcopy(kwargs), foreach=foreach)
    for k in range(3):
        for p, g in zip(params, grads(k, params)):
            p.grad = g
        opt.step()
    return params, opt


def _assert_bitwise(a, b):
    (pa, oa), (pb, ob) = a, b
    for x, y in zip(pa, pb, strict=True):
        assert same_bits(x, y), (x, y)
    sa, sb = state_tensors(oa), state_tensors(ob)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert same_bits(sa[key], sb[key]), (key, sa[key], sb[key])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name,kwargs", CASES)
def test_nonfinite_gradients_propagate_like_torch(name, kwargs, foreach, dtype):
    ours, theirs = classes(name)
    # torch keeps NAdam's mu_product in the default dtype, optproof in float64 (D1)
    ctx = default_dtype(torch.float64) if name == "NAdam" else \
        default_dtype(torch.get_default_dtype())
    with ctx:
        a = _run(ours, kwargs, dtype, foreach, nonfinite_grads)
        b = _run(theirs, kwargs, dtype, foreach, nonfinite_grads)
    _assert_bitwise(a, b)
    assert a[0][0].isnan().any() or a[0][0].isinf().any() or name == "SGD"


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name,kwargs", CASES)
def test_nonfinite_params_propagate_like_torch(name, kwargs, foreach):
    """Parameters that are already ±Inf/NaN (finite gradients)."""
    start = [p.detach().clone() for p in make_params(12)]
    start[0].view(-1)[:3] = torch.tensor([NAN, INF, -INF], dtype=torch.float64)

    def grads(k, params):
        gen = torch.Generator().manual_seed(50 + k)
        return [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]

    ours, theirs = classes(name)
    with default_dtype(torch.float64) if name == "NAdam" else default_dtype(torch.float32):
        _assert_bitwise(_run(ours, kwargs, torch.float64, foreach, grads, start),
                        _run(theirs, kwargs, torch.float64, foreach, grads, start))


@pytest.mark.parametrize("hyper", [{"lr": INF}, {"eps": INF}, {"lr": NAN}])
@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_hyperparameters_like_torch(name, hyper):
    """An infinite lr/eps, or NaN lr (torch's ``0.0 <= lr`` check rejects NaN except in SGD,
    which checks ``lr < 0.0``): the same exception, or the same result."""
    ours, theirs = classes(name)
    if "eps" in hyper and name == "SGD":
        pytest.skip("SGD has no eps")
    outcomes = []
    for cls in (ours, theirs):
        try:
            with default_dtype(torch.float64) if name == "NAdam" else \
                    default_dtype(torch.float32):
                outcomes.append(_run(cls, hyper, torch.float64, False, nonfinite_grads))
        except Exception as exc:  # noqa: BLE001
            outcomes.append((type(exc), str(exc)))
    if isinstance(outcomes[1], tuple) and isinstance(outcomes[1][0], type):
        assert outcomes[0] == outcomes[1]
    else:
        _assert_bitwise(*outcomes)
