"""``differentiable=True``: torch.optim 2.13's semantics, and the derivatives it gives checked
against SymPy's.

**Like torch.** With ``differentiable=True`` the step runs with autograd enabled and updates
the (non-leaf) params in place on the graph; only the for-loop path exists (``foreach=True``
raises torch's ``AssertionError``, SGD excepted, ``fused=True`` torch's ``RuntimeError``).
On every configuration below the values are bit for bit torch's, and so are the gradients
through k steps wherever torch's backward runs and is right (float64, under the float64
default dtype: torch takes Adam's bias corrections from the ``step`` tensor, in the default
scalar dtype, where optproof uses float64 as its capturable path does; D2 in
``test_conformance_torch``).

**Beyond torch.** ``optproof.reference.bounded_run(..., derivative=h)`` differentiates each
rule's SymPy spec (``sympy.diff`` of the step's closed forms, chained through the steps in
forward mode) and evaluates ∂θₜ/∂h in mpmath, for h = θ₀ (the starting parameter), ``lr``,
``weight_decay`` and Adam's ``betas``; with it comes a derived bound on the error of any
float64 evaluation of the chain rule through the kernel's own trajectory (the running error
analysis of ``optproof.reference.bounds`` applied to the derivative's expressions, with the
trajectory's own bounds as operand errors; see ``bounded_run``). The hypothesis test asserts
that autograd through k optproof steps lies within that bound for every rule, and checks
torch's autograd the same way, where torch can differentiate: torch cannot take a Tensor
``lr``/``weight_decay`` into Adagrad, Adadelta, RMSprop, NAdam (L2) (``TypeError``), and its
backward fails (a saved tensor modified in place) for SGD with momentum and a Tensor ``lr``,
NAdam with a Tensor ``lr``, AMSGrad with L2 decay or Tensor ``betas`` (v is saved by the
maximum), and centered RMSprop with L2 decay. optproof differentiates all of them.

torch's derivatives that run but are wrong (``TORCH_WRONG``): SGD's first momentum buffer is
``grad.detach().clone()``, so with L2 decay (g₁ = ∇f + λθ₀) ∂θₜ/∂θ₀ and ∂θₜ/∂λ lose the
b₁ path (``test_torch_sgd_first_buffer_is_detached`` pins it down); optproof keeps b₁ = g₁ on
the graph. torch's EMA by ``lerp`` loses a β below 1/2 (``oracle.LERP``; under
differentiable also β₂ when it is a Tensor), its values and derivatives are then not
compared; optproof's EMA keeps it (``ema_``), and its derivatives are compared there too.
"""

from __future__ import annotations

import re

import mpmath
import pytest
import torch
from hypothesis import given, note, settings
from hypothesis import strategies as st

from optproof.derivations import rule as get_rule
from optproof.reference import bounded_run
from optproof.testing import strategies
from oracle import oracle_examples
from torch_compat import NAMES, classes, default_dtype, same_bits

RULES = {"Adam": "adam", "AdamW": "adamw", "SGD": "sgd", "Adagrad": "adagrad",
         "Adadelta": "adadelta", "RMSprop": "rmsprop", "NAdam": "nadam"}
#: what each class is differentiated by: θ₀ ("param") and its Tensor hyperparameters
DERIVATIVES = {name: ("param", "lr", "weight_decay") for name in NAMES}
DERIVATIVES.update({name: ("param", "lr", "weight_decay", "betas[0]", "betas[1]")
                    for name in ("Adam", "AdamW")})
#: torch's errors when it cannot differentiate a configuration (see the module docstring)
TORCH_CANNOT = re.compile(r"must be Number, not Tensor|modified by an inplace operation")


def run(cls, kwargs: dict, wrt: str, start: list[float], grads: list[list[float]], *,
        split: bool = False):
    """Run ``cls(differentiable=True)`` from ``start`` through ``grads`` (float64), with the
    leaf ``wrt`` (θ₀, or the hyperparameter as a 0-d tensor that requires grad); returns
    (final values, per element ∂θₖ[i]/∂wrt by autograd).

    ``split``: each element is a parameter tensor of its own. A hyperparameter's gradient
    through one tensor is a sum over its elements, and an element whose chain rule is 0·∞
    (∂√v at v = 0 times ∂v = 0: a gradient that has been 0 throughout) makes that sum, and so
    every element's derivative, NaN, in torch as in optproof; per-element tensors keep the
    other elements' derivatives defined."""
    kwargs = dict(kwargs)
    theta0 = torch.tensor(start, dtype=torch.float64, requires_grad=wrt == "param")
    if wrt == "param":
        leaf = theta0
    elif wrt.startswith("betas"):
        betas = [torch.tensor(b, dtype=torch.float64, requires_grad=True) for b in kwargs["betas"]]
        kwargs["betas"], leaf = tuple(betas), betas[int(wrt[len("betas[")])]
    else:
        leaf = kwargs[wrt] = torch.tensor(kwargs[wrt], dtype=torch.float64, requires_grad=True)
    # non-leaf params: the steps are recorded on the graph
    params = [theta0[i].clone() for i in range(len(start))] if split else [theta0.clone()]
    opt = cls(params, differentiable=True, **kwargs)
    for grad in grads:
        grad = torch.tensor(grad, dtype=torch.float64)
        for i, param in enumerate(params):
            param.grad = grad[i].clone() if split else grad  # torch may modify p.grad
        opt.step()
    final = torch.stack(params) if split else params[0]
    derivatives = []
    for i in range(len(start)):
        (d,) = torch.autograd.grad(params[i] if split else final[i], leaf, retain_graph=True)
        derivatives.append(d[i] if wrt == "param" else d)
    return final.detach(), torch.stack(derivatives) if derivatives else torch.zeros(0)


# --------------------------------------------------------------------------- like torch

CASES = [
    ("SGD", {"lr": 0.1}), ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1}),
    ("Adadelta", {"lr": 0.5, "weight_decay": 0.1, "maximize": True}),
    ("RMSprop", {"lr": 0.01, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}), ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "maximize": True}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
]
START = [0.5, -1.25, 2.0, 0.75, -0.1]
GRADS = [[0.3, -0.2, 1.0, 0.5, -0.7], [0.1, 0.4, -2.0, 0.5, 0.2], [-0.5, 0.25, 0.7, -0.5, 0.9],
         [0.2, 0.2, -0.1, 1.5, -0.3]]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_values_and_gradients_are_torchs(name, kwargs):
    ours_cls, torch_cls = classes(name)
    compared = 0
    for wrt in DERIVATIVES[name]:
        if wrt.startswith("betas") and kwargs.get("amsgrad"):
            continue  # torch's backward fails there (module docstring); the oracle covers it
        if wrt == "weight_decay" and not kwargs.get("weight_decay"):
            continue  # the term is skipped at 0
        with default_dtype(torch.float64):
            ours = run(ours_cls, {"betas": (0.9, 0.999), **kwargs} if "betas" in wrt else kwargs,
                       wrt, START, GRADS)
            try:
                theirs = run(torch_cls, {"betas": (0.9, 0.999), **kwargs} if "betas" in wrt
                             else kwargs, wrt, START, GRADS)
            except (TypeError, RuntimeError) as exc:
                assert TORCH_CANNOT.search(str(exc)), exc
                continue
        assert same_bits(ours[0], theirs[0]), (wrt, ours[0], theirs[0])
        assert same_bits(ours[1], theirs[1]), (wrt, ours[1], theirs[1])
        compared += 1
    assert compared >= 1


def test_paths_and_flags_like_torch():
    for name in NAMES:
        ours_cls, torch_cls = classes(name)
        for cls in (ours_cls, torch_cls):
            leaf = torch.randn(3, requires_grad=True)
            param = leaf.clone()
            param.grad = torch.randn(3)
            if name != "SGD":  # torch: "_foreach ops don't support autograd"
                with pytest.raises(AssertionError, match="_foreach ops don't support autograd"):
                    cls([param], differentiable=True, foreach=True).step()
            if name in ("SGD", "Adam", "AdamW", "Adagrad"):
                with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
                    cls([param], differentiable=True, fused=True)
            opt = cls([leaf], differentiable=True)  # a leaf that requires grad: autograd says no
            leaf.grad = torch.randn(3)
            with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
                opt.step()
            opt = cls([param], differentiable=True)  # foreach=None: the for-loop path
            opt.step()
            assert param.grad_fn is not None
            assert opt.defaults["differentiable"] is True
        # SGD's foreach path runs under autograd in both, with the same values and gradients
    results = []
    for cls in classes("SGD"):
        leaf = torch.tensor(START, dtype=torch.float64, requires_grad=True)
        param = leaf.clone()
        opt = cls([param], lr=0.1, momentum=0.9, nesterov=True, differentiable=True, foreach=True)
        for grad in GRADS:
            param.grad = torch.tensor(grad, dtype=torch.float64)
            opt.step()
        results.append((param.detach(), torch.autograd.grad(param.sum(), leaf)[0]))
    assert same_bits(results[0][0], results[1][0]) and same_bits(results[0][1], results[1][1])


def test_errors_of_switched_groups_like_torch():
    """A group switched to fused after construction, and a ``step`` that requires grad."""
    for name, text in (("Adam", "Adam with fused=True does not support differentiable=True"),
                       ("Adagrad", "adagrad with fused=True does not support differentiable=True")):
        for cls in classes(name):
            param = torch.randn(3, requires_grad=True).clone()
            opt = cls([param], differentiable=True)
            opt.param_groups[0]["fused"] = True
            param.grad = torch.randn(3)
            with pytest.raises(RuntimeError, match=text):
                opt.step()
    for cls in classes("Adam"):
        param = torch.randn(3, requires_grad=True).clone()
        opt = cls([param], differentiable=True)
        param.grad = torch.randn(3)
        opt.step()
        opt.state[param]["step"].requires_grad_(True)
        with pytest.raises(RuntimeError, match="`requires_grad` is not supported for `step`"):
            opt.step()


# --------------------------------------------------------------------------- beyond torch


def _within(derivs: torch.Tensor, record) -> str:
    """'' if each derivative lies within its bound of the exact one, else the first miss."""
    for i, (x, (exact, bound)) in enumerate(zip(derivs.tolist(), record, strict=True)):
        if mpmath.isfinite(bound) and not abs(mpmath.mpf(x) - exact) <= bound:
            return f"element {i}: autograd {x!r}, exact {mpmath.nstr(exact, 20)}, bound " \
                   f"{mpmath.nstr(bound, 3)}"
    return ""


def torch_wrong(name: str, kwargs: dict, wrt: str) -> str | None:
    """Why torch's derivative (or value) is not expected within the bound, or None."""
    if name == "SGD" and kwargs.get("momentum") and kwargs.get("weight_decay") \
            and not kwargs.get("decoupled_weight_decay") and wrt in ("param", "weight_decay"):
        return "first momentum buffer detached"
    if name in ("Adam", "AdamW", "NAdam") and kwargs["betas"][0] < 0.5:
        return "lerp loses beta1 < 1/2"
    if name in ("Adam", "AdamW") and wrt.startswith("betas") and kwargs["betas"][1] < 0.5:
        return "lerp loses beta2 < 1/2 (torch's v.lerp_(g², 1 - beta2) for a Tensor beta2)"
    if name == "RMSprop" and kwargs.get("centered") and kwargs["alpha"] < 0.5:
        return "lerp loses alpha < 1/2"
    return None


@st.composite
def _problems(draw, name: str, wrt: str):
    kwargs = draw(strategies.hyperparameters(name))
    if wrt == "weight_decay":  # at 0 the term is skipped (torch's ``if weight_decay != 0``)
        kwargs["weight_decay"] = draw(strategies.weight_decays().filter(lambda x: x > 0))
    n = draw(st.integers(1, 4))
    start = draw(st.lists(strategies.values(torch.float64), min_size=n, max_size=n))
    grads = draw(strategies.gradient_sequences(n, draw(st.integers(1, 3)), torch.float64))
    return kwargs, start, grads


@pytest.mark.parametrize("name,wrt", [(n, w) for n in NAMES for w in DERIVATIVES[n]])
@settings(max_examples=oracle_examples())
@given(data=st.data())
def test_derivatives_within_derived_bound(name, wrt, data):
    kwargs, start, grads = data.draw(_problems(name, wrt))
    spec_hyper = {k: v for k, v in kwargs.items() if k in get_rule(RULES[name]).defaults}
    records = bounded_run(RULES[name], spec_hyper, start, grads, "float64", derivative=wrt)
    exact = records[-1]["d_param"]
    note(f"exact {[(mpmath.nstr(x, 17), mpmath.nstr(e, 3)) for x, e in exact]}")
    ours_cls, torch_cls = classes(name)
    with default_dtype(torch.float64):
        _, derivs = run(ours_cls, kwargs, wrt, start, grads, split=True)
        why = _within(derivs, exact)
        assert not why, f"optproof: {why}"
        if torch_wrong(name, kwargs, wrt):
            return
        try:
            _, derivs = run(torch_cls, kwargs, wrt, start, grads, split=True)
        except (TypeError, RuntimeError) as exc:
            assert TORCH_CANNOT.search(str(exc)), exc
            return
    why = _within(derivs, exact)
    assert not why, f"torch: {why}"


def test_torch_sgd_first_buffer_is_detached():
    """torch's b₁ = ``grad.detach().clone()`` drops ∂b₁/∂θ₀ = λ under L2 decay: its ∂θ₂/∂θ₀
    lies outside the bound, optproof's within it."""
    kwargs = {"lr": 0.5, "momentum": 0.9, "weight_decay": 0.5}
    start, grads = [1.0, -2.0], [[0.25, 0.5], [0.5, -0.25]]
    exact = bounded_run("sgd", kwargs, start, grads, "float64", derivative="param")[-1]["d_param"]
    ours_cls, torch_cls = classes("SGD")
    with default_dtype(torch.float64):
        assert not _within(run(ours_cls, kwargs, "param", start, grads)[1], exact)
        assert _within(run(torch_cls, kwargs, "param", start, grads)[1], exact)
