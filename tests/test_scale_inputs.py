"""Scale of inputs, against torch.optim: 10 000 small tensors in one group, empty groups,
zero-size tensors. Every result equals torch's bit for bit. (Kept fast: ~10 s in all.)"""

from __future__ import annotations

import copy

import pytest
import torch

from torch_compat import NAMES, classes, default_dtype, make_params, random_grads, run_steps, \
    same_bits, state_tensors

KWARGS = {"SGD": {"lr": 0.1, "momentum": 0.9}, "RMSprop": {"centered": True, "momentum": 0.5},
          "Adam": {"amsgrad": True}, "Adagrad": {"lr_decay": 0.01}}
MANY = 10_000


def _many_tensors(seed: int) -> list[torch.Tensor]:
    """10 000 float32 tensors of 0 to 4 elements, 0-d, 1-d and 2-d (zero-size included)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(), (1,), (4,), (0,), (2, 2), (3, 0), (1, 3), (2,)]
    picks = torch.randint(0, len(shapes), (MANY,), generator=gen).tolist()
    return [torch.randn(shapes[i], generator=gen).requires_grad_() for i in picks]


def _assert_same(pa, oa, pb, ob):
    assert all(same_bits(x, y) for x, y in zip(pa, pb, strict=True))
    sa, sb = state_tensors(oa), state_tensors(ob)
    assert sa.keys() == sb.keys()
    assert all(same_bits(sa[k], sb[k]) for k in sa)


#: the 10 000-tensor case for the classes whose state differs in kind (lazy moments, momentum
#: buffers created from the first grad, eager Adagrad sums, NAdam's per-tensor mu_product);
#: the other three share Adam's machinery (and the time budget is 20 s for this file)
SCALE_NAMES = ("Adam", "SGD", "Adagrad", "NAdam")


@pytest.fixture
def nadam64(request):
    """NAdam compared under the float64 default dtype: torch keeps mu_product in the default
    dtype, optproof in float64 (deviation D1)."""
    with default_dtype(torch.float64 if request.node.callspec.params["name"] == "NAdam"
                       else torch.get_default_dtype()):
        yield


@pytest.mark.parametrize("name", SCALE_NAMES)
@pytest.mark.usefixtures("nadam64")
def test_ten_thousand_small_tensors_in_one_group(name):
    runs = []
    foreach = name != "SGD"  # SGD: the default path (for-loop on CPU) at this scale too
    for cls in classes(name):
        params = _many_tensors(1)
        kwargs = {"lr": 0.1, "momentum": 0.9} if name == "SGD" else {}
        opt = cls(params, **kwargs, foreach=foreach if foreach else None)
        grads = random_grads(2)
        steps = 2 if name == "SGD" else 1  # SGD's second step uses the momentum buffers
        run_steps(opt, params, grads, range(steps))
        runs.append((params, opt))
    (pa, oa), (pb, ob) = runs
    assert len(oa.state) == MANY
    _assert_same(pa, oa, pb, ob)


@pytest.mark.usefixtures("nadam64")
@pytest.mark.parametrize("name", NAMES)
def test_empty_groups_like_torch(name):
    outcomes = []
    for cls in classes(name):
        try:
            cls([])
        except Exception as exc:  # noqa: BLE001
            error = (type(exc), str(exc))
        else:
            error = None
        a, b = make_params(3)[:2]
        opt = cls([{"params": []}, {"params": [a]}, {"params": [], "lr": 0.5}],
                  **KWARGS.get(name, {}))
        opt.add_param_group({"params": [], "lr": 0.25})
        opt.add_param_group({"params": [b]})
        run_steps(opt, [a, b], random_grads(3), range(2))
        state = opt.state_dict()
        other = cls([{"params": []}, {"params": [a]}, {"params": [], "lr": 0.5},
                     {"params": [], "lr": 0.25}, {"params": [b]}], **KWARGS.get(name, {}))
        other.load_state_dict(copy.deepcopy(state))
        run_steps(other, [a, b], random_grads(3), range(2, 3))
        outcomes.append((error, [len(g["params"]) for g in other.param_groups], [a, b], other))
    (ea, la, pa, oa), (eb, lb, pb, ob) = outcomes
    assert ea == eb and ea is not None  # "optimizer got an empty parameter list"
    assert la == lb == [0, 1, 0, 0, 1]
    _assert_same(pa, oa, pb, ob)


ZERO_SIZE = ((0,), (3, 0), (0, 0, 2), (2, 3))


@pytest.mark.usefixtures("nadam64")
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_zero_size_tensors_like_torch(name, foreach):
    runs = []
    for cls in classes(name):
        params = make_params(4, shapes=ZERO_SIZE)
        opt = cls(params, **KWARGS.get(name, {}), foreach=foreach)
        run_steps(opt, params, random_grads(4), range(3))
        zero_only = make_params(5, shapes=ZERO_SIZE[:3])  # a group of zero-size tensors only
        opt.add_param_group({"params": zero_only})
        run_steps(opt, zero_only, random_grads(5), range(2))
        runs.append((params + zero_only, opt))
    (pa, oa), (pb, ob) = runs
    for p in pa[:3]:
        st = oa.state[p]
        assert all(v.shape == p.shape for k, v in st.items() if k not in ("step", "mu_product"))
    _assert_same(pa, oa, pb, ob)
