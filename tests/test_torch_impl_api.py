"""API / semantics smoke tests: optproof.torch_impl vs torch.optim 2.13.

float64 results must equal torch's within 1e-12 relative (the exact ULP oracle
lives elsewhere).  NAdam runs under a float64 default dtype, where torch also
keeps ``mu_product`` in float64 (otherwise torch's float32 mu_product differs
from ours by ~1e-10, see ``test_nadam_mu_product_precision``).
"""

from __future__ import annotations

import contextlib
import copy
import functools

import pytest
import torch

import optproof.torch_impl as ours
from optproof.torch_impl import _base, param_groups_no_decay
from torch_compat import default_dtype

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")

RTOL = 1e-12
NAMES = ["Adam", "AdamW", "SGD", "Adagrad", "Adadelta", "RMSprop", "NAdam"]

CASES = [
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("Adam", {"maximize": True, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("Adam", {"weight_decay": 0.05, "decoupled_weight_decay": True, "amsgrad": True}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.3, "maximize": True}),
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.2}),
    ("Adagrad", {"maximize": True, "eps": 1e-6}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1, "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.8, "centered": True, "weight_decay": 0.1}),
    ("RMSprop", {"alpha": 0.9, "centered": True, "maximize": True}),
    ("RMSprop", {"momentum": 0.5}),
    ("NAdam", {}),
    ("NAdam", {"weight_decay": 0.1, "momentum_decay": 0.01, "maximize": True}),
    ("NAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
]


def ctx(name):
    return default_dtype(torch.float64) if name == "NAdam" else contextlib.nullcontext()


def make_params(seed=0, dtype=torch.float64, shapes=((3, 4), (5,), (2, 3, 2))):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]


def clone_params(ps):
    return [p.detach().clone().requires_grad_() for p in ps]


def groups_of(ps, two_groups):
    if not two_groups:
        return ps
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.003, "weight_decay": 0.02}]


def set_grads(step, *param_lists, dtype=None):
    g = torch.Generator().manual_seed(1000 + step)
    grads = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in param_lists[0]]
    for ps in param_lists:
        for p, gr in zip(ps, grads):
            p.grad = gr.to(p.dtype).clone()


def assert_close(a, b, rtol=RTOL):
    for x, y in zip(a, b):
        x, y = x.detach(), y.detach()
        if x.is_complex():
            x, y = torch.view_as_real(x), torch.view_as_real(y)
        err = ((x - y).abs() / y.abs().clamp_min(1e-300)).max().item()
        assert err <= rtol, err


def run_pair(name, kwargs, foreach, *, steps=6, two_groups=False, dtype=torch.float64):
    base = make_params(dtype=dtype)
    pa, pb = clone_params(base), clone_params(base)
    oa = getattr(ours, name)(groups_of(pa, two_groups), foreach=foreach, **kwargs)
    ob = getattr(torch.optim, name)(groups_of(pb, two_groups), foreach=foreach, **kwargs)
    for s in range(steps):
        set_grads(s, pa, pb)
        oa.step()
        ob.step()
    return pa, pb, oa, ob


# --------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch_float64(name, kwargs, foreach):
    with ctx(name):
        pa, pb, _, _ = run_pair(name, kwargs, foreach, two_groups=True)
    assert_close(pa, pb)


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("name", NAMES)
def test_complex_params(name, foreach):
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    with ctx(name):
        pa, pb, _, _ = run_pair(name, kwargs, foreach, dtype=torch.complex128, steps=4)
    assert_close(pa, pb)


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_low_precision_bitwise(name, foreach, dtype):
    """Same ops on the low-precision tensors, same Python-float scalars: bitwise."""
    kwargs = {"momentum": 0.9, "lr": 0.01} if name == "SGD" else {"weight_decay": 0.01}
    pa, pb, _, _ = run_pair(name, kwargs, foreach, dtype=dtype, steps=4)
    for x, y in zip(pa, pb):
        assert torch.equal(x, y)


#: shapes that make several runs of the for-loop path (`loop_runs`): small tensors together,
#: 0-d and empty ones, a transposed view, and tensors beyond a run's element limit
RUN_SHAPES = ((), (0,), (7,), (3, 5), (300,), *[(1000,)] * 20, (5000,), (40, 30), (70_000,),
              (2, 3, 4), (_base.LOOP_RUN_ELEMENTS + 1,), (9,), (100_000,), (100_000,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16],
                         ids=["f32", "f64", "bf16", "f16"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_for_loop_path_is_torchs_bit_for_bit(name, kwargs, dtype):
    """The CPU for-loop path, which runs small tensors together (`RUNS`), computes torch's
    ``_single_tensor_*`` results bit for bit: parameters and every state tensor, 3 steps,
    tensors of many sizes in runs and alone, one of them a transposed view."""
    base = make_params(shapes=RUN_SHAPES, dtype=dtype)
    base[RUN_SHAPES.index((40, 30))] = base[RUN_SHAPES.index((40, 30))].t()
    pa, pb = clone_params(base), clone_params(base)
    with ctx(name):
        oa = getattr(ours, name)(pa, foreach=False, **kwargs)
        ob = getattr(torch.optim, name)(pb, foreach=False, **kwargs)
        for s in range(3):
            set_grads(s, pa, pb)
            oa.step()
            ob.step()
    same = functools.partial(torch.testing.assert_close, rtol=0, atol=0, equal_nan=True)
    for i, (x, y) in enumerate(zip(pa, pb)):  # float16 overflows to inf and NaN here
        same(x, y, msg=f"param {i} {tuple(x.shape)}")
        for key, value in ob.state[y].items():
            same(oa.state[x][key], value, msg=f"param {i}: state {key!r}")


@pytest.mark.parametrize("name", NAMES)
def test_foreach_mixed_dtypes_grouped(name):
    """One group holding float32 and float64 params: foreach buckets by (device, dtype)."""
    base = make_params()
    base[1] = base[1].float()
    pa, pb = clone_params(base), clone_params(base)
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    oa = getattr(ours, name)(pa, foreach=True, **kwargs)
    ob = getattr(torch.optim, name)(pb, foreach=True, **kwargs)
    with ctx(name):
        for s in range(3):
            set_grads(s, pa, pb)
            oa.step()
            ob.step()
    assert torch.equal(pa[1], pb[1])
    assert_close(pa[:1] + pa[2:], pb[:1] + pb[2:])


def test_closure_and_params_without_grad():
    p, q = clone_params(make_params(shapes=((3,), (2,))))
    opt = ours.Adam([p, q], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        assert torch.is_grad_enabled()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert torch.is_tensor(loss) and loss.item() > 0
    assert q not in opt.state and int(opt.state[p]["step"]) == 1


def test_foreach_none_uses_loop_on_cpu(monkeypatch):
    called = []
    monkeypatch.setattr(_base.OptimizerBase, "_run", lambda self, g, ps, states, ops: called.append(ops))
    p = clone_params(make_params())
    for x in p:
        x.grad = torch.ones_like(x)
    ours.Adam(p).step()
    assert called and all(ops is _base.RUNS for ops in called)  # the for-loop path, batched
    called.clear()
    ours.Adam(p, foreach=True).step()
    assert called == [_base.FOREACH]  # one (device, dtype) bucket


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_host_reads_per_step_are_at_most_torchs(monkeypatch, name, kwargs, foreach):
    """A step reads a tensor back to the host (``Tensor.item``: a synchronisation on a device,
    a per-tensor cost on the CPU for-loop) no more often than torch.optim's same path."""
    reads = []
    item = torch.Tensor.item

    def counted(self):
        reads.append(1)
        return item(self)

    counts = {}
    for library in (ours, torch.optim):
        params = clone_params(make_params())
        with ctx(name):
            opt = getattr(library, name)(params, foreach=foreach, **kwargs)
            set_grads(0, params)
            opt.step()  # lazy state initialisation aside
            set_grads(1, params)
            with monkeypatch.context() as patch:
                patch.setattr(torch.Tensor, "item", counted)
                opt.step()
        counts[library.__name__], reads[:] = len(reads), []
    assert counts["optproof.torch_impl"] <= counts["torch.optim"], counts


# --------------------------------------------------------------------------- validation

BAD = [
    ("Adam", {"lr": -1.0}),
    ("Adam", {"eps": -1e-3}),
    ("Adam", {"betas": (1.0, 0.9)}),
    ("Adam", {"betas": (0.9, -0.1)}),
    ("Adam", {"betas": (0, 0.9)}),
    ("Adam", {"weight_decay": -0.1}),
    ("Adam", {"lr": torch.tensor([0.1, 0.2])}),
    ("Adam", {"lr": torch.tensor(0.1), "foreach": True}),
    ("Adam", {"fused": True, "differentiable": True}),
    ("Adam", {"fused": True, "foreach": True}),
    ("AdamW", {"betas": (0.9, 1.5)}),
    ("SGD", {"lr": -0.1}),
    ("SGD", {"momentum": -0.5}),
    ("SGD", {"weight_decay": -1.0}),
    ("SGD", {"nesterov": True}),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}),
    ("SGD", {"fused": True, "differentiable": True}),
    ("Adagrad", {"lr": -1.0}),
    ("Adagrad", {"lr_decay": -1.0}),
    ("Adagrad", {"weight_decay": -1.0}),
    ("Adagrad", {"initial_accumulator_value": -1.0}),
    ("Adagrad", {"eps": -1.0}),
    ("Adagrad", {"fused": True, "foreach": True}),
    ("Adadelta", {"lr": -1.0}),
    ("Adadelta", {"rho": 1.1}),
    ("Adadelta", {"eps": -1.0}),
    ("Adadelta", {"weight_decay": -1.0}),
    ("RMSprop", {"lr": -1.0}),
    ("RMSprop", {"eps": -1.0}),
    ("RMSprop", {"momentum": -1.0}),
    ("RMSprop", {"weight_decay": -1.0}),
    ("RMSprop", {"alpha": -1.0}),
    ("NAdam", {"lr": -1.0}),
    ("NAdam", {"eps": -1.0}),
    ("NAdam", {"betas": (0.9, 1.0)}),
    ("NAdam", {"weight_decay": -1.0}),
    ("NAdam", {"momentum_decay": -1.0}),
]


def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return type(e), str(e)
    return None


@pytest.mark.parametrize("name,kwargs", BAD, ids=[f"{n}-{'-'.join(k)}" for n, k in BAD])
def test_validation_matches_torch(name, kwargs):
    p = [torch.zeros(2, requires_grad=True)]
    expected = _error(lambda: getattr(torch.optim, name)(p, **kwargs))
    assert expected is not None
    assert _error(lambda: getattr(ours, name)(p, **kwargs)) == expected


@pytest.mark.parametrize("name", NAMES)
def test_empty_params_matches_torch(name):
    assert _error(lambda: getattr(ours, name)([])) == _error(lambda: getattr(torch.optim, name)([]))


@pytest.mark.parametrize("name", ["Adam", "AdamW", "Adadelta", "RMSprop", "NAdam"])
def test_sparse_gradient_errors_match_torch(name):
    def attempt(mod):
        p = torch.zeros(4, requires_grad=True)
        p.grad = torch.sparse_coo_tensor([[1]], [1.0], (4,))
        return _error(lambda: getattr(mod, name)([p]).step())

    assert attempt(torch.optim) is not None
    assert attempt(ours) == attempt(torch.optim)


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adagrad", {"lr_decay": 0.1})])
def test_sparse_gradients_supported_like_torch(name, kwargs, foreach):
    pa, pb = clone_params(make_params(shapes=((6, 2),))), None
    pb = clone_params(pa)
    oa = getattr(ours, name)(pa, foreach=foreach, **kwargs)
    ob = getattr(torch.optim, name)(pb, foreach=foreach, **kwargs)
    for s in range(3):
        idx = torch.tensor([[s, 4]])
        vals = torch.randn(2, 2, dtype=torch.float64)
        pa[0].grad = torch.sparse_coo_tensor(idx, vals, (6, 2))
        pb[0].grad = torch.sparse_coo_tensor(idx, vals.clone(), (6, 2))
        oa.step()
        ob.step()
    assert_close(pa, pb)


def test_fused_flag_and_adamw_decay_are_checked():
    """(differentiable=True with each path: tests/test_differentiable.py)"""
    p = [torch.zeros(2, requires_grad=True)]
    for name in NAMES:  # fused=True exists for every class (tests/test_fused.py checks it)
        assert getattr(ours, name)(p, fused=True).defaults["fused"] is True
    with pytest.raises(ValueError, match="AdamW always uses decoupled"):
        ours.AdamW(p, decoupled_weight_decay=False)


# --------------------------------------------------------------------------- state dicts

SD_CASES = [
    ("Adam", {"amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1}),
    ("Adagrad", {"lr_decay": 0.01}),
    ("Adadelta", {}),
    ("RMSprop", {"momentum": 0.9, "centered": True}),
    ("NAdam", {"weight_decay": 0.01}),
]


@pytest.mark.parametrize("direction", ["torch->ours", "ours->torch"])
@pytest.mark.parametrize("name,kwargs", SD_CASES, ids=[n for n, _ in SD_CASES])
def test_state_dict_round_trip(name, kwargs, direction):
    src_mod, dst_mod = (torch.optim, ours) if direction == "torch->ours" else (ours, torch.optim)
    with ctx(name):
        p_src = clone_params(make_params())
        src = getattr(src_mod, name)(groups_of(p_src, True), **kwargs)
        for s in range(3):
            set_grads(s, p_src)
            src.step()
        sd = copy.deepcopy(src.state_dict())
        p_dst = clone_params(p_src)
        dst = getattr(dst_mod, name)(groups_of(p_dst, True), **kwargs)
        dst.load_state_dict(sd)

        a_sd, b_sd = src.state_dict(), dst.state_dict()
        assert a_sd["state"].keys() == b_sd["state"].keys()
        for k in a_sd["state"]:
            sa, sb = a_sd["state"][k], b_sd["state"][k]
            assert sa.keys() == sb.keys()
            for key in sa:
                assert sa[key].dtype == sb[key].dtype and sa[key].shape == sb[key].shape
                assert sa[key].device == sb[key].device

        for s in range(3, 6):
            set_grads(s, p_src, p_dst)
            src.step()
            dst.step()
    assert_close(p_dst, p_src)


@pytest.mark.parametrize("name,kwargs", SD_CASES, ids=[n for n, _ in SD_CASES])
def test_fresh_state_layout_matches_torch(name, kwargs):
    pa, pb, oa, ob = run_pair(name, kwargs, False, steps=1)
    sa, sb = oa.state_dict(), ob.state_dict()
    for ga, gb in zip(sa["param_groups"], sb["param_groups"]):
        assert set(gb) <= set(ga)
        assert {k: ga[k] for k in gb} == gb
    assert sa["state"].keys() == sb["state"].keys()
    for k in sb["state"]:
        for key, vb in sb["state"][k].items():
            va = sa["state"][k][key]
            if key == "mu_product":  # deliberate: float64 for float64 params
                assert va.dtype == torch.float64 and va.shape == vb.shape
                continue
            assert (va.dtype, va.shape, va.device) == (vb.dtype, vb.shape, vb.device)


def test_setstate_converts_float_step():
    p = clone_params(make_params(shapes=((2,),)))
    opt = ours.Adam(p)
    p[0].grad = torch.ones(2, dtype=torch.float64)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["step"] = 1.0
    for g in sd["param_groups"]:
        for key in ("foreach", "maximize", "capturable", "amsgrad"):
            g.pop(key)
    opt.load_state_dict(sd)
    st = opt.state[p[0]]["step"]
    assert torch.is_tensor(st) and st.dtype == torch.float32 and st.device.type == "cpu"
    assert opt.param_groups[0]["amsgrad"] is False and opt.param_groups[0]["foreach"] is None


# --------------------------------------------------------------------------- extensions


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
def test_sgd_decoupled_weight_decay_formula(foreach):
    lr, wd, mu = 0.1, 0.05, 0.9
    (p,) = clone_params(make_params(shapes=((4,),)))
    theta = p.detach().clone()
    opt = ours.SGD([p], lr=lr, momentum=mu, weight_decay=wd, decoupled_weight_decay=True, foreach=foreach)
    buf = None
    for s in range(4):
        g = torch.randn(4, dtype=torch.float64)
        p.grad = g.clone()
        opt.step()
        buf = g.clone() if buf is None else mu * buf + g
        theta = theta * (1 - lr * wd) - lr * buf
    assert_close([p], [theta], rtol=1e-14)


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("name", ["Adagrad", "RMSprop", "Adadelta"])
def test_decoupled_weight_decay_equals_manual_shrink(name, foreach):
    """θ ← θ(1 − lr_eff·λ) then the plain rule (Adagrad: lr_eff = clr_t)."""
    lr, wd, lr_decay = 0.1, 0.2, 0.5
    kw = {"lr_decay": lr_decay} if name == "Adagrad" else {}
    (p,) = clone_params(make_params(shapes=((5,),)))
    (q,) = clone_params([p])
    oa = getattr(ours, name)([p], lr=lr, weight_decay=wd, decoupled_weight_decay=True, foreach=foreach, **kw)
    ob = getattr(torch.optim, name)([q], lr=lr, foreach=foreach, **kw)
    for s in range(3):
        lr_eff = lr / (1 + s * lr_decay) if name == "Adagrad" else lr
        with torch.no_grad():
            q.mul_(1 - lr_eff * wd)
        set_grads(s, [p], [q])
        oa.step()
        ob.step()
    assert_close([p], [q])


def test_nadam_mu_product_precision():
    pa, pb, oa, ob = run_pair("NAdam", {}, False, steps=20)
    mu_ours = oa.state[pa[0]]["mu_product"]
    assert mu_ours.dtype == torch.float64 and ob.state[pb[0]]["mu_product"].dtype == torch.float32
    assert_close(pa, pb, rtol=1e-8)  # torch's float32 mu_product costs ~1e-10 here
    with default_dtype(torch.float64):
        pc, pd, _, _ = run_pair("NAdam", {}, False, steps=20)
    assert_close(pa, pc)  # ours does not depend on the default dtype
    # float32 params too: torch's float32 mu_product is a documented deviation (D1)
    _, _, oc, od = run_pair("NAdam", {}, False, steps=1, dtype=torch.float32)
    assert next(iter(oc.state.values()))["mu_product"].dtype == torch.float64
    assert next(iter(od.state.values()))["mu_product"].dtype == torch.float32


def test_nadam_low_precision_mu_product_restored_after_load():
    (p,) = clone_params(make_params(shapes=((3,),), dtype=torch.float16))
    src = torch.optim.NAdam([p])
    p.grad = torch.ones_like(p)
    src.step()
    dst = ours.NAdam([p])
    dst.load_state_dict(src.state_dict())  # torch's loader casts mu_product to float16
    assert dst.state[p]["mu_product"].dtype == torch.float64


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("Adam", {"amsgrad": True, "weight_decay": 0.1}),
        ("AdamW", {"lr": torch.tensor(0.01)}),
        ("Adadelta", {"weight_decay": 0.1}),
        ("RMSprop", {"momentum": 0.9, "centered": True}),
        ("NAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_capturable_path(monkeypatch, name, kwargs, foreach):
    """capturable=True (device-resident step, tensor coefficients, no .item()) agrees
    with torch's default path; CPU is allowed here only by patching the device list."""
    p = [torch.zeros(2, requires_grad=True)]
    p[0].grad = torch.ones(2)
    with pytest.raises(AssertionError, match="capturable=True"):
        getattr(ours, name)(p, capturable=True).step()
    monkeypatch.setattr(_base, "capturable_supported_devices", lambda: ["cpu"])
    base = make_params()
    pa, pb = clone_params(base), clone_params(base)
    oa = getattr(ours, name)(pa, capturable=True, foreach=foreach, **kwargs)
    kwargs_t = {k: (v.item() if torch.is_tensor(v) else v) for k, v in kwargs.items()}
    with ctx(name):
        ob = getattr(torch.optim, name)(pb, **kwargs_t)
        for s in range(5):
            set_grads(s, pa, pb)
            oa.step()
            ob.step()
    assert all(st["step"].device == pa[0].device for st in oa.state.values())
    assert_close(pa, pb)


def test_param_groups_no_decay():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.lin = torch.nn.Linear(4, 4)
            self.ln = torch.nn.LayerNorm(4)
            self.bn = torch.nn.BatchNorm1d(4)
            self.head = torch.nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight  # tied

    net = Net()
    groups = param_groups_no_decay(net, 0.1)
    decay = {id(p) for p in groups[0]["params"]}
    keep = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert decay == {id(net.emb.weight), id(net.lin.weight)}
    assert keep == {id(net.lin.bias), id(net.ln.weight), id(net.ln.bias), id(net.bn.weight), id(net.bn.bias)}
    no_emb = param_groups_no_decay(net, 0.1, no_decay=_pg_defaults() + (torch.nn.Embedding,))
    assert {id(p) for p in no_emb[0]["params"]} == {id(net.lin.weight)}
    ours.AdamW(groups, lr=1e-3)  # usable as-is


def _pg_defaults():
    from optproof.torch_impl.param_groups import DEFAULT_NO_DECAY

    return DEFAULT_NO_DECAY


@pytest.mark.parametrize("path", [{"foreach": False}, {"foreach": True}, {"fused": True}],
                         ids=["for-loop", "foreach", "fused"])
@pytest.mark.parametrize("name", ["AdamW", "SGD", "NAdam"])
def test_grad_scaler_steps_on_unscaled_gradients_and_skips_infinite_ones(name, path):
    """``torch.amp.GradScaler`` drives every path: it unscales the gradients (a power-of-two
    scale, so exactly) before the step and skips a step whose gradients overflowed. The run
    with the scaler equals the same optimizer fed the unscaled gradients directly, bit for
    bit, with the overflowed step left out."""
    kwargs = {"lr": 0.1, "momentum": 0.9} if name == "SGD" else {}

    def run(scaled: bool):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        opt = getattr(ours, name)(model.parameters(), **kwargs, **path)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
        for k in range(4):
            x = torch.randn(8, 4, generator=torch.Generator().manual_seed(k))
            if k == 2:
                x[0, 0] = float("inf")  # this step's gradients overflow
            opt.zero_grad()
            loss = model(x).square().mean()
            if scaled:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                if all(p.grad.isfinite().all() for p in model.parameters()):
                    opt.step()
        return model, opt

    (ma, oa), (mb, ob) = run(scaled=True), run(scaled=False)
    for a, b in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(a, b)
        assert oa.state[a].keys() == ob.state[b].keys()
        for key, value in oa.state[a].items():
            assert torch.equal(value, ob.state[b][key]), key
