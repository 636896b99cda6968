"""The ``fused=True`` path of every optproof optimizer: one pass over memory per step.

:func:`step` is called by ``OptimizerBase._step_group`` for a fused param group after the
lazy state initialisation.  It increments the step counters, computes the per-step scalars
on the host in float64 (:mod:`.rules`, the same expressions as the for-loop path), packs
them into one float64 row per distinct (t, per-tensor scalar) — usually a single row for the
whole group — and hands each (device, param dtype, state dtype) bucket to one kernel call:

* CPU: :mod:`.cpu`, a C++ extension (one templated element body per rule, one generic
  driver, ``at::parallel_for`` over all elements of the bucket);
* CUDA: :mod:`.triton`, one Triton launch per bucket over a pointer/offset table.

Without a usable kernel (no compiler for the C++ extension, no triton for CUDA) the bucket
runs the class's own rule on the foreach backend instead, after one warning.

Mixed precision (``state_dtype=torch.float32`` with bfloat16/float16 parameters): the
kernels read the float32 state, compute in float32 and round only the parameter store to
its dtype; no extra pass.

Sharded parameters (``torch.distributed.tensor.DTensor``, as FSDP2's ``fully_shard`` makes
them): every rule is elementwise, so each rank runs the kernel on its local shards of θ, g
and the state — under ``no_grad`` ``DTensor.to_local()`` is the shard's own storage, so
the update lands in the DTensor — provided the gradient and the state share the
parameter's mesh and placements (they do under FSDP2).  Otherwise, and for any other
tensor subclass, the parameter runs the foreach path, which dispatches through the
subclass.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from . import cpu
from .._base import state_dtype_for
from .rules import N_SCALARS, RULES, nadam_mus, rule_for

__all__ = ["step", "RULES", "rule_for", "SUPPORTED_DEVICES", "MAXIMIZE", "L2"]

MAXIMIZE, L2 = 1, 2
SUPPORTED_DEVICES = ("cpu", "cuda")

_warned: set[str] = set()

#: testing hook: ``"triton"`` sends CPU tensors to the Triton kernel too (with
#: ``TRITON_INTERPRET=1`` set before triton is imported, numpy executes it)
force_backend: str | None = None


def _check(params: list[Tensor]) -> bool:
    """torch.optim 2.13's ``_device_dtype_check_for_fused`` (same text); True if all on CPU.
    Sparse gradients are rejected by the kernels ("`fused` does not support sparse gradients")."""
    if all(p.is_cpu and p.is_floating_point() for p in params):
        return True
    for p in params:
        if not (p.is_floating_point() and p.device.type in SUPPORTED_DEVICES):
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of "
                f"supported devices: {list(SUPPORTED_DEVICES)} but {p.dtype} and {p.device.type}")
        if p.grad.is_sparse:
            raise RuntimeError("`fused` does not support sparse gradients")
    return False


def _update_scalars(xs: list[Tensor], factors: list[float], add: float) -> list[float]:
    """``x ← x·f + add`` on 0-d tensors (step counters, mu_products), returning the new
    values: one C++ call on CPU, a foreach op and one device→host copy elsewhere."""
    if all(x.is_cpu for x in xs) and cpu.load() is not None:
        return cpu.update_scalars(xs, factors, add)
    if len(set(factors)) == 1:
        torch._foreach_mul_(xs, factors[0])
    else:
        torch._foreach_mul_(xs, factors)
    if add:
        torch._foreach_add_(xs, add)
    return torch.stack([x.reshape(()).to(xs[0].device, torch.float64) for x in xs]).tolist()


_PLAIN = (Tensor, torch.nn.Parameter)


def _dtensor_class() -> type | None:
    if not torch.distributed.is_available():
        return None
    from torch.distributed.tensor import DTensor
    return DTensor


def _addressable(optimizer: Any, p: Tensor, dtensor: type | None) -> bool:
    """Whether the kernels can address ``p``, its gradient and its state tensors: plain
    tensors, or DTensors on one mesh with one placement (see the module docstring)."""
    if type(p) in _PLAIN and type(p.grad) in _PLAIN:  # its state was made like it
        return True
    tensors = [p.grad, *(v for v in optimizer.state.get(p, {}).values()
                         if isinstance(v, Tensor) and v.shape == p.shape)]
    return dtensor is not None and isinstance(p, dtensor) and all(
        isinstance(t, dtensor) and t.device_mesh == p.device_mesh and t.placements == p.placements
        for t in tensors)


def _local(t: Tensor, dtensor: type | None) -> Tensor:
    """A DTensor's local shard (the storage itself under ``no_grad``), else ``t``."""
    return t.to_local() if dtensor is not None and isinstance(t, dtensor) else t


def step(optimizer: Any, group: dict[str, Any], params: list[Tensor]) -> None:
    """One fused step of ``group`` for ``params`` (those with a gradient).

    Under ``torch.compile`` it runs eagerly, outside the graph (a graph break): the kernels
    are opaque C++/Triton calls fed by host-side bookkeeping (step counters read back as
    Python floats), which a graph cannot hold.
    """
    if torch.compiler.is_compiling():
        return torch.compiler.disable(_step)(optimizer, group, params)
    return _step(optimizer, group, params)


def _step(optimizer: Any, group: dict[str, Any], params: list[Tensor]) -> None:
    dtensor = None
    if not all(type(p) in _PLAIN and type(p.grad) in _PLAIN for p in params):
        dtensor = _dtensor_class()
        foreign = [p for p in params if not _addressable(optimizer, p, dtensor)]
        _run_foreach(optimizer, group, foreign)
        skip = {id(p) for p in foreign}
        params = [p for p in params if id(p) not in skip]
    all_cpu = _check(params) and force_backend != "triton"
    if not (all_cpu and cpu.load() is not None):
        params = _fallback(optimizer, group, params)
        all_cpu = False
    if not params:
        return
    rule = rule_for(optimizer)
    variant = rule.variant(group)
    lr = group["lr"].item() if isinstance(group["lr"], Tensor) else group["lr"]
    wd = group.get("weight_decay", 0)
    wd = wd.item() if isinstance(wd, Tensor) else wd
    decoupled = bool(group.get("decoupled_weight_decay")) and wd != 0
    flags = (MAXIMIZE if group["maximize"] else 0) | (L2 if wd != 0 and not decoupled else 0)

    n = len(params)
    first = [False] * n
    if rule.kernel == "sgd":
        ts: list[Any] = [None] * n
        keys = ("momentum_buffer",) if variant else ()
        states = [optimizer.state[p] for p in params] if variant else [{}] * n
        for i, (p, s) in enumerate(zip(params, states)):
            if variant and s.get("momentum_buffer") is None:
                s["momentum_buffer"] = torch.empty_like(p, dtype=state_dtype_for(group, p),
                                                        memory_format=torch.preserve_format)
                first[i] = True
    else:
        keys = optimizer._tensor_state_keys_for(group)
        states = [optimizer.state[p] for p in params]
        ts = _update_scalars([s["step"] for s in states], [1.0], 1.0)
    extras: list[Any] = [None] * n
    if rule.kernel == "nadam":  # Π_t ← Π_{t−1} μ_t in place, as the for-loop path
        mus = {t: nadam_mus(group, t)[0] for t in set(ts)}
        extras = _update_scalars([s["mu_product"] for s in states],
                                 [mus[t] for t in ts] if len(mus) > 1 else [mus[ts[0]]], 0.0)

    # one scalar row per distinct (t, extra, first step); usually one for the whole group
    def make_row(t, extra, f) -> list[float]:
        factor = 1 - rule.decay_lr(group, t, lr) * wd if decoupled else 1.0
        row = [wd if flags & L2 else 0.0, factor, *rule.scalars(group, t, lr, extra)]
        return row + [0.0] * (N_SCALARS - 1 - len(row)) + [1.0 if f else 0.0]

    keys_per_tensor = list(zip(ts, extras, first))
    distinct = dict.fromkeys(keys_per_tensor)
    table = [make_row(*key) for key in distinct]
    rows: list[int] = []
    if len(table) > 1:
        row_of = {key: r for r, key in enumerate(distinct)}
        rows = [row_of[key] for key in keys_per_tensor]

    scalars = torch.tensor(table, dtype=torch.float64)
    grads = [p.grad for p in params]
    if dtensor is not None:  # the kernels address the local shards
        grads = [_local(g_, dtensor) for g_ in grads]
        states = [{k: _local(s[k], dtensor) for k in keys} for s in states]
        params = [_local(p, dtensor) for p in params]
    if all_cpu:  # one call for the whole group, whatever its dtypes (dispatched per tensor)
        cpu.step(rule.kernel, variant, flags, params, grads, [s[k] for k in keys for s in states],
                 scalars, rows)
        return
    for idx in _buckets(params, states, keys):
        b_params = [params[i] for i in idx]
        kernel = _kernel(b_params[0].device.type)
        kernel(rule.kernel, variant, flags, b_params, [grads[i] for i in idx],
               [states[i][k] for k in keys for i in idx], scalars.to(b_params[0].device),
               [rows[i] for i in idx] if rows else [])


def _buckets(params, states, keys) -> list[list[int]]:
    """Indices bucketed by (device, param dtype, state dtype), first-seen order."""
    buckets: dict[tuple, list[int]] = {}
    k0 = keys[0] if keys else None
    for i, p in enumerate(params):
        sd = states[i][k0].dtype if k0 is not None else None
        buckets.setdefault((p.device, p.dtype, sd), []).append(i)
    return list(buckets.values())


def _kernel(device_type: str):
    """The kernel entry point for ``device_type``, or ``None`` (one warning) if unavailable."""
    if device_type == "cpu" and force_backend != "triton":
        return cpu.step if cpu.load() is not None else None
    from . import triton as triton_backend
    if triton_backend.available():
        return triton_backend.step
    if device_type not in _warned:
        _warned.add(device_type)
        warnings.warn(f"optproof.torch_impl: no fused kernel for {device_type} "
                      f"({triton_backend.unavailable_reason()}); fused=True runs the foreach "
                      "kernels instead.", RuntimeWarning, stacklevel=4)
    return None


def _run_foreach(optimizer, group, params) -> None:
    """The class's own rule on the foreach backend (same results within the derived bound)."""
    from .._base import FOREACH, group_by_device_and_dtype

    for idx in group_by_device_and_dtype(params):
        optimizer._run(group, [params[i] for i in idx], FOREACH)


def _fallback(optimizer, group, params) -> list:
    """Params whose device has no kernel run the foreach path; the rest are returned."""
    kernels = {t: _kernel(t) for t in {p.device.type for p in params}}
    missing = [p for p in params if kernels[p.device.type] is None]
    _run_foreach(optimizer, group, missing)
    return [p for p in params if kernels[p.device.type] is not None] if missing else params
