"""Helpers shared by the torch.optim drop-in tests (conformance, checkpoints, non-finite
values, scale of inputs): run an optproof optimizer and its torch.optim counterpart on the
same parameters and gradients, and compare the results bit for bit or in float ULPs.

``optim_db()`` loads ``torch.testing._internal.common_optimizers`` — the OptimizerInfo
database torch's own ``test/test_optim.py`` runs — whose import chain needs the
``expecttest`` package (a torch test-only dependency). Where it is not installed a
minimal stand-in module is registered: ``common_utils`` only subclasses
``expecttest.TestCase`` and reads ``expecttest.ACCEPT``, neither of which is used here.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import sys
import types
import unittest
from collections.abc import Callable, Sequence
from typing import Any

import torch

import optproof.torch_impl as ours

#: the optproof classes and their torch.optim counterparts (same names)
NAMES = ("Adam", "AdamW", "SGD", "Adagrad", "Adadelta", "RMSprop", "NAdam")


def classes(name: str) -> tuple[type[torch.optim.Optimizer], type[torch.optim.Optimizer]]:
    """``(optproof class, torch.optim class)`` of ``name``."""
    return getattr(ours, name), getattr(torch.optim, name)


@functools.cache
def common_optimizers() -> types.ModuleType:
    """torch's ``common_optimizers`` module (see the module docstring for ``expecttest``)."""
    try:
        import expecttest  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("expecttest")
        stand_in.TestCase = unittest.TestCase
        stand_in.ACCEPT = False
        sys.modules["expecttest"] = stand_in
    import torch.testing._internal.common_optimizers as co

    return co


def optim_info(name: str):
    """The ``OptimizerInfo`` of ``torch.optim.<name>`` in torch's ``optim_db``."""
    return {info.name: info for info in common_optimizers().optim_db}[name]


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# --------------------------------------------------------------------------- problems

SHAPES = ((4, 3), (3,), ())


def make_params(seed: int = 0, *, dtype: torch.dtype = torch.float64, device: str = "cpu",
                shapes: Sequence[tuple[int, ...]] = SHAPES) -> list[torch.Tensor]:
    """Seeded random leaf parameters (``requires_grad``), one per shape."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype).to(device).requires_grad_()
            for s in shapes]


def clone_params(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_(p.requires_grad) for p in params]


def random_grads(seed: int) -> Callable[[int, Sequence[torch.Tensor]], list[torch.Tensor]]:
    """A gradient source: ``grads(step, params)`` is the same for every caller and seed."""

    def grads(step: int, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed * 1009 + step)
        return [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params]

    return grads


def run_steps(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], grads, steps: range):
    """Set ``p.grad = grads(k, params)[i]`` and take a step, for each ``k`` in ``steps``."""
    for k in steps:
        for p, g in zip(params, grads(k, params)):
            p.grad = g
        opt.step()
    return opt


def run(cls: type[torch.optim.Optimizer], kwargs: dict[str, Any], *, steps: int = 5,
        seed: int = 0, dtype: torch.dtype = torch.float64, device: str = "cpu",
        shapes: Sequence[tuple[int, ...]] = SHAPES):
    """``steps`` steps of ``cls(params, **kwargs)`` on seeded params and gradients; returns
    ``(params, optimizer)``. ``kwargs`` are deep-copied (a Tensor lr is never shared)."""
    params = make_params(seed, dtype=dtype, device=device, shapes=shapes)
    opt = cls(params, **copy.deepcopy(kwargs))
    run_steps(opt, params, random_grads(seed), range(steps))
    return params, opt


def state_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Every tensor of ``opt.state_dict()['state']``, keyed ``"<index>.<key>"``."""
    return {f"{i}.{k}": v for i, s in opt.state_dict()["state"].items()
            for k, v in s.items() if isinstance(v, torch.Tensor)}


# --------------------------------------------------------------------------- comparisons


def extra_group_keys(ours_group: dict[str, Any], torch_group: dict[str, Any]) -> list[str]:
    """Keys of an optproof param group that torch's lacks and that are not optproof's
    documented extensions in their *off* state (``decoupled_weight_decay`` on every class,
    and flags such as ``fused``/``state_dtype`` left at ``None``/``False``): a torch
    checkpoint loaded into optproof gets these from ``__setstate__``'s defaults."""
    return sorted(k for k in set(ours_group) - set(torch_group)
                  if k != "decoupled_weight_decay" and ours_group[k] not in (None, False))


def _bits(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu()
    if t.is_complex():
        t = torch.view_as_real(t)
    if t.is_floating_point():
        ints = {8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()]
        return t.contiguous().view(ints)
    return t


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bit pattern of every element (NaN payloads and signed zeros
    included)."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def ulps(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest ``|a − b|`` in units in the last place of ``max(|a|, |b|)`` (in ``a``'s
    dtype); 0 where both are NaN or both are the same infinity, ``inf`` where only one is
    NaN or the infinities differ."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    a, b = a.detach().cpu(), b.detach().cpu()
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    if not a.is_floating_point():
        return 0.0 if torch.equal(a, b) else float("inf")
    both_nan = a.isnan() & b.isnan()
    if (a.isnan() ^ b.isnan()).any():
        return float("inf")
    same = (a == b) | both_nan
    if same.all():
        return 0.0
    if (~same & (a.isinf() | b.isinf())).any():
        return float("inf")
    big = torch.maximum(a.abs(), b.abs())
    spacing = torch.nextafter(big, torch.full_like(big, float("inf"))) - big
    return ((a - b).abs() / spacing)[~same].max().item()


def max_ulps(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> float:
    return max((ulps(x, y) for x, y in zip(xs, ys, strict=True)), default=0.0)
