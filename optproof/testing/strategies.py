"""Hypothesis strategies for testing optimizers against optproof's references.

This module is the one place where optproof's own test suite decides what "every input"
means, and it is public, for your suite too (``from optproof.testing import strategies``).
It generates:

* **hyperparameters** over each rule's whole valid domain and its edges, keyed by
  torch.optim's keyword names (`hyperparameters`): learning rates from 1e-8 to 10,
  β and ρ from 0 (and 1e-8) to 1 − 1e-8, eps 0 and from 1e-30 to 1, weight decay 0 and positive,
  momentum 0 and positive, dampening in [0, 1], and every boolean flag;
* **values** of a dtype (`values`): zeros, subnormals, normal numbers of every exponent
  up to the dtype's *safe cap* (`value_cap`), and their negatives;
* **tensor layouts** (`tensor_specs`): 0-d, empty, 1-d to 3-d, contiguous, transposed
  and strided (non-contiguous) views;
* **gradient sequences** (`gradient_sequences`): independent draws, repeats, sign flips,
  rescalings and all-zero steps;
* whole **problems** (`problems`): several tensors of mixed sizes in one or more
  parameter groups, each group with its own hyperparameters, and k steps of gradients.

Every float drawn is a Python float; `make_tensor` rounds it into the tensor's dtype.
Tests must read the values back from the tensors (not reuse the drawn floats) so that the
reference sees exactly what the kernel saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st

__all__ = [
    "DTYPES", "DTYPE_NAMES", "HYPERPARAMETERS", "LAYOUTS", "TensorSpec", "ParamCase", "GroupCase",
    "Problem", "value_cap", "values", "lrs", "decays", "epsilons", "weight_decays",
    "hyperparameters", "shapes", "tensor_specs", "gradient_sequences", "problems",
    "make_tensor",
]

#: the dtypes every kernel is tested in, widest first
DTYPES: tuple[torch.dtype, ...] = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
DTYPE_NAMES: dict[torch.dtype, str] = {d: str(d).removeprefix("torch.") for d in DTYPES}

# --------------------------------------------------------------------------- values


def value_cap(dtype: torch.dtype) -> float:
    """The largest magnitude drawn for parameters and gradients of ``dtype``.

    ``min(1e30, sqrt(finfo.max) / 16)``: 1e30 for float64, about 1.2e18 for float32 and
    bfloat16, 16 for float16. The cap is the dtype's *representable range* for the exact
    intermediates of the rules, not a filter on inputs that happen to fail: squares of
    gradients (Adam's v, Adagrad's sum, RMSprop's square average) must be finite numbers of
    the dtype, with a margin of 16² for sums of several such terms, weight decay and
    β-weighting. Beyond the cap the exact result is not representable, and an error bound
    on it is vacuous.
    """
    finfo = torch.finfo(dtype)
    return min(1e30, math.sqrt(finfo.max) / 16)


def _subnormal_exponent(dtype: torch.dtype) -> int:
    """Exponent of the smallest positive subnormal number of ``dtype``."""
    bits = {torch.float64: 52, torch.float32: 23, torch.bfloat16: 7, torch.float16: 10}[dtype]
    return int(round(math.log2(torch.finfo(dtype).smallest_normal))) - bits


@st.composite
def _magnitudes(draw, low_exponent: int, cap: float) -> float:
    """A positive number m·2ᵉ with e uniform over [low_exponent, log2(cap)], m in [1, 2)."""
    high = int(math.floor(math.log2(cap)))
    exponent = draw(st.integers(low_exponent, high))
    mantissa = draw(st.floats(1.0, 2.0, exclude_max=True))
    return min(math.ldexp(mantissa, exponent), cap)


def values(dtype: torch.dtype, *, cap: float | None = None, subnormal: bool = True,
           zero: bool = True) -> st.SearchStrategy[float]:
    """Floats for a tensor of ``dtype``: zero, subnormals (``subnormal``), normal numbers of
    every exponent up to ``cap`` (default `value_cap`) and the edges (the smallest
    subnormal and normal numbers, the cap itself), with either sign. Values of moderate size
    (|x| in [2⁻⁸, 2⁸]) are drawn more often, because that is where most training happens.
    """
    cap = value_cap(dtype) if cap is None else cap
    finfo = torch.finfo(dtype)
    low = _subnormal_exponent(dtype) if subnormal else int(round(math.log2(finfo.smallest_normal)))
    edges = [finfo.smallest_normal, cap, 1.0]
    if subnormal:
        edges.append(math.ldexp(1.0, _subnormal_exponent(dtype)))
    positive = st.one_of(
        _magnitudes(-8, min(cap, 256.0)),
        _magnitudes(low, cap),
        st.sampled_from(edges),
    )
    signed = st.builds(lambda m, negative: -m if negative else m, positive, st.booleans())
    return st.one_of(st.just(0.0), signed) if zero else signed


# --------------------------------------------------------------------------- hyperparameters


def _log_uniform(low: float, high: float) -> st.SearchStrategy[float]:
    """A float whose log is uniform in [log low, log high] (all decades equally likely)."""
    return st.floats(math.log(low), math.log(high)).map(
        lambda x: min(max(math.exp(x), low), high))


def lrs(low: float = 1e-8, high: float = 10.0) -> st.SearchStrategy[float]:
    """Learning rates from ``low`` to ``high``, log-uniform, plus both edges and 1e-3."""
    return st.one_of(st.sampled_from([low, 1e-3, high]), _log_uniform(low, high))


def decays() -> st.SearchStrategy[float]:
    """Decay factors β ∈ [0, 1): 0, the edges 1e-8 and 1 − 1e-8, common values, and
    uniform, near-0 (log-uniform) and near-1 (1 − log-uniform) draws."""
    return st.one_of(
        st.sampled_from([0.0, 1e-8, 0.5, 0.9, 0.99, 0.999, 1 - 1e-8]),
        st.floats(0.0, 1 - 1e-8),
        _log_uniform(1e-8, 0.5),
        _log_uniform(1e-8, 0.5).map(lambda x: 1.0 - x),
    )


def epsilons(low: float = 1e-30, high: float = 1.0) -> st.SearchStrategy[float]:
    """eps from ``low`` to ``high``, log-uniform, plus the edges, the usual 1e-8 and 0 (which
    torch.optim accepts: where the second moment is still 0 the exact step is 0/0, NaN, and
    the bound makes no claim)."""
    return st.one_of(st.sampled_from([0.0, low, 1e-8, high]), _log_uniform(low, high))


def weight_decays(high: float = 1.0) -> st.SearchStrategy[float]:
    """Weight decay: 0 (often), or log-uniform in [1e-8, ``high``]."""
    return st.one_of(st.just(0.0), st.sampled_from([1e-2, high]), _log_uniform(1e-8, high))


def _betas() -> st.SearchStrategy[tuple[float, float]]:
    return st.tuples(decays(), decays())


@st.composite
def _sgd(draw) -> dict[str, Any]:
    momentum = draw(st.one_of(st.just(0.0), decays()))
    nesterov = momentum > 0 and draw(st.booleans())
    dampening = 0.0 if nesterov else draw(st.one_of(st.sampled_from([0.0, 1.0]),
                                                    st.floats(0.0, 1.0)))
    return {"lr": draw(lrs()), "momentum": momentum, "dampening": dampening,
            "weight_decay": draw(weight_decays()), "nesterov": nesterov,
            "maximize": draw(st.booleans())}


def _adam(decoupled: bool | None) -> st.SearchStrategy[dict[str, Any]]:
    fields = {"lr": lrs(), "betas": _betas(), "eps": epsilons(),
              "weight_decay": weight_decays(), "amsgrad": st.booleans(),
              "maximize": st.booleans()}
    if decoupled is None:  # torch.optim.Adam's decoupled_weight_decay switch
        fields["decoupled_weight_decay"] = st.booleans()
    return st.fixed_dictionaries(fields)


#: hyperparameter strategies per torch.optim class name, keyed by torch keyword names
HYPERPARAMETERS: dict[str, Callable[[], st.SearchStrategy[dict[str, Any]]]] = {
    "Adam": lambda: _adam(None),
    "AdamW": lambda: _adam(True),
    "SGD": _sgd,
    "Adagrad": lambda: st.fixed_dictionaries({
        "lr": lrs(), "lr_decay": st.one_of(st.just(0.0), _log_uniform(1e-8, 1.0)),
        "weight_decay": weight_decays(),
        "initial_accumulator_value": st.one_of(st.just(0.0), _log_uniform(1e-8, 10.0)),
        "eps": epsilons(), "maximize": st.booleans()}),
    "Adadelta": lambda: st.fixed_dictionaries({
        "lr": lrs(), "rho": decays(), "eps": epsilons(), "weight_decay": weight_decays(),
        "maximize": st.booleans()}),
    "RMSprop": lambda: st.fixed_dictionaries({
        "lr": lrs(), "alpha": decays(), "eps": epsilons(), "weight_decay": weight_decays(),
        "momentum": st.one_of(st.just(0.0), decays()), "centered": st.booleans(),
        "maximize": st.booleans()}),
    "NAdam": lambda: st.fixed_dictionaries({
        "lr": lrs(), "betas": _betas(), "eps": epsilons(), "weight_decay": weight_decays(),
        "momentum_decay": st.one_of(st.sampled_from([0.0, 4e-3]), _log_uniform(1e-4, 1.0)),
        "decoupled_weight_decay": st.booleans(), "maximize": st.booleans()}),
}


def hyperparameters(optimizer: str) -> st.SearchStrategy[dict[str, Any]]:
    """Constructor keyword arguments for the torch.optim class named ``optimizer``, over the
    whole valid domain and its edges (only the numerical keywords and the rule's flags:
    ``foreach``/``fused``/``capturable`` choose a kernel and are the test's business)."""
    try:
        return HYPERPARAMETERS[optimizer]()
    except KeyError:
        raise ValueError(f"no hyperparameter strategy for {optimizer!r}; known: "
                         f"{', '.join(HYPERPARAMETERS)}") from None


# --------------------------------------------------------------------------- tensors


@dataclass(frozen=True)
class TensorSpec:
    """The shape of a parameter and how it is laid out in memory.

    ``layout`` is ``contiguous``, ``transposed`` (the transpose of a contiguous tensor; for
    fewer than 2 dimensions the same as contiguous) or ``strided`` (every other element of a
    twice-as-long first dimension).
    """

    shape: tuple[int, ...]
    layout: str = "contiguous"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def shapes(max_elements: int = 12) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes with at most ``max_elements`` elements: 0-d, empty, 1-d, 2-d and 3-d."""
    dim = st.integers(1, max_elements)
    return st.one_of(
        st.just(()), st.just((0,)), st.sampled_from([(1,), (0, 3)]),
        st.tuples(dim), st.tuples(dim, dim), st.tuples(dim, dim, st.integers(1, 2)),
    ).filter(lambda s: math.prod(s) <= max_elements)


LAYOUTS = ("contiguous", "transposed", "strided")


def tensor_specs(max_elements: int = 12, layouts: Sequence[str] = LAYOUTS
                 ) -> st.SearchStrategy[TensorSpec]:
    """A `TensorSpec`: a shape from `shapes` and one of ``layouts``."""
    return st.builds(TensorSpec, shapes(max_elements), st.sampled_from(list(layouts)))


def make_tensor(flat: Sequence[float], spec: TensorSpec, dtype: torch.dtype,
                device: str | torch.device = "cpu") -> torch.Tensor:
    """A tensor of ``spec``'s shape and layout holding ``flat`` (in row-major order of the
    logical shape), rounded to ``dtype``. Non-contiguous layouts are views of a larger
    tensor, which is a leaf, so it can be handed to an optimizer."""
    shape = spec.shape
    data = torch.tensor(list(flat), dtype=torch.float64).reshape(shape).to(dtype)
    if spec.layout == "transposed" and len(shape) >= 2:
        base = torch.empty(shape[::-1], dtype=dtype, device=device)
        tensor = base.transpose(0, len(shape) - 1) if len(shape) == 2 else base.permute(
            *reversed(range(len(shape))))
    elif spec.layout == "strided" and len(shape) >= 1:
        base = torch.zeros((shape[0] * 2, *shape[1:]), dtype=dtype, device=device)
        tensor = base[::2]
    else:
        tensor = torch.empty(shape, dtype=dtype, device=device)
    tensor.copy_(data.to(device))
    return tensor


def gradient_sequences(n: int, steps: int, dtype: torch.dtype
                       ) -> st.SearchStrategy[list[list[float]]]:
    """``steps`` flat gradients of ``n`` elements each (step k + 1 is item k).

    Each step after the first is, at random, a fresh draw, a repeat of the previous step, its
    sign flip, a rescaling by a power of two, or all zeros — so that moments accumulate,
    cancel and decay, not only see independent noise.
    """
    fresh = st.lists(values(dtype), min_size=n, max_size=n)
    cap = value_cap(dtype)

    @st.composite
    def build(draw):
        out = [draw(fresh)]
        for _ in range(steps - 1):
            kind = draw(st.sampled_from(["fresh", "fresh", "repeat", "flip", "scale", "zero"]))
            prev = out[-1]
            if kind == "fresh":
                out.append(draw(fresh))
            elif kind == "repeat":
                out.append(list(prev))
            elif kind == "flip":
                out.append([-x for x in prev])
            elif kind == "scale":
                e = draw(st.integers(-8, 8))
                out.append([max(-cap, min(cap, math.ldexp(x, e))) for x in prev])
            else:
                out.append([0.0] * n)
        return out

    return build()


# --------------------------------------------------------------------------- problems


@dataclass
class ParamCase:
    """One parameter tensor: its layout, starting values and one gradient per step."""

    spec: TensorSpec
    start: list[float]
    grads: list[list[float]]


@dataclass
class GroupCase:
    """One parameter group: its hyperparameters (torch keyword names) and tensors."""

    hyper: dict[str, Any]
    params: list[ParamCase] = field(default_factory=list)


@dataclass
class Problem:
    """Everything one optimizer run needs: dtype, steps and parameter groups. The first
    group's hyperparameters are the constructor's defaults; later groups override them all.
    """

    dtype: torch.dtype
    steps: int
    groups: list[GroupCase]

    def build(self, device: str | torch.device = "cpu"
              ) -> tuple[dict[str, Any], list[dict[str, Any]], list[list[torch.Tensor]]]:
        """(constructor defaults, torch param-group dicts, tensors per group), fresh tensors."""
        tensors = [[make_tensor(p.start, p.spec, self.dtype, device) for p in g.params]
                   for g in self.groups]
        groups = [{"params": ts, **({} if i == 0 else g.hyper)}
                  for i, (g, ts) in enumerate(zip(self.groups, tensors))]
        return dict(self.groups[0].hyper), groups, tensors

    def set_grads(self, tensors: list[list[torch.Tensor]], step: int) -> None:
        """Give every tensor its gradient of step ``step`` (0-based), same layout as the
        tensor."""
        for group, ts in zip(self.groups, tensors):
            for case, tensor in zip(group.params, ts):
                grad = make_tensor(case.grads[step], case.spec, self.dtype, tensor.device)
                tensor.grad = grad


@st.composite
def problems(draw, optimizer: str, dtype: torch.dtype, *, steps: int | tuple[int, int] = (1, 4),
             max_tensors: int = 3, max_elements: int = 8, max_groups: int = 2,
             hyper: st.SearchStrategy[dict[str, Any]] | None = None,
             layouts: Sequence[str] = LAYOUTS) -> Problem:
    """A `Problem` for the torch.optim class named ``optimizer`` in ``dtype``.

    1 to ``max_groups`` parameter groups with independently drawn hyperparameters
    (``hyper`` or `hyperparameters`), 1 to ``max_tensors`` tensors per group of mixed
    sizes and ``layouts`` (at most ``max_elements`` elements each), starting values from
    `values` and gradients from `gradient_sequences` for ``steps`` steps (an int,
    or a (min, max) range).
    """
    hyper = hyperparameters(optimizer) if hyper is None else hyper
    n_steps = steps if isinstance(steps, int) else draw(st.integers(*steps))
    groups = []
    for _ in range(draw(st.integers(1, max_groups))):
        group = GroupCase(draw(hyper))
        for _ in range(draw(st.integers(1, max_tensors))):
            spec = draw(tensor_specs(max_elements, layouts))
            start = draw(st.lists(values(dtype), min_size=spec.numel, max_size=spec.numel))
            grads = draw(gradient_sequences(spec.numel, n_steps, dtype))
            group.params.append(ParamCase(spec, start, grads))
        groups.append(group)
    return Problem(dtype, n_steps, groups)
