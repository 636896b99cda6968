"""Conformance with torch.optim on the inputs torch ships for its own optimizer tests.

For every optproof class, the configurations of its counterpart's ``OptimizerInfo`` in
``torch.testing._internal.common_optimizers.optim_db`` — ``optim_inputs_func`` expanded by
``_get_optim_inputs_including_global_cliquey_kwargs`` into the base configuration and one
variant each with ``foreach``/``differentiable``/``fused`` set, on CPU and (when present)
CUDA — must construct, step, and match torch in float64. (torch's generator adds ``foreach``
only on devices with foreach kernels, so on CPU each base configuration is also run with
``foreach=True``: both libraries have a CPU foreach path.)

The bound: both implementations evaluate the same sequence of torch ops with the same
Python-float64 scalars, so the result is expected bit for bit (and is, on CPU, for every
configuration). The test allows ``ULPS_PER_STEP`` float64 ULPs (of the larger of the two
values) per step taken, for every parameter and every state tensor, so that a kernel choice
that differs only in rounding (an FMA contraction on another device) is not mistaken for a
different rule; NaN must be NaN on both sides.

Configurations optproof deliberately does not support are **counted and listed**, never
skipped silently: ``fused=True`` while optproof's fused path is not available (raises
``RuntimeError`` "... not yet available ..."). ``differentiable=True`` configurations are
compared like any other, on non-leaf params (the step is recorded by autograd);
Adam/AdamW's differentiable step takes its bias corrections from the ``step`` tensor, which
torch keeps in the default scalar dtype (float32) and optproof reads in float64 (D2), so
those are compared under ``torch.set_default_dtype(torch.float64)``, where the two agree bit
for bit (``tests/test_differentiable.py`` checks the gradients too).

Documented deviation D1 (NAdam ``mu_product``): torch keeps the running product of the
momentum schedule in float32 unless the *default* dtype is float64 (``_get_scalar_dtype``),
for float64 parameters too, and so rounds Πₜ to 24 bits every step; optproof keeps it in
float64 for float64 (and complex128) parameters. NAdam configurations are therefore
compared under ``torch.set_default_dtype(torch.float64)`` (where torch also keeps Πₜ in
float64 and the two agree bit for bit); ``test_nadam_mu_product_deviation`` pins the
deviation down under the float32 default: casting optproof's Πₜ to float32 before each step
reproduces torch bit for bit, and without the cast optproof stays inside the float64
trajectory bound of ``optproof.reference.bounded_run``.

Documented deviation D2 (per-step scalars in float32): with a float32 Tensor ``lr`` (or
``betas``), torch's for-loop path computes ``lr/(1 − β1ᵗ)`` (Adam/AdamW), ``lr/(1 + (t−1)η)``
(Adagrad), NAdam's step sizes as 0-d float32 tensor arithmetic, and with ``capturable=True``
(CUDA) it computes every bias correction from the float32 ``step`` tensor; optproof reads a
Tensor hyperparameter with ``.item()`` and computes the scalars in float64 (as torch does for
Python floats; with capturable, as 0-d float64 device tensors), which is the precision the
reference bounds assume. For such configurations the check is: optproof within the float64
trajectory bound of ``bounded_run``, and torch within a float32-scalar tolerance
(``D2_RTOL``) of optproof. With a float64 Tensor lr the two agree bit for bit (float64
params); on float32 params torch's ``θ·(1 − lr·λ)`` with a 0-d float64 tensor factor may
round 1 ULP differently from the Python-float factor.

Also here: every ``optim_error_inputs_func`` case (same exception or warning type, message
matching torch's regex, raised at construction or at step as ``error_on`` says), sparse
gradients (torch's error, or torch's result for SGD/Adagrad), and complex parameters (equal
to torch, and within the one-step bound of ``bounded_run`` on the ``view_as_real`` flattening).

``python tests/test_conformance_torch.py`` prints the table of counts.
"""

from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import mpmath
import pytest
import torch

from optproof.derivations import rule as get_rule
from optproof.reference import bounded_run
from torch_compat import (
    NAMES,
    classes,
    common_optimizers,
    default_dtype,
    extra_group_keys,
    make_params,
    max_ulps,
    optim_info,
    random_grads,
    run,
    run_steps,
    same_bits,
    state_tensors,
)

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")

STEPS = 5
#: float64 ULPs allowed per step taken (observed on CPU: 0 for every configuration)
ULPS_PER_STEP = 4
#: D2: torch's float32 per-step scalars, relative to the larger value (a few float32 ULPs of
#: the step size, which is much smaller than the value: generous, the oracle is the check)
D2_RTOL = 2.0**-16
RULES = {"Adam": "adam", "AdamW": "adamw", "SGD": "sgd", "Adagrad": "adagrad",
         "Adadelta": "adadelta", "RMSprop": "rmsprop", "NAdam": "nadam"}


def float32_scalars(kwargs: dict[str, Any]) -> bool:
    """Configurations where torch computes per-step scalars in float32 (deviation D2)."""
    if kwargs.get("capturable"):
        return True
    values = [kwargs.get("lr"), *kwargs.get("betas", ())]
    return any(isinstance(v, torch.Tensor) and v.dtype != torch.float64 for v in values)


def within_trajectory_bound(name: str, group: dict[str, Any], starts, grads, finals) -> str:
    """'' if every final param element lies within ``bounded_run``'s float64 trajectory
    bound from ``starts`` under ``grads`` (one list per step), else the first violation."""
    spec = get_rule(RULES[name])
    hyper = {k: v.item() if isinstance(v, torch.Tensor) else v
             for k, v in group.items() if k in spec.defaults}
    if "betas" in hyper:
        hyper["betas"] = tuple(b.item() if isinstance(b, torch.Tensor) else b
                               for b in group["betas"])
    for i, (start, final) in enumerate(zip(starts, finals, strict=True)):
        flat = lambda t: t.detach().cpu().reshape(-1).tolist()  # noqa: E731
        record = bounded_run(RULES[name], hyper, flat(start), [flat(g[i]) for g in grads],
                             "float64")[-1]
        for x, (exact, bound) in zip(flat(final), record["param"], strict=True):
            if not abs(mpmath.mpf(x) - exact) <= bound:
                return f"param {i}: {x} vs exact {exact} beyond bound {bound}"
    return ""


def float64_default(name: str, kwargs: dict[str, Any]) -> bool:
    """Compare under the float64 default dtype: NAdam (D1), differentiable Adam/AdamW (D2)."""
    return name == "NAdam" or (name in ("Adam", "AdamW") and bool(kwargs.get("differentiable")))


@dataclass
class Outcome:
    desc: str
    kwargs: dict[str, Any]
    status: str  # "passed" | "unsupported" | "failed"
    detail: str = ""


@dataclass
class Counts:
    name: str
    device: str
    outcomes: list[Outcome] = field(default_factory=list)

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    def line(self) -> str:
        return (f"{self.name:9s} {self.device:5s} run {len(self.outcomes):3d}  "
                f"passed {len(self.of('passed')):3d}  unsupported "
                f"{len(self.of('unsupported')):3d}  failed {len(self.of('failed')):3d}")


def _unsupported(ours_cls, kwargs: dict[str, Any], device: str) -> str | None:
    """Why optproof rejects this configuration by design, or None if it accepts it."""
    probe = [torch.zeros(2, dtype=torch.float64, device=device)]
    ours_cls(probe, **copy.deepcopy(kwargs))  # raises for a configuration rejected by design
    return None


def compare(name: str, kwargs: dict[str, Any], device: str, *, steps: int = STEPS,
            dtype: torch.dtype = torch.float64) -> str:
    """'' if optproof matches torch on ``kwargs`` after ``steps`` steps, else what differs."""
    ours_cls, torch_cls = classes(name)
    # differentiable steps run under autograd: leaf params must not require grad there
    requires_grad = not kwargs.get("differentiable")
    results = []
    for cls in (ours_cls, torch_cls):
        params = make_params(0, dtype=dtype, device=device)
        for p in params:
            p.requires_grad_(requires_grad)
        opt = cls(params, **copy.deepcopy(kwargs))
        run_steps(opt, params, random_grads(0), range(steps))
        results.append((params, opt))
    (p_ours, o_ours), (p_torch, o_torch) = results
    s_ours, s_torch = state_tensors(o_ours), state_tensors(o_torch)
    if s_ours.keys() != s_torch.keys():
        return f"state keys {sorted(s_ours)} != torch's {sorted(s_torch)}"
    g_ours, g_torch = (o.state_dict()["param_groups"] for o in (o_ours, o_torch))
    for go, gt in zip(g_ours, g_torch, strict=True):
        if set(gt) - set(go) or extra_group_keys(go, gt):
            return f"param_group keys {sorted(go)} vs torch's {sorted(gt)}"
        differ = [k for k in gt if k != "params" and not _same_value(go[k], gt[k])]
        if differ:
            return f"param_group values differ: {[(k, go[k], gt[k]) for k in differ]}"
    if float32_scalars(kwargs):
        starts = make_params(0, dtype=dtype, device=device)
        grads = [random_grads(0)(k, starts) for k in range(steps)]
        why = within_trajectory_bound(name, o_ours.param_groups[0], starts, grads, p_ours)
        if why:
            return f"D2 configuration: optproof outside the float64 trajectory bound: {why}"
        for a, b in zip([*p_ours, *s_ours.values()], [*p_torch, *s_torch.values()]):
            if not torch.allclose(a, b, rtol=D2_RTOL, atol=0.0, equal_nan=True):
                return f"D2 configuration: torch beyond rtol {D2_RTOL} of optproof"
        return ""
    limit = ULPS_PER_STEP * steps
    worst = max(max_ulps(p_ours, p_torch), max_ulps(list(s_ours.values()), list(s_torch.values())))
    if worst > limit:
        return f"differs from torch by {worst:.3g} float64 ULPs (> {limit})"
    return ""


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.shape == b.shape and torch.equal(a.cpu(), b.cpu()))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)


def configurations(name: str, device: str) -> list:
    """torch's configurations; where torch's generator leaves ``foreach`` out (a device
    without foreach kernels: CPU) each base configuration is added once more with
    ``foreach=True`` — both libraries run their foreach path on CPU too."""
    co = common_optimizers()
    info = optim_info(name)
    configs = co._get_optim_inputs_including_global_cliquey_kwargs(device, torch.float64, info)
    if "foreach" in info.supported_impls and not any(c.kwargs.get("foreach") for c in configs):
        for base in info.optim_inputs_func(device):
            configs.append(co.OptimizerInput(
                params=None, kwargs={**copy.deepcopy(base.kwargs), "foreach": True},
                desc=f"{base.desc} & foreach (added on {device})"))
    return configs


def conformance(name: str, device: str) -> Counts:
    """Run every shipped configuration of ``name`` on ``device``; the outcome of each."""
    counts = Counts(name, device)
    ours_cls, _ = classes(name)
    for config in configurations(name, device):
        kwargs = config.kwargs
        try:
            reason = _unsupported(ours_cls, kwargs, device)
        except Exception as exc:  # noqa: BLE001 - a construction failure is a finding
            counts.outcomes.append(Outcome(config.desc, kwargs, "failed",
                                           f"construction raised {exc!r}"))
            continue
        if reason is not None:
            counts.outcomes.append(Outcome(config.desc, kwargs, "unsupported", reason))
            continue
        try:
            with default_dtype(torch.float64) if float64_default(name, kwargs) else _nothing():
                detail = compare(name, kwargs, device)
        except Exception as exc:  # noqa: BLE001
            detail = f"raised {exc!r}"
        counts.outcomes.append(Outcome(config.desc, kwargs,
                                       "failed" if detail else "passed", detail))
    return counts


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("name", NAMES)
def test_shipped_configurations_match_torch(name, device, record_property):
    counts = conformance(name, device)
    record_property("counts", counts.line())
    print(counts.line())
    failed = counts.of("failed")
    assert not failed, "\n".join(f"{o.desc} {o.kwargs}: {o.detail}" for o in failed)
    assert counts.outcomes, f"torch ships no configurations for {name}?"
    # unsupported is exactly: fused=True while fused is unavailable
    for o in counts.of("unsupported"):
        assert o.kwargs.get("fused"), o
    assert any(o.kwargs.get("differentiable") for o in counts.of("passed"))
    for o in counts.of("unsupported"):
        print(f"  unsupported: {o.desc}: {o.detail}")


# --------------------------------------------------------------------------- D1: NAdam


def test_nadam_mu_product_deviation(monkeypatch):
    """Under the float32 default dtype torch rounds Πₜ to float32 even for float64 params.
    Emulating that rounding in optproof reproduces torch exactly; without it optproof stays
    inside the float64 trajectory bound (the deviation is torch's rounding, not ours)."""
    import optproof.torch_impl.nadam as nadam

    ours_cls, torch_cls = classes("NAdam")
    kwargs = {"weight_decay": 0.1, "momentum_decay": 6e-3}
    grads = random_grads(3)
    p_torch = make_params(3)
    run_steps(torch_cls(p_torch, **kwargs), p_torch, grads, range(STEPS))

    with monkeypatch.context() as patch:  # torch's float32 Πₜ
        patch.setattr(nadam, "MU_PRODUCT_DTYPE", torch.float32)
        p_emul = make_params(3)
        run_steps(ours_cls(p_emul, **kwargs), p_emul, grads, range(STEPS))
    assert all(same_bits(a, b) for a, b in zip(p_emul, p_torch))
    p_plain = make_params(3)
    run_steps(ours_cls(p_plain, **kwargs), p_plain, grads, range(STEPS))
    assert not all(same_bits(a, b) for a, b in zip(p_plain, p_torch))  # D1 is real

    p_ours = make_params(3, shapes=((5,),))
    start = p_ours[0].detach().clone()
    run_steps(ours_cls(p_ours, **kwargs), p_ours, grads, range(STEPS))
    gs = [grads(k, p_ours)[0].tolist() for k in range(STEPS)]
    final = bounded_run("nadam", kwargs, start.tolist(), gs, "float64")[-1]["param"]
    for x, (exact, bound) in zip(p_ours[0].tolist(), final):
        assert abs(mpmath.mpf(x) - exact) <= bound


D2_EXTRA = {"Adam": {"weight_decay": 0.1, "decoupled_weight_decay": True},
            "AdamW": {"amsgrad": True}, "Adagrad": {"lr_decay": 0.1},
            "NAdam": {"weight_decay": 0.1}, "SGD": {"momentum": 0.9}}


@pytest.mark.parametrize("name", NAMES)
def test_float32_tensor_lr_deviation(name):
    """D2 on CPU: a float32 Tensor lr is read with ``.item()``: optproof's run equals its run
    with the Python float, stays inside the float64 trajectory bound, and torch (float32
    step-size arithmetic) stays within ``D2_RTOL``; with a float64 Tensor lr optproof and
    torch agree bit for bit."""
    ours_cls, torch_cls = classes(name)
    lr32 = torch.tensor(0.01)
    kwargs = {"lr": lr32, **D2_EXTRA.get(name, {})}
    with default_dtype(torch.float64) if name == "NAdam" else _nothing():
        p_ours, o_ours = run(ours_cls, kwargs)
        p_float, _ = run(ours_cls, {**kwargs, "lr": lr32.item()})
        p_torch, _ = run(torch_cls, kwargs)
        p64_ours, _ = run(ours_cls, {**kwargs, "lr": lr32.double()})
        p64_torch, _ = run(torch_cls, {**kwargs, "lr": lr32.double()})
    assert all(same_bits(a, b) for a, b in zip(p_ours, p_float))
    assert all(same_bits(a, b) for a, b in zip(p64_ours, p64_torch))
    starts = make_params(0)
    grads = [random_grads(0)(k, starts) for k in range(STEPS)]
    assert not within_trajectory_bound(name, o_ours.param_groups[0], starts, grads, p_ours)
    for a, b in zip(p_ours, p_torch):
        torch.testing.assert_close(a, b, rtol=D2_RTOL, atol=0.0)


# --------------------------------------------------------------------------- error inputs


def _raises_as_described(cls, error_input) -> str:
    """'' if ``cls`` raises/warns as the ErrorOptimizerInput says, else what happened."""
    co = common_optimizers()
    config = error_input.optimizer_error_input
    kwargs = copy.deepcopy(config.kwargs)
    expected, pattern = error_input.error_type, error_input.error_regex
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opt = cls(config.params, **kwargs)
            if error_input.error_on == co.OptimizerErrorEnum.STEP_ERROR:
                opt.step()
    except Exception as exc:  # noqa: BLE001
        if (not issubclass(expected, Warning) and isinstance(exc, expected)
                and re.search(pattern, str(exc))):
            return ""
        return f"raised {type(exc).__name__}: {exc}"
    if issubclass(expected, Warning) and any(
            issubclass(w.category, expected) and re.search(pattern, str(w.message))
            for w in caught):
        return ""
    return f"no {expected.__name__} matching {pattern!r} (warnings: " \
           f"{[str(w.message) for w in caught]})"


def error_inputs(name: str, device: str) -> list:
    return optim_info(name).optim_error_inputs_func(device=device, dtype=torch.float32)


@pytest.mark.parametrize("name", NAMES)
def test_error_inputs_raise_like_torch(name, device, record_property):
    ours_cls, torch_cls = classes(name)
    inputs = error_inputs(name, device)
    assert inputs
    problems = []
    for e in inputs:
        desc = e.optimizer_error_input.desc
        assert not _raises_as_described(torch_cls, e), f"torch itself: {desc}"
        why = _raises_as_described(ours_cls, e)
        if why:
            problems.append(f"{desc}: {why}")
    record_property("error_inputs", f"{name} {device} run {len(inputs)} "
                                    f"passed {len(inputs) - len(problems)}")
    print(f"{name} {device}: error inputs run {len(inputs)} passed {len(inputs) - len(problems)}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- sparse


SPARSE_CASES = [(n, {}) for n in NAMES] + [
    ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True, "maximize": True}),
    ("SGD", {"weight_decay": 0.1}), ("Adagrad", {"lr_decay": 0.1, "maximize": True}),
    ("Adagrad", {"weight_decay": 0.1}), ("Adam", {"amsgrad": True}),
]


def _sparse_grad(k: int, params):
    gen = torch.Generator().manual_seed(100 + k)
    out = []
    for p in params:  # rows 0 and 2 (row 2 twice: uncoalesced) of a (4, 3) param
        values = torch.randn(3, *p.shape[1:], generator=gen, dtype=p.dtype)
        out.append(torch.sparse_coo_tensor(torch.tensor([[0, 2, 2]]), values, p.shape))
    return out


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name,kwargs", SPARSE_CASES)
def test_sparse_gradients_like_torch(name, kwargs, foreach):
    results = []
    for cls in classes(name):
        params = make_params(0, shapes=((4, 3),))
        opt = cls(params, **kwargs, foreach=foreach)
        try:
            run_steps(opt, params, _sparse_grad, range(3))
        except Exception as exc:  # noqa: BLE001
            results.append((type(exc), str(exc)))
        else:
            results.append(params[0].detach().clone())
    ours, theirs = results
    if isinstance(theirs, tuple):
        assert ours == theirs
    else:
        assert not isinstance(ours, tuple), ours
        assert same_bits(ours, theirs)


# --------------------------------------------------------------------------- complex

COMPLEX_CASES = [
    ("Adam", {}), ("Adam", {"amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("Adam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.01}), ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("Adagrad", {"initial_accumulator_value": 0.1, "lr_decay": 0.01}),
    ("Adadelta", {"weight_decay": 0.1}), ("RMSprop", {"centered": True, "momentum": 0.5}),
    ("RMSprop", {"maximize": True}), ("NAdam", {"weight_decay": 0.1}),
    ("NAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
]
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64])
@pytest.mark.parametrize("name,kwargs", COMPLEX_CASES)
def test_complex_params_match_torch(name, kwargs, dtype, foreach):
    ours_cls, torch_cls = classes(name)
    shapes = ((3, 2), (4,))
    with default_dtype(torch.float64) if name == "NAdam" else _nothing():
        p_ours, o_ours = run(ours_cls, {**kwargs, "foreach": foreach}, dtype=dtype, shapes=shapes)
        p_torch, o_torch = run(torch_cls, {**kwargs, "foreach": foreach}, dtype=dtype,
                               shapes=shapes)
    assert all(same_bits(a, b) for a, b in zip(p_ours, p_torch))
    s_ours, s_torch = state_tensors(o_ours), state_tensors(o_torch)
    assert s_ours.keys() == s_torch.keys()
    assert all(same_bits(s_ours[k], s_torch[k]) for k in s_ours)


@pytest.mark.parametrize("name,kwargs", COMPLEX_CASES)
def test_complex_one_step_within_oracle_bound(name, kwargs):
    """One step on a complex128 parameter, checked element by element on its real view
    (``view_as_real`` flattening) against the exact reference and its derived bound."""
    ours_cls, _ = classes(name)
    (p,) = make_params(5, dtype=torch.complex128, shapes=((3, 2),))
    start = torch.view_as_real(p.detach()).reshape(-1).tolist()
    grad = random_grads(5)(0, [p])[0]
    p.grad = grad
    opt = ours_cls([p], **kwargs)
    opt.step()
    spec = get_rule(RULES[name])
    group = opt.param_groups[0]
    hyper = {k: group[k] for k in spec.defaults if k in group}
    record = bounded_run(RULES[name], hyper, start,
                         [torch.view_as_real(grad).reshape(-1).tolist()], "float64")[0]
    got = torch.view_as_real(p.detach()).reshape(-1).tolist()
    for x, (exact, bound) in zip(got, record["param"], strict=True):
        assert abs(mpmath.mpf(x) - exact) <= bound, (x, exact, bound)


if __name__ == "__main__":  # the table of counts
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for name in NAMES:
            counts = conformance(name, device)
            errs = error_inputs(name, device)
            bad = sum(bool(_raises_as_described(classes(name)[0], e)) for e in errs)
            print(f"{counts.line()}   error inputs run {len(errs):2d} passed {len(errs) - bad:2d}")
            for o in counts.of("unsupported") + counts.of("failed"):
                print(f"    {o.status}: {o.desc}: {o.detail[:110]}")
