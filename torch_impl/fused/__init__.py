"""The ``fused=True`` path of every optproof optimizer: one pass over memory per step.

`step` is called by ``OptimizerBase._step_group`` for a fused param group after the
lazy state initialisation.  It computes the per-step scalars on the host in float64
(`rules`, the same expressions as the for-loop path) from the step counters' new
values, packs them into one float64 row per distinct (t, per-tensor scalar) — usually a
single row for the whole group — and hands the group to the kernels:

* CPU: `cpu`, a C++ extension (one templated element body per rule, one generic
  driver, ``at::parallel_for`` over all elements of the group, whatever their dtypes), in
  one call that also checks and advances the counters (`_cpu_step_counted`);
* CUDA: `triton`, one Triton launch per (device, param dtype, state dtype) bucket over
  a pointer/offset table, after the counters are advanced on the device and read back.

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
from .rules import RULE_SLOTS, RULES, nadam_mus, rule_for

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
    """``x ← x·f + add`` on 0-d counters (step, mu_product), returning the new values: one
    C++ call on CPU, a foreach op and one device→host copy elsewhere."""
    if all(x.is_cpu for x in xs) and cpu.load() is not None:
        return cpu.update_counters(xs, factors, add)
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
    all_cpu = all(type(p) in _PLAIN and type(p.grad) in _PLAIN and p.is_cpu and p.is_floating_point()
                  for p in params) and force_backend != "triton" and cpu.load() is not None
    if not all_cpu:  # tensor subclasses, other devices, errors, no C++ kernel
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
        keys = ("momentum_buffer",) if variant else ()
        states = [optimizer.state[p] for p in params] if variant else [{}] * n
        for i, (p, s) in enumerate(zip(params, states)):
            if variant and s.get("momentum_buffer") is None:
                s["momentum_buffer"] = torch.empty_like(p, dtype=state_dtype_for(group, p),
                                                        memory_format=torch.preserve_format)
                first[i] = True
        counters: list[Tensor] = []
    else:
        keys = optimizer._tensor_state_keys_for(group)
        states = [optimizer.state[p] for p in params]
        counters = [s["step"] for s in states]
        if rule.kernel == "nadam":
            counters += [s["mu_product"] for s in states]

    def row(t, extra, counts=(0.0,) * 5, first=False) -> list[float]:
        """The scalar row of step ``t`` (``extra``: NAdam's Π_t; layout in `rules`)."""
        factor = 1 - rule.decay_lr(group, t, lr) * wd if decoupled else 1.0
        rule_scalars = rule.scalars(group, t, lr, extra)
        return [wd if flags & L2 else 0.0, factor, *rule_scalars,
                *(0.0,) * (RULE_SLOTS - len(rule_scalars)), *counts, 1.0 if first else 0.0]

    def sgd_row(first: bool) -> list[float]:  # SGD keeps no step: rows differ by first step only
        return row(None, None, first=first)

    grads = [p.grad for p in params]
    tensors = [s[k] for k in keys for s in states]
    if dtensor is not None:  # the kernels address the local shards
        grads = [_local(g_, dtensor) for g_ in grads]
        tensors = [_local(t_, dtensor) for t_ in tensors]
        params = [_local(p, dtensor) for p in params]
    args = (rule.kernel, variant, flags, params, grads, tensors)
    if all_cpu:  # one call for the whole group, whatever its dtypes (dispatched per tensor)
        if counters:
            _cpu_step_counted(optimizer, group, rule, row, args, counters)
        else:
            cpu.step(*args, [], *_table([(f,) for f in first], sgd_row))
        return
    if counters:  # step += 1 (and Π ← Π·μ) on the device, then the values on the host
        table, rows = _table(_advance(group, rule, counters, n), row)
    else:
        table, rows = _table([(f,) for f in first], sgd_row)
    for idx in _buckets(params, tensors, len(keys)):
        b_params = [params[i] for i in idx]
        kernel = _kernel(b_params[0].device.type)
        kernel(rule.kernel, variant, flags, b_params, [grads[i] for i in idx],
               [tensors[j * n + i] for j in range(len(keys)) for i in idx], table,
               [rows[i] for i in idx] if rows else [])


def _table(keys: list, make_row) -> tuple[list[float], list[int]]:
    """The rows ``make_row(*key)`` of the distinct per-tensor ``keys``, concatenated, and each
    tensor's row index (an empty index list when one row serves every tensor, the usual case)."""
    index: dict[Any, int] = {}
    rows = [index.setdefault(key, len(index)) for key in keys]
    table = [x for key in index for x in make_row(*key)]
    return table, ([] if len(index) == 1 else rows)


def _cpu_step_counted(optimizer, group, rule, row, args, counters: list[Tensor]) -> None:
    """One C++ call that checks and advances the counters and steps every element.

    The scalars depend on the counters' new values, which the host does not read on the
    usual step: it remembers, per param group, the values a uniform group's counters took at
    the last step (``t``, and NAdam's Π) and computes the row from them; the kernel checks
    every counter against that row before it writes anything.  On a mismatch — the first
    step, a loaded checkpoint, a counter set by hand, tensors of a group stepped unevenly —
    the counters are advanced and read back first (one more call), as on the CUDA path.
    """
    memo = optimizer.__dict__.setdefault("_fused_counters", {})
    key, n = id(group), len(args[3])
    known = memo.get(key)
    if known is not None:
        t_old, pi_old = known
        t, mu, pi = t_old + 1.0, 0.0, 0.0
        if rule.kernel == "nadam":
            mu = nadam_mus(group, t)[0]
            pi = pi_old * mu
        if cpu.step(*args, counters, row(t, pi, (t_old, t, pi_old, pi, mu)), []):
            memo[key] = (t, pi)
            return
    counts = _advance(group, rule, counters, n)
    table, rows = _table(counts, row)
    cpu.step(*args, [], table, rows)
    if rows:
        memo.pop(key, None)
    else:
        memo[key] = counts[0]


def _advance(group, rule, counters: list[Tensor], n: int) -> list[tuple[float, float]]:
    """``step += 1`` (and NAdam's Π_t ← Π_{t−1}·μ_t) on every counter; (t, Π_t) per tensor
    (Π 0.0 for the other rules), as the counters hold them now."""
    ts = _update_scalars(counters[:n], [1.0], 1.0)
    if rule.kernel != "nadam":
        return [(t, 0.0) for t in ts]
    mus = [nadam_mus(group, t)[0] for t in ts]
    return list(zip(ts, _update_scalars(counters[n:], mus if len(set(mus)) > 1 else mus[:1], 0.0)))


def _buckets(params, tensors, n_keys: int) -> list[list[int]]:
    """Indices bucketed by (device, param dtype, state dtype), first-seen order."""
    buckets: dict[tuple, list[int]] = {}
    for i, p in enumerate(params):
        sd = tensors[i].dtype if n_keys else None
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
        bucket = [params[i] for i in idx]
        optimizer._run(group, bucket, optimizer._states(group, bucket), FOREACH)


def _fallback(optimizer, group, params) -> list:
    """Params whose device has no kernel run the foreach path; the rest are returned."""
    kernels = {t: _kernel(t) for t in {p.device.type for p in params}}
    missing = [p for p in params if kernels[p.device.type] is None]
    _run_foreach(optimizer, group, missing)
    return [p for p in params if kernels[p.device.type] is not None] if missing else params
