"""The bound can fail: deliberately wrong kernels are rejected, and the bound is not vacuous.

``ToyAdam`` is a small, honest Adam kernel (the textbook grouping β·m + (1 − β)·g, float64
scalars, one rounding per operation in the tensor's dtype) with switches that each plant one
known mistake. The correct toy must pass the oracle; every planted mistake must be caught on
a well-conditioned problem. Then: in a well-conditioned float32 case the bound on the
parameter is a few ULPs, far below 100, so passing it means something.
"""

from __future__ import annotations

import random

import mpmath
import pytest
import torch
import oracle
from optproof.reference import bounded_run, precision, ulp

ADAM = oracle.RuleMap("adam")


class ToyAdam(torch.optim.Optimizer):
    """Adam (torch ``adam`` rule) with planted mistakes, for negative controls."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False, *, mistake: str | None = None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))
        self.mistake = mistake

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state_dtype = torch.float32 if self.mistake == "float32-state" else p.dtype
                    state["exp_avg"] = torch.zeros_like(p, dtype=state_dtype)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=state_dtype)
                state["step"] += 1
                t = int(state["step"])
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"]:
                    g = g + group["weight_decay"] * p
                g = g.to(state["exp_avg"].dtype)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                bc1 = 1 - b1**t
                bc2 = 1 - b2**t
                if self.mistake == "no-bias-correction2":
                    bc2 = 1.0
                if self.mistake == "eps-inside":
                    denom = (v / bc2 + group["eps"]).sqrt()
                else:
                    denom = (v / bc2).sqrt().add_(group["eps"])
                update = (m / bc1) / denom
                if self.mistake == "bfloat16-rounding":
                    update = update.to(torch.bfloat16).to(p.dtype)
                p.add_(update.to(p.dtype), alpha=-group["lr"])


def _problem(dtype, steps=3, n=16, seed=0):
    """A well-conditioned problem: params and grads of moderate size, no cancellation."""
    rnd = random.Random(seed)
    params = torch.tensor([rnd.uniform(0.5, 2.0) * rnd.choice([-1, 1]) for _ in range(n)],
                          dtype=dtype)
    grads = [torch.tensor([rnd.uniform(0.1, 1.0) * rnd.choice([-1, 1]) for _ in range(n)],
                          dtype=dtype) for _ in range(steps)]
    return params, grads


def _run(dtype, mistake=None, hyper=None, check="one_step", steps=3):
    p, grads = _problem(dtype, steps)
    opt = ToyAdam([p], **(hyper or {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}),
                  mistake=mistake)
    if check == "trajectory":
        return oracle.trajectory(opt, ADAM, lambda k: setattr(p, "grad", grads[k]), steps)
    report = oracle.Report()
    for k in range(steps):
        report.merge(oracle.one_step(opt, ADAM, lambda: setattr(p, "grad", grads[k])))
    return report


@pytest.mark.parametrize("check", ["one_step", "trajectory"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16],
                         ids=str)
def test_honest_toy_passes(dtype, check):
    report = _run(dtype, check=check)
    assert report.checked > 0
    report.assert_ok()


MISTAKES = [
    # (mistake, dtype, hyperparameters where it shows)
    ("eps-inside", torch.float64, {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-2}),
    ("eps-inside", torch.float32, {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-2}),
    ("no-bias-correction2", torch.float64, None),
    ("no-bias-correction2", torch.float16, None),
    ("float32-state", torch.float64, None),
    ("bfloat16-rounding", torch.float32, None),
    ("bfloat16-rounding", torch.float64, None),
]


@pytest.mark.parametrize("mistake,dtype,hyper", MISTAKES,
                         ids=[f"{m}-{str(d).removeprefix('torch.')}" for m, d, _ in MISTAKES])
@pytest.mark.parametrize("check", ["one_step", "trajectory"])
def test_wrong_kernel_is_rejected(mistake, dtype, hyper, check):
    report = _run(dtype, mistake, hyper, check)
    assert not report.ok, f"planted mistake {mistake!r} passed the oracle: {report.summary()}"
    with pytest.raises(AssertionError, match="outside the derived bound"):
        report.assert_ok()


def test_torch_lerp_loses_small_beta1():
    """Finding (documented here as a negative control on real kernels): torch's EMA
    ``exp_avg.lerp_(grad, 1 − β₁)`` recovers β₁ as 1 − fl(1 − β₁), with an absolute error of
    u instead of the relative error u the rule's β₁·m has; for β₁ = 1e-8 and g = 0 the float32
    result is 0 instead of β₁·m. The oracle rejects it; the textbook grouping passes."""
    p = torch.tensor([1.0, -1.0])
    opt = torch.optim.Adam([p], lr=1e-3, betas=(1e-8, 0.999), foreach=False)
    p.grad = torch.tensor([1.0, -1.0])
    opt.step()
    report = oracle.one_step(opt, ADAM, lambda: setattr(p, "grad", torch.zeros(2)))
    assert not report.ok
    assert max(e.ratio for e in report.violations) > 1e3
    toy_p = torch.tensor([1.0, -1.0])
    toy = ToyAdam([toy_p], lr=1e-3, betas=(1e-8, 0.999))
    toy_p.grad = torch.tensor([1.0, -1.0])
    toy.step()
    oracle.one_step(toy, ADAM, lambda: setattr(toy_p, "grad", torch.zeros(2))).assert_ok()


@pytest.mark.parametrize("dtype,limit", [(torch.float32, 100), (torch.float64, 100),
                                         (torch.bfloat16, 100), (torch.float16, 100)], ids=str)
def test_bound_is_not_vacuous(dtype, limit):
    """Well-conditioned Adam: the one-step bound on every parameter is below ``limit`` ULPs
    (in practice a few), and torch's for-loop kernel is within it."""
    p, grads = _problem(dtype, steps=1)
    prec = precision(dtype)
    record = bounded_run("adam", {"lr": 1e-2}, p.double().tolist(),
                         [grads[0].double().tolist()], dtype)[0]
    ulps = [float(b / ulp(x, prec)) for x, b in record["param"]]
    assert max(ulps) < limit, f"bound up to {max(ulps):.3g} ULPs"
    assert all(mpmath.isfinite(b) for _, b in record["exp_avg"] + record["exp_avg_sq"])


@pytest.mark.parametrize("seed", range(3))
def test_float32_state_is_rejected_for_float64_params(seed):
    """Keeping a float64 parameter's moments in float32 (as torch NAdam keeps mu_product) is
    rejected even when every other operation is exact to float64."""
    p, grads = _problem(torch.float64, steps=1, seed=seed)
    opt = ToyAdam([p], lr=1e-2, betas=(0.9, 1 - 1e-6), eps=1e-12, mistake="float32-state")
    report = oracle.one_step(opt, ADAM, lambda: setattr(p, "grad", grads[0]))
    assert not report.ok
