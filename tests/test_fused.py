"""The fused path (``fused=True``) of every optproof optimizer, against the derived bounds.

* every rule × dtype (float64, float32, bfloat16, float16) × a grid of configurations that
  covers maximize, L2 and decoupled weight decay, amsgrad, nesterov, momentum, dampening,
  centered, small β₁, lr_decay: the one-step oracle at three consecutive steps (each from the
  kernel's own state) and a four-step trajectory, both within
  `optproof.reference.bounded_run`'s bound — the same oracle as the for-loop and
  foreach paths (which is what "fused == for-loop within the derived bound" means: both lie
  inside the same bound around the exact step); the tensors include a transposed view, a
  0-d and an empty tensor;
* the Triton kernel, run by Triton's CPU interpreter (``TRITON_INTERPRET=1``), is bitwise
  equal to the C++ kernel for every rule, variant and dtype, and passes the oracle itself;
* the C++ kernel's vector lanes step bitwise like its scalar tail, and round 16-bit stores
  like ``Tensor.to``, in each instruction-set build (AVX-512 with and without AVX512-BF16,
  AVX2) this machine can run;
* mixed precision (``state_dtype=torch.float32``, bfloat16/float16 parameters) on the
  for-loop, foreach and fused paths: float32 state, and every step within
  `optproof.reference.mixed.mixed_bounded_run`'s derived bound;
* the edges: mixed dtypes in one group, sparse/integer errors, the foreach fallback.

The C++ extension is compiled once per machine (cached by torch.utils.cpp_extension), so
only the first run on a fresh machine pays ~20-60 s.
"""

from __future__ import annotations

import copy
import os
import platform

import pytest
import torch

if not torch.cuda.is_available():  # Triton's CPU interpreter; must precede importing triton
    os.environ.setdefault("TRITON_INTERPRET", "1")

import oracle  # noqa: E402
import optproof.torch_impl as ours  # noqa: E402
from optproof.reference.mixed import mixed_bounded_run  # noqa: E402
from optproof.torch_impl import fused  # noqa: E402
from optproof.torch_impl.fused import cpu as fused_cpu  # noqa: E402

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16,
          "float16": torch.float16}

#: (class, constructor keywords): every flag of every rule at least once
CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.25, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adagrad", {"lr_decay": 0.1, "weight_decay": 0.1}),
    ("Adagrad", {"maximize": True, "initial_accumulator_value": 0.1, "eps": 1e-3}),
    ("Adagrad", {"weight_decay": 0.1, "decoupled_weight_decay": True, "lr_decay": 0.5}),
    ("Adadelta", {}),
    ("Adadelta", {"weight_decay": 0.1, "maximize": True, "lr": 0.5}),
    ("Adadelta", {"weight_decay": 0.1, "decoupled_weight_decay": True, "rho": 0.5}),
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    ("RMSprop", {"centered": True, "maximize": True, "alpha": 0.5}),
    ("RMSprop", {"momentum": 0.5, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adam", {}),
    ("Adam", {"amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("Adam", {"betas": (1e-8, 0.5), "eps": 1e-3, "lr": 0.1}),
    ("Adam", {"weight_decay": 0.1, "decoupled_weight_decay": True, "amsgrad": True}),
    ("AdamW", {}),
    ("AdamW", {"amsgrad": True, "maximize": True, "weight_decay": 0.5}),
    ("NAdam", {}),
    ("NAdam", {"weight_decay": 0.1, "maximize": True}),
    ("NAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True, "momentum_decay": 0.01}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for name, kw in CONFIGS]


def make_params(dtype: torch.dtype) -> list[torch.Tensor]:
    """A transposed (non-contiguous) matrix, a vector, a 0-d and an empty tensor."""
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(3, 2, generator=gen).to(dtype).t().requires_grad_(),
            torch.randn(4, generator=gen).to(dtype).requires_grad_(),
            torch.randn((), generator=gen).to(dtype).requires_grad_(),
            torch.zeros(0, dtype=dtype, requires_grad=True)]


def grads_at(params: list[torch.Tensor], k: int) -> None:
    """Step k's gradients: varied magnitudes and sign flips.  (Zero gradients on zero state
    are left to the hypothesis oracle tests: in float16 the default ε = 1e-8 underflows, a
    kernel may divide 0 by 0 there, and the bound rightly makes no claim.)"""
    gen = torch.Generator().manual_seed(100 + k)
    for p in params:
        g = torch.randn(p.shape, generator=gen) * (4.0 ** (k % 3 - 1))
        p.grad = (g if k % 2 == 0 else -g).to(p.dtype)


def _rule_map(name: str):
    base = oracle.ENTRIES[name].rule_map
    return lambda group: base({k: v for k, v in group.items() if k != "state_dtype"})


def _steps_taken(name: str, k: int):
    return None if oracle.ENTRIES[name].has_step else k


def run_oracle(name: str, kwargs: dict, dtype: torch.dtype, **extra) -> oracle.Report:
    """Three one-step checks and a four-step trajectory of ``name(..., fused=True)``."""
    report = oracle.Report()
    params = make_params(dtype)
    opt = getattr(ours, name)(params, **kwargs, **extra)
    for k in range(3):
        report.merge(oracle.one_step(opt, _rule_map(name), lambda: grads_at(params, k),
                                     steps_taken=_steps_taken(name, k)))
    params = make_params(dtype)
    opt = getattr(ours, name)(params, **kwargs, **extra)
    report.merge(oracle.trajectory(opt, _rule_map(name), lambda k: grads_at(params, k), 4,
                                   steps_taken=_steps_taken(name, 0)))
    return report


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=IDS)
def test_fused_within_derived_bound(index, dtype):
    name, kwargs = CONFIGS[index]
    report = run_oracle(name, kwargs, DTYPES[dtype], fused=True)
    assert report.checked > 0
    report.assert_ok()


# --------------------------------------------------------------------------- Triton

triton_backend = pytest.importorskip("optproof.torch_impl.fused.triton")
needs_triton = pytest.mark.skipif(
    not triton_backend.available() or (not torch.cuda.is_available()
                                       and not triton_backend.interpreting()),
    reason=f"triton unavailable: {triton_backend.unavailable_reason()} (install the test "
           "extra; CPU tests need TRITON_INTERPRET=1 set before triton is imported)")

KERNEL_CASES = [("sgd", v) for v in range(3)] + [("adagrad", 0), ("adadelta", 0)] + \
    [("rmsprop", v) for v in range(4)] + [("adam", v) for v in range(2)] + [("nadam", 0)]
#: two scalar rows for the raw kernels: [weight decay, decay factor, rule scalars..., first]
KERNEL_SCALARS = [0.01, 0.999, 0.9, 0.1, 0.999, 0.001, -1e-3, 0.5, 1e-8, -0.01] + [0.0] * 6 + \
    [0.0, 1.0, 0.5, 0.5, 0.9, 0.1, -0.1, 0.9, 1e-3, -0.1] + [0.0] * 5 + [1.0]


@needs_triton
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rule,variant", KERNEL_CASES, ids=[f"{r}-{v}" for r, v in KERNEL_CASES])
def test_triton_kernel_bitwise_equals_cpu_kernel(rule, variant, dtype):
    dtype = DTYPES[dtype]
    gen = torch.Generator().manual_seed(1)
    shapes = [(2500,), (7, 5), (3,)]  # > 1 block, a transposed view, a partial block
    params = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    params[1] = params[1].t()
    grads = [torch.randn(p.shape, generator=gen).to(dtype) for p in params]
    ns = triton_backend.N_STATES[rule](variant)
    states = [(torch.rand(p.shape, generator=gen) + 0.5).to(dtype) for _ in range(ns) for p in params]
    for flags, rows in [(3, []), (0, [0, 1, 1]), (1, [1, 0, 1])]:
        a = [t.clone() for t in params], [t.clone() for t in states]
        b = [t.clone() for t in params], [t.clone() for t in states]
        triton_backend.step(rule, variant, flags, a[0], grads, a[1], KERNEL_SCALARS, rows)
        fused_cpu.load()
        assert fused_cpu.step(rule, variant, flags, b[0], grads, b[1], [], KERNEL_SCALARS, rows)
        for x, y in zip(a[0] + a[1], b[0] + b[1]):
            assert torch.equal(x.isnan(), y.isnan())
            assert torch.equal(x.nan_to_num(0), y.nan_to_num(0)), (x, y)


#: the C++ kernel's instruction-set paths, each built on this machine: extra flags, and the
#: vector paths (the module's ``vector_path``) the build may take; None: the installed build
BUILDS = {"native": ((), None),
          "no-avx512bf16": (("-mno-avx512bf16",), {"avx512", "avx2", "none"}),
          "avx2": (("-mno-avx512f",), {"avx2", "none"})}


@pytest.fixture(scope="module", params=list(BUILDS))
def kernel(request):
    """The extension as installed, and as built without AVX512-BF16 (bfloat16 rounded by
    integer code in the vector loop) and without AVX-512 (8-lane float16 loops; bfloat16
    by c10's conversions): on an x86 host with those extensions, every path runs here."""
    flags, paths = BUILDS[request.param]
    if not flags:
        return fused_cpu.load()
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"{request.param}: an x86 instruction-set build, this host is {platform.machine()}")
    ops = fused_cpu.build(flags)
    assert ops.vector_path in paths, (request.param, ops.vector_path)
    return ops


@pytest.mark.parametrize("dtype,state_dtype",
                         [(d, None) for d in DTYPES] + [(d, torch.float32) for d in ("bfloat16", "float16")],
                         ids=list(DTYPES) + ["bfloat16-float32-state", "float16-float32-state"])
@pytest.mark.parametrize("rule,variant", KERNEL_CASES, ids=[f"{r}-{v}" for r, v in KERNEL_CASES])
def test_cpu_kernel_vector_lanes_equal_scalar_tail(rule, variant, dtype, state_dtype, kernel):
    """An element's step does not depend on where it sits: one tensor of 16·4 + 7 elements
    (vector loop, then a scalar tail; 16-bit types through explicit vector conversions) steps
    bitwise like the same elements as 71 one-element tensors (the scalar tail only, with
    c10's conversions), under every flag, at ±0, ±inf, NaN, subnormals and the overflow
    edge, placed alike in θ, g and the state (so that subnormal results occur: bfloat16's
    vector narrowing must leave them to the integer rounding).  The oracle tests' tensors
    are too small to reach the vector loop."""
    dtype = DTYPES[dtype]
    info = torch.finfo(dtype)
    gen = torch.Generator().manual_seed(2)
    edges = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), info.max,
                          -info.max, info.tiny * info.eps, info.tiny, -info.tiny / 2])
    n = 16 * 4 + 7
    where = torch.randperm(n, generator=gen)[:len(edges)]  # the same place in every operand

    def values():
        x = torch.randn(n, generator=gen) * 4.0 ** torch.randint(-8, 8, (n,), generator=gen)
        x[where] = edges
        return x
    param, grad = values().to(dtype), values().to(dtype)
    ns = triton_backend.N_STATES[rule](variant)
    states = [values().abs().to(state_dtype or dtype) for _ in range(ns)]
    for flags, rows in [(3, [0]), (0, [1]), (1, [0])]:
        one = [param.clone()], [s.clone() for s in states]
        assert kernel.step(rule, variant, flags, one[0], [grad], one[1], [], KERNEL_SCALARS, rows)
        each = list(param.clone().unbind()), [x for s in states for x in s.clone().unbind()]
        assert kernel.step(rule, variant, flags, each[0], list(grad.unbind()), each[1], [],
                           KERNEL_SCALARS, rows * n)
        for whole, parts in zip(one[0] + one[1], [each[0]] + [each[1][j * n:(j + 1) * n]
                                                              for j in range(ns)]):
            parts = torch.stack(parts)
            nan = whole.isnan()
            assert torch.equal(nan, parts.isnan())
            differ = (_bits(whole) != _bits(parts)) & ~nan  # -0.0 and +0.0 differ too
            assert not differ.any(), (whole[differ], parts[differ])


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


@needs_triton
@pytest.mark.parametrize("name,kwargs", [c for c in CONFIGS if c[0] in ("Adam", "RMSprop", "SGD")],
                         ids=[i for c, i in zip(CONFIGS, IDS) if c[0] in ("Adam", "RMSprop", "SGD")])
def test_triton_path_within_derived_bound(name, kwargs, monkeypatch):
    monkeypatch.setattr(fused, "force_backend", "triton")
    for dtype in (torch.float32, torch.bfloat16):
        report = run_oracle(name, kwargs, dtype, fused=True)
        assert report.checked > 0
        report.assert_ok()


# --------------------------------------------------------------------------- mixed precision

PATH_KWARGS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
MIXED = (1, 2, 4, 9, 11, 15, 17, 19, 22)


def mixed_one_step(opt, name, set_grads, k) -> oracle.Report:
    """The one-step oracle with the mixed-precision bound (state float32, θ in its dtype)."""
    set_grads()
    snaps = oracle.snapshot(opt, _rule_map(name), steps_taken=_steps_taken(name, k))
    for s in snaps:
        s.grads = [oracle.flat(s.tensor.grad)]
    opt.step()
    report = oracle.Report()
    for s in snaps:
        if not s.params:
            continue
        record = mixed_bounded_run(s.rule, s.hyper, s.params, s.grads, s.tensor.dtype,
                                   state=s.state)[0]
        oracle._check(report, s, oracle._outputs(opt, s), record, record["step"], s.grads[0],
                      oracle._prev(s))
    return report


def run_mixed(name: str, kwargs: dict, dtype: torch.dtype, path: str) -> oracle.Report:
    params = make_params(dtype)
    opt = getattr(ours, name)(params, **kwargs, **PATH_KWARGS[path], state_dtype=torch.float32)
    report = oracle.Report()
    for k in range(3):
        report.merge(mixed_one_step(opt, name, lambda: grads_at(params, k), k))
        for p in params:
            for key, value in opt.state[p].items():
                if key not in ("step", "mu_product") and torch.is_tensor(value):
                    assert value.dtype == torch.float32, (key, value.dtype)
            assert p.dtype == dtype
    return report


@pytest.mark.parametrize("path", PATH_KWARGS)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("index", MIXED, ids=[IDS[i] for i in MIXED])
def test_mixed_precision_within_derived_bound(index, dtype, path):
    name, kwargs = CONFIGS[index]
    report = run_mixed(name, kwargs, DTYPES[dtype], path)
    assert report.checked > 0
    report.assert_ok()


def test_mixed_precision_bound_is_tighter_than_low_precision_state():
    """The mixed bound on θ is about one rounding of its dtype; with bfloat16 state every
    operation is charged a bfloat16 rounding."""
    from optproof.reference import bounded_run
    args = ("adam", {"lr": 1e-2}, [0.5, -1.25], [[0.25, 1.0]])
    mixed = mixed_bounded_run(*args, "bfloat16")[0]["param"]
    low = bounded_run(*args, "bfloat16")[0]["param"]
    assert all(m[1] < lo[1] for m, lo in zip(mixed, low))


@pytest.mark.parametrize("path", PATH_KWARGS)
def test_mixed_precision_state_dict_keeps_float32_state(path):
    params = make_params(torch.bfloat16)
    opt = ours.Adam(params, **PATH_KWARGS[path], state_dtype=torch.float32, amsgrad=True)
    grads_at(params, 0)
    opt.step()
    sd = opt.state_dict()
    other = ours.Adam(make_params(torch.bfloat16), **PATH_KWARGS[path], state_dtype=torch.float32,
                      amsgrad=True)
    other.load_state_dict(sd)  # torch casts state to the param dtype; optproof widens it back
    for p in other.param_groups[0]["params"]:
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert other.state[p][key].dtype == torch.float32


def _tie_grid(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """x = 1 + a·ulp and y = b·ulp/256 (a < 64, b < 256; both exact in ``dtype``), so that
    x + y is exact in float32 and lies below, on (b = 128) or above the midpoint between
    two ``dtype`` neighbours; plus an overflow that rounds to ±inf, a NaN and ±inf."""
    ulp = torch.finfo(dtype).eps
    a, b = torch.meshgrid(torch.arange(64.0), torch.arange(256.0), indexing="ij")
    x, y = (1 + a * ulp).flatten(), (b * ulp / 256).flatten()
    big = torch.finfo(dtype).max
    x = torch.cat([x, -x, torch.tensor([big, -big, 1.0, 1.0, 1.0])])
    y = torch.cat([y, -y, torch.tensor([big * ulp / 2, -big * ulp / 2, float("nan"),
                                        float("inf"), -float("inf")])])
    for t in (x, y):
        torch.testing.assert_close(t.to(dtype).float(), t, rtol=0, atol=0, equal_nan=True)
    return x.to(dtype), y.to(dtype)


def _assert_rounded_like_torch(actual: torch.Tensor, exact32: torch.Tensor) -> None:
    """``actual`` is torch's own float32 → dtype conversion of ``exact32``, bit for bit
    (NaN only as NaN: torch's vectorised and scalar conversions differ in NaN payload)."""
    expected = exact32.to(actual.dtype)
    nan = expected.isnan()
    assert torch.equal(actual.isnan(), nan)
    mismatch = (actual.view(torch.int16) != expected.view(torch.int16)) & ~nan
    assert not mismatch.any(), (exact32[mismatch][:5], actual[mismatch][:5], expected[mismatch][:5])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_fused_kernel_rounds_to_storage_like_torch(dtype, kernel, monkeypatch):
    """The kernel's one rounding per stored value is round-to-nearest-even, overflow to ±inf
    and gradual underflow — torch's ``Tensor.to`` — for the parameter and the state.

    SGD with lr = 1 stores θ − g, and with μ = 1 the buffer b₁ + g₂, each exact in float32
    by construction (``_tie_grid``); lr = ½ on multiples of the smallest subnormal lands
    halfway between subnormals.  The bound-based oracle cannot tell a truncating or
    ties-away conversion from a correct one (each is within a rounding or two); this can.
    Every instruction-set build of the kernel (``kernel``) is checked."""
    monkeypatch.setitem(fused_cpu._state, "ops", kernel)
    x, y = _tie_grid(dtype)
    p = torch.nn.Parameter(x.clone())
    p.grad = -y
    ours.SGD([p], lr=1.0, fused=True).step()
    _assert_rounded_like_torch(p.detach(), x.float() + y.float())

    p = torch.nn.Parameter(torch.zeros_like(x))
    opt = ours.SGD([p], lr=1.0, momentum=1.0, fused=True)
    p.grad = x.clone()
    opt.step()  # b₁ = g₁, exact
    p.grad = y.clone()
    opt.step()  # b₂ = b₁ + g₂, rounded once into the state
    _assert_rounded_like_torch(opt.state[p]["momentum_buffer"], x.float() + y.float())

    tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps  # smallest subnormal
    g = (torch.arange(-40.0, 41.0) * tiny).to(dtype)
    p = torch.nn.Parameter(torch.zeros_like(g))
    p.grad = g
    ours.SGD([p], lr=0.5, fused=True).step()
    _assert_rounded_like_torch(p.detach(), 0.0 - 0.5 * g.float())  # θ₀ = +0: +0 at g = 0


def test_state_dtype_validation():
    with pytest.raises(ValueError, match="state_dtype must be None"):
        ours.Adam(make_params(torch.float32), state_dtype=torch.float16)


# --------------------------------------------------------------------------- edges


def test_one_group_of_mixed_dtypes_and_layouts_matches_for_loop():
    def build(**kw):
        ps = make_params(torch.float32) + make_params(torch.bfloat16) + make_params(torch.float64)
        return ps, ours.AdamW(ps, lr=0.1, amsgrad=True, **kw)

    (pa, oa), (pb, ob) = build(fused=True), build(foreach=False)
    for k in range(3):
        grads_at(pa, k)
        grads_at(pb, k)
        oa.step()
        ob.step()
    for a, b in zip(pa, pb):
        assert a.is_contiguous() == b.is_contiguous()
        torch.testing.assert_close(a, b, atol=0, rtol=2 * torch.finfo(a.dtype).eps)


def test_errors_match_torch():
    p = torch.zeros(4, requires_grad=True)
    p.grad = torch.sparse_coo_tensor([[1]], [1.0], (4,))
    with pytest.raises(RuntimeError, match="`fused` does not support sparse gradients"):
        ours.SGD([p], lr=0.1, fused=True).step()
    q = torch.zeros(2, dtype=torch.int64)
    q.grad = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(RuntimeError, match="requires all the params to be floating point"):
        ours.RMSprop([q], fused=True).step()
    with pytest.raises(RuntimeError, match="cannot be `True` together"):
        ours.NAdam([p], fused=True, foreach=True)


def test_fallback_without_compiler_runs_foreach(monkeypatch):
    monkeypatch.setitem(fused_cpu._state, "ops", None)
    pa, pb = make_params(torch.float32), make_params(torch.float32)
    oa, ob = ours.NAdam(pa, fused=True), ours.NAdam(pb, foreach=True)
    for k in range(2):
        grads_at(pa, k)
        grads_at(pb, k)
        oa.step()
        ob.step()
    for a, b in zip(pa, pb):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- counters


def _state_bits(opt, params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params] + [
        v.clone() for p in params for v in opt.state[p].values() if isinstance(v, torch.Tensor)]


@pytest.mark.parametrize("name,kwargs", [("Adam", {"amsgrad": True}), ("Adagrad", {"lr_decay": 0.1}),
                                         ("NAdam", {"weight_decay": 0.1})])
def test_remembered_counters_step_like_counters_read_afresh(name, kwargs, monkeypatch):
    """A usual CPU step computes its scalars from the counter values the optimizer remembers
    from its last step, and the kernel checks every counter against them before it writes.
    Whatever happens to the counters in between — a parameter without a gradient (its step
    lags), a counter set by hand, a checkpoint loaded — the result is bitwise the one
    computed from the counters read afresh at every step, and the remembered values are
    used on the undisturbed steps."""
    calls = []
    update = fused_cpu.update_counters
    monkeypatch.setattr(fused_cpu, "update_counters", lambda *a: calls.append(1) or update(*a))

    def run(forget: bool):
        extra = torch.randn(5, generator=torch.Generator().manual_seed(3))
        params = make_params(torch.float32)[:2] + [extra.requires_grad_()]
        opt = getattr(ours, name)(params, fused=True, **kwargs)
        saved = None
        for k in range(9):
            grads_at(params, k)
            if k == 2:
                saved = copy.deepcopy(opt.state_dict())
            if k == 4:
                opt.state[params[0]]["step"].fill_(40.0)
                if name == "NAdam":
                    opt.state[params[1]]["mu_product"].mul_(0.5)
            if k == 6:
                opt.load_state_dict(saved)
            if k == 7:
                params[2].grad = None
            if forget:
                opt.__dict__.get("_fused_counters", {}).clear()
            opt.step()
        return _state_bits(opt, params)

    remembered = run(False)
    used_memo = 9 - len(calls) // (2 if name == "NAdam" else 1)
    read_afresh = run(True)
    assert used_memo >= 4  # steps 1, 2, 3 and 5 need no read
    for a, b in zip(remembered, read_afresh, strict=True):
        assert torch.equal(a, b)


def test_kernel_rejects_a_row_that_does_not_match_its_counters():
    fused_cpu.load()
    p, g, m, v = (torch.rand(8) for _ in range(4))
    step = torch.tensor(3.0)
    before = [t.clone() for t in (p, m, v, step)]
    row = [0.0, 1.0, 0.9, 0.1, 0.999, 0.001, -1e-3, 1.0, 1e-8, 0.0] + [0.0] * 6
    row[10:12] = [2.0, 3.0]  # expects step == 2 before the step: it is 3
    assert not fused_cpu.step("adam", 0, 0, [p], [g], [m, v], [step], row, [])
    for a, b in zip((p, m, v, step), before):
        assert torch.equal(a, b)
    row[10:12] = [3.0, 4.0]
    assert fused_cpu.step("adam", 0, 0, [p], [g], [m, v], [step], row, [])
    assert step.item() == 4.0 and not torch.equal(p, before[0])
