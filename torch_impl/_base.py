"""Shared machinery for the ``optproof.torch_impl`` optimizers.

Every optimizer in this package is a `torch.optim.Optimizer` subclass that
only describes *its update rule*; everything else lives here:

* validation helpers that reproduce torch.optim 2.13's exception types and texts;
* the ``step(closure)`` skeleton: closure under ``enable_grad``, params without
  grads skipped, sparse-gradient policy, lazy state initialisation, the
  ``foreach=None`` default (foreach on CUDA/XPU, for-loop on CPU, as torch does);
* grouping of tensors by ``(device, dtype)`` for the foreach path;
* the common prologue of every rule (torch.optim 2.13 does it in the same order):
  ``step += 1``; complex tensors viewed as real (``torch.view_as_real``);
  ``g <- -g`` when ``maximize``; weight decay, either L2
  (``g <- g + lambda * theta``) or decoupled
  (``theta <- theta * (1 - lr * lambda)``, Loshchilov & Hutter 2019, Alg. 2 line 12);
* interchangeable *op backends* (`LOOP`, `RUNS` and `FOREACH`).  An
  update rule is written once against the backend interface, on lists of
  tensors.  The for-loop path calls the rule once per run of small tensors
  (`loop_runs`), each tensor through the very ops of torch's ``_single_tensor_*``,
  temporaries bounded by a run: per-tensor ``Tensor`` methods (`LOOP`), or on the CPU
  outside autograd and ``torch.compile`` torch's CPU ``_foreach_*`` kernels, which are
  those per-tensor ops looped in C++ (`RUNS`); the foreach path calls it
  once per ``(device, dtype)`` bucket with ``torch._foreach_*`` ops (like torch's
  ``_multi_tensor_*``).

Scalar coefficients (bias corrections, mu-products, clr, ...) are computed in
Python float64 from ``step.item()`` exactly as torch does; with
``capturable=True``, and under ``torch.compile`` (as torch's ``_get_value`` does), they are
computed instead as 0-d float64 tensors on the parameter's device from the device-resident
``step`` (no ``.item()``, no host sync, no graph break), and the backends fold tensor
coefficients in with tensor products.

``differentiable=True`` follows torch.optim 2.13 (``optimizer._use_grad_for_differentiable``
and each ``_single_tensor_*``): ``step`` runs with autograd enabled instead of under
``no_grad``, params may be non-leaf tensors, the update is recorded on the autograd graph
(in place on the params, with torch's out-of-place variants and clones wherever torch needs
them so that the backward pass sees unmodified saved tensors; see
[Bucket][optproof.torch_impl._base.Bucket] ``differentiable``), and Tensor hyperparameters (``lr``, ``weight_decay``, Adam's ``betas``)
stay tensors so gradients flow into them.  As in torch, only the for-loop path is
differentiable: ``foreach=None`` selects it, ``foreach=True`` raises torch's
``AssertionError`` (SGD excepted: its foreach ops are differentiable in torch too) and
``fused=True`` raises ``RuntimeError``.  ``fused=True`` (every class) hands each param group,
after the lazy state initialisation, to `optproof.torch_impl.fused.step`: one pass
over memory per step (a C++ kernel on CPU, Triton on CUDA).

Mixed precision: ``state_dtype=torch.float32`` keeps the optimizer state of bfloat16/float16
parameters in float32 (default ``None``: state in the parameter's dtype, as torch.optim).
On every path the step then computes in float32 from float32 working copies of θ and g and
rounds only the parameter store, once, to its dtype (see `_widen`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "FOREACH",
    "LOOP",
    "RUNS",
    "Bucket",
    "OptimizerBase",
    "check",
    "check_betas",
    "check_lr",
    "scalar_dtype",
]

# --------------------------------------------------------------------------- validation


def check(ok: bool, message: str, exc: type[Exception] = ValueError) -> None:
    """Raise ``exc(message)`` unless ``ok`` (comparisons are written by the caller
    exactly as torch writes them, so NaN behaves identically)."""
    if not ok:
        raise exc(message)


def check_lr(lr: float | Tensor) -> None:
    """torch.optim 2.13: ``Tensor lr must be 1-element`` / ``Invalid learning rate``."""
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    check(0.0 <= lr, f"Invalid learning rate: {lr}")


def check_betas(betas: Sequence[float | Tensor]) -> None:
    """torch.optim 2.13 (adam.py / nadam.py): ``0 <= beta_i < 1``."""
    check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
    check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")


# --------------------------------------------------------------------------- devices / dtypes


def scalar_dtype() -> torch.dtype:
    """dtype of ``state['step']`` (torch.optim.optimizer._get_scalar_dtype):
    float64 if the default dtype is float64, else float32."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def capturable_supported_devices() -> list[str]:
    """Device types on which ``capturable=True`` is accepted (as in torch 2.13)."""
    return ["cuda", "xpu", "hpu", torch._C._get_privateuse1_backend_name(), "xla"]


def foreach_supported_devices() -> list[str]:
    """Device types on which ``foreach=None`` selects the foreach path."""
    return ["cuda", "xpu", torch._C._get_privateuse1_backend_name()]


def _default_foreach(params: Sequence[Tensor]) -> bool:
    # torch's own list of tensor types, read at call time: importing
    # torch.distributed.tensor appends DTensor to it (so FSDP2 params get foreach too)
    from torch.optim import optimizer as torch_optimizer  # torch.optim dels the attribute

    types = tuple(getattr(torch_optimizer, "_foreach_supported_types", ()))
    types = types or (Tensor, torch.nn.Parameter)
    devices = foreach_supported_devices()
    return all(type(p) in types and p.device.type in devices for p in params)


def group_by_device_and_dtype(tensors: Sequence[Tensor]) -> list[list[int]]:
    """Indices of ``tensors`` bucketed by ``(device, dtype)`` in first-seen order
    (what ``torch.optim.Optimizer._group_tensors_by_device_and_dtype`` does)."""
    buckets: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(tensors):
        buckets.setdefault((t.device, t.dtype), []).append(i)
    return list(buckets.values())


#: most elements a run of the for-loop path holds (see `loop_runs`): 2**18, so that a
#: temporary of a rule holds at most one tensor or 1 MiB of float32. Measured (bench/README.md):
#: 2**16 left tensors of 100k elements alone, each paying the rule's bookkeeping (1.04–1.09×
#: torch's for-loop at 100 × 100k); 2**20 runs fall out of the cache (up to 1.9×)
LOOP_RUN_ELEMENTS = 1 << 18


def loop_runs(tensors: Sequence[Tensor]) -> list[list[int]]:
    """Indices of ``tensors`` cut into runs for the for-loop path: consecutive tensors of one
    device and dtype, real and dense, together at most `LOOP_RUN_ELEMENTS` elements (a larger
    tensor, a complex one or one with a sparse gradient is a run of its own).

    The rule is called once per run with the per-tensor backend, whose every op loops over
    the run's tensors: each tensor sees the very operations of a call of its own (bitwise the
    same results as torch's ``_single_tensor_*``), the rule's Python bookkeeping is paid once
    per run instead of once per tensor, and a temporary of the rule never holds more than a
    run (torch's for-loop: one tensor; the foreach path: the whole bucket)."""
    runs: list[list[int]] = []
    size, key = 0, None
    for i, t in enumerate(tensors):
        alone = t.is_complex() or t.grad.is_sparse
        k = (t.device, t.dtype)
        if alone or k != key or size + t.numel() > LOOP_RUN_ELEMENTS or not runs:
            runs.append([i])
            size, key = t.numel(), (None if alone else k)
        else:
            runs[-1].append(i)
            size += t.numel()
    return runs


def _real(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if torch.is_complex(t) else t


# --------------------------------------------------------------------------- op backends


def _each(s: Any, n: int) -> Sequence:
    return s if isinstance(s, (list, tuple)) else [s] * n


def _saved(x: Tensor, s: Any) -> Tensor:
    """``x`` as an operand of ``x * s``: a copy when autograd records the product with a
    scalar ``s`` that requires grad, since the product saves ``x`` for ``∂/∂s`` and ``x``
    (a state tensor) may be updated in place before the backward pass (torch's
    ``exp_avg.clone()`` in adam.py ``_single_tensor_adam`` for the same reason)."""
    if isinstance(s, Tensor) and s.requires_grad and torch.is_grad_enabled():
        return x.clone()
    return x


def _has_tensor(s: Any) -> bool:
    if isinstance(s, (list, tuple)):
        return any(isinstance(x, Tensor) for x in s)
    return isinstance(s, Tensor)


class _LoopOps:
    """Per-tensor backend: every op is a loop of ``Tensor`` methods.

    Scalars may be numbers, 0-d tensors (capturable) or per-tensor lists of those.
    """

    foreach = False

    def neg(self, xs):
        return [torch.neg(x) for x in xs]

    def add(self, xs, ys, alpha=1):
        return [x.add(y, alpha=alpha) for x, y in zip(xs, ys)]

    def add_(self, xs, ys, alpha=1):
        for x, y in zip(xs, ys):
            if isinstance(alpha, Tensor):
                x.add_(_saved(y, alpha) * alpha)
            else:
                x.add_(y, alpha=alpha)

    def add_scalar(self, xs, s):
        return [x.add(si) for x, si in zip(xs, _each(s, len(xs)))]

    def add_scalar_(self, xs, s):
        for x, si in zip(xs, _each(s, len(xs))):
            x.add_(si)

    def add_scalar_unless_saved(self, xs, s, saved: bool):
        """``xs + s``, in place unless autograd saved ``xs`` (the output of a square root
        under ``differentiable``: torch's ``x.sqrt() + eps`` there); returns the sum."""
        if saved:
            return self.add_scalar(xs, s)
        self.add_scalar_(xs, s)
        return xs

    def mul(self, xs, s):
        return [x.mul(si) for x, si in zip(xs, _each(s, len(xs)))]

    def mul_(self, xs, s):
        for x, si in zip(xs, _each(s, len(xs))):
            x.mul_(si)

    def div(self, xs, s):
        return [x.div(si) for x, si in zip(xs, _each(s, len(xs)))]

    def div_(self, xs, s):
        for x, si in zip(xs, _each(s, len(xs))):
            x.div_(si)

    def lerp_(self, xs, ys, w):
        for x, y in zip(xs, ys):
            x.lerp_(y, w)

    def ema_(self, xs, ys, beta):
        """x ← β·x + (1 − β)·y. For β ≥ 1/2 as torch writes it, ``lerp(x, y, 1 − β)``
        (= x + (1 − β)(y − x), accurate since the weight 1 − β ≤ 1/2 multiplies the
        difference); for β < 1/2 as ``β·x + (1 − β)·y``, because lerp then recovers β as
        1 − fl(1 − β) and loses it below the unit roundoff (a β of 1e-8 vanishes in float32,
        torch.optim 2.13 keeps that loss)."""
        if beta >= 0.5:
            self.lerp_(xs, ys, 1 - beta)
        else:
            self.mul_(xs, beta)
            self.add_(xs, ys, alpha=1 - beta)

    def addcmul(self, xs, a, b, value=1):
        return [x.addcmul(ai, bi, value=value) for x, ai, bi in zip(xs, a, b)]

    def addcmul_(self, xs, a, b, value=1):
        for x, ai, bi in zip(xs, a, b):
            x.addcmul_(ai, bi, value=value)

    def addcdiv_(self, xs, a, b, value=1):
        for x, ai, bi, v in zip(xs, a, b, _each(value, len(xs))):
            if isinstance(v, Tensor):
                x.addcdiv_(_saved(ai, v) * v, bi)
            else:
                x.addcdiv_(ai, bi, value=v)

    def sqrt(self, xs):
        return [x.sqrt() for x in xs]

    def sqrt_(self, xs):
        for x in xs:
            x.sqrt_()

    def maximum_(self, xs, ys):
        for x, y in zip(xs, ys):
            torch.maximum(x, y, out=x)


class _ForeachOps(_LoopOps):
    """Multi-tensor backend on ``torch._foreach_*`` (one bucket = one device/dtype)."""

    foreach = True

    def neg(self, xs):
        return list(torch._foreach_neg(xs))

    def add(self, xs, ys, alpha=1):
        return list(torch._foreach_add(xs, ys, alpha=alpha))

    def add_(self, xs, ys, alpha=1):
        if isinstance(alpha, Tensor):
            torch._foreach_add_(xs, torch._foreach_mul([_saved(y, alpha) for y in ys], alpha))
        else:
            torch._foreach_add_(xs, ys, alpha=alpha)

    def add_scalar(self, xs, s):
        return list(torch._foreach_add(xs, s))

    def add_scalar_(self, xs, s):
        torch._foreach_add_(xs, s)

    def mul(self, xs, s):
        return list(torch._foreach_mul(xs, s))

    def mul_(self, xs, s):
        torch._foreach_mul_(xs, s)

    def div(self, xs, s):
        return list(torch._foreach_div(xs, s))

    def div_(self, xs, s):
        torch._foreach_div_(xs, s)

    def lerp_(self, xs, ys, w):
        torch._foreach_lerp_(xs, ys, w)

    def addcmul(self, xs, a, b, value=1):
        return list(torch._foreach_addcmul(xs, a, b, value))

    def addcmul_(self, xs, a, b, value=1):
        torch._foreach_addcmul_(xs, a, b, value)

    def addcdiv_(self, xs, a, b, value=1):
        if _has_tensor(value):
            torch._foreach_addcdiv_(xs, torch._foreach_mul(a, value), b)
        else:
            torch._foreach_addcdiv_(xs, a, b, value)

    def sqrt(self, xs):
        return list(torch._foreach_sqrt(xs))

    def sqrt_(self, xs):
        torch._foreach_sqrt_(xs)

    def maximum_(self, xs, ys):
        torch._foreach_maximum_(xs, ys)


class _RunOps(_ForeachOps):
    """The for-loop path's ops on a run of CPU tensors (`loop_runs`). Each op is torch's
    per-tensor op called for every tensor of the run by ``torch._foreach_*``, whose CPU
    kernels are exactly that loop in C++ (``foreach_tensor_*_slow``, ATen
    ``ForeachOpsKernels.cpp``, torch 2.13): the for-loop's results bit for bit, without a
    Python call per tensor and op. ``foreach`` is False, so the rules take the for-loop's
    formulas. Per tensor stay the maximum (the foreach maximum is a ``clamp_min``) and, in
    bfloat16 and float16, the product with a scalar, which torch 2.13's ``_foreach_mul``
    rounds differently from ``Tensor.mul`` there (measured by
    ``test_for_loop_path_is_torchs_bit_for_bit``)."""

    foreach = False
    maximum_ = _LoopOps.maximum_

    def mul(self, xs, s):
        return (super() if _wide(xs) else LOOP).mul(xs, s)

    def mul_(self, xs, s):
        (super() if _wide(xs) else LOOP).mul_(xs, s)


def _wide(xs: Sequence[Tensor]) -> bool:
    return xs[0].dtype in (torch.float32, torch.float64)


LOOP = _LoopOps()
FOREACH = _ForeachOps()
RUNS = _RunOps()


# --------------------------------------------------------------------------- the bucket


@dataclass
class Bucket:
    """What an update rule sees: same-length lists, complex tensors already viewed
    as real, ``grads`` already negated (maximize) and L2-decayed.

    ``t`` holds the post-increment step count per tensor: Python floats, or 0-d
    float64 device tensors when ``capturable`` (empty for a rule whose formulas do not
    read t).  ``lr``/``weight_decay`` are
    Python floats (0-d float64 device tensor lr when capturable and given as a Tensor;
    under ``differentiable`` a Tensor that requires grad stays that 0-d tensor, as torch's
    ``_to_scalar`` leaves it, so that the step is differentiable in it).

    ``differentiable``: the step is being recorded by autograd. A rule then avoids the
    in-place ops that would overwrite a tensor the backward pass has saved (torch
    2.13's ``_single_tensor_*`` ``if differentiable:`` branches, cited in each rule).
    """

    params: list[Tensor]
    grads: list[Tensor]
    state: dict[str, list[Tensor]]
    states: list[dict[str, Any]]
    t: list[Any] = field(default_factory=list)
    lr: Any = 0.0
    weight_decay: Any = 0.0
    capturable: bool = False
    differentiable: bool = False


# --------------------------------------------------------------------------- base class


class OptimizerBase(torch.optim.Optimizer):
    """Skeleton shared by all optproof optimizers.

    Subclasses set the class attributes below and implement `_init_state`
    and `_update` (plus, optionally, `_decay_lrs`).
    """

    #: flags ``__setstate__`` fills in with ``setdefault`` (torch's list + ours)
    _flag_defaults: dict[str, Any] = {}
    #: ``None`` if sparse gradients are supported, else torch's error text
    _sparse_error: str | None = "does not support sparse gradients"
    #: keeps a ``state['step']`` counter
    _has_step: bool = True
    #: the rule's formulas read t (bias corrections, schedules): Adadelta's and RMSprop's do
    #: not, and torch's never take ``step.item()`` for them (a host read per tensor)
    _reads_step: bool = True
    #: view complex tensors as real before the rule (SGD works on complex natively)
    _view_complex: bool = True
    #: the for-loop path adds L2 decay to a complex grad before ``view_as_real``, as
    #: torch's ``_single_tensor_*`` do for Adam(W), Adagrad, Adadelta, RMSprop (bitwise)
    _l2_complex_first: bool = False
    #: per-param state tensors (same shape as the param) the rule needs
    _tensor_state_keys: tuple[str, ...] = ()
    #: torch runs this rule's foreach path under ``differentiable=True`` (SGD only)
    _foreach_differentiable: bool = False
    #: torch's text when a group is switched to ``fused`` and ``differentiable`` after
    #: construction (the constructor's text where torch's fused kernel has none of its own)
    _fused_differentiable_error: str = "`fused` does not support `differentiable`"

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        if defaults.get("fused"):
            if defaults.get("differentiable"):
                raise RuntimeError("`fused` does not support `differentiable`")
            if defaults.get("foreach"):
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        self._check_group(defaults)

    # -- torch.optim compatibility ------------------------------------------------

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self._flag_defaults.items():
                group.setdefault(key, value)
            for p in group["params"]:
                p_state = self.state.get(p, {})
                if "step" in p_state and not torch.is_tensor(p_state["step"]):
                    p_state["step"] = self._new_step(group, p, float(p_state["step"]))
                if p_state:
                    self._fix_loaded_state(group, p, p_state)
                    if group.get("state_dtype") is not None:
                        _widen_state(group, p, p_state)  # load_state_dict cast it to p.dtype

    def _fix_loaded_state(self, group: dict, p: Tensor, state: dict) -> None:
        """Hook run on each non-empty state after ``load_state_dict``."""

    def _check_group(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        if group.get("state_dtype") not in (None, torch.float32):
            raise ValueError(
                f"optproof.torch_impl.{name}: state_dtype must be None (state in the "
                f"parameter's dtype) or torch.float32, got {group['state_dtype']!r}"
            )

    @staticmethod
    def _new_step(group: dict[str, Any], p: Tensor, value: float = 0.0) -> Tensor:
        """``state['step']``: a 0-d float32 (float64 under a float64 default dtype)
        tensor on CPU, or on the param's device when capturable/fused (torch's
        note "special device hosting for step")."""
        if group.get("capturable") or group.get("fused"):
            dtype = torch.float32 if group.get("fused") else scalar_dtype()
            return torch.tensor(value, dtype=dtype, device=p.device)
        return torch.tensor(value, dtype=scalar_dtype())

    # -- hooks for subclasses --------------------------------------------------------

    def _needs_state(self, group: dict[str, Any]) -> bool:
        return True

    def _init_state(self, group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        """Create the missing entries of ``state`` (lazy initialisation)."""
        raise NotImplementedError

    def _decay_lrs(self, group: dict[str, Any], b: Bucket) -> list[Any]:
        """Learning rate(s) used by decoupled weight decay (default: the group lr)."""
        return [b.lr] * len(b.params)

    def _update(self, group: dict[str, Any], b: Bucket, ops: _LoopOps) -> None:
        raise NotImplementedError

    # -- the step skeleton -------------------------------------------------------------

    def step(self, closure: Callable[[], Any] | None = None):
        """Perform a single optimization step.

        Runs under ``torch.set_grad_enabled(self.defaults["differentiable"])`` as torch's
        ``_use_grad_for_differentiable`` does: ``no_grad`` unless the optimizer was built
        with ``differentiable=True``.

        Args:
            closure (Callable, optional): A closure that reevaluates the model
                and returns the loss (run under ``torch.enable_grad()``).
        """
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable"))):
            return self._step(closure)

    def _step(self, closure: Callable[[], Any] | None):
        if any(g.get("capturable") for g in self.param_groups):
            self._accelerator_graph_capture_health_check()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        self._check_group(group)
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        needs_state = self._needs_state(group)
        widen = group.get("state_dtype") is not None
        # Each state dict is looked up here, from the group's own parameter list, and handed
        # down with its parameter: under torch.compile, a call of `_run` that graph-breaks
        # is traced as a frame of its own, and dynamo 2.13 resolves ``self.state[p]`` there
        # to "the i-th key of ``self.state``" with no guard on which parameter ``p`` is: the
        # graph built for the first parameter's call was replayed for every later call (with
        # ``.item()`` of the step in every call, the first step advanced once per parameter).
        states = self._states(group, params)
        for p, state in zip(params, states):
            if p.grad.is_sparse and self._sparse_error is not None:
                raise RuntimeError(self._sparse_error)
            if needs_state:
                self._init_state(group, p, state)
                if widen:
                    _widen_state(group, p, state)
        if group.get("capturable"):
            self._check_capturable(params)
        differentiable = bool(group.get("differentiable"))
        if group.get("fused"):
            if differentiable:
                raise RuntimeError(self._fused_differentiable_error)
            return fused.step(self, group, params)
        foreach = group.get("foreach")
        if foreach is None:  # torch's _default_to_fused_or_foreach: never under differentiable
            foreach = not differentiable and _default_foreach(params)
        if foreach and differentiable and not self._foreach_differentiable:
            raise AssertionError("_foreach ops don't support autograd")
        if not foreach:
            batched = not differentiable and not torch.compiler.is_compiling()
            for idx in loop_runs(params):
                # a run of several tensors is real and dense (`loop_runs`); alone, a
                # tensor's own methods cost less
                run = [params[i] for i in idx]
                ops = RUNS if batched and len(run) > 1 and run[0].is_cpu else LOOP
                self._run(group, run, [states[i] for i in idx], ops)
            return
        dense = []
        for i, p in enumerate(params):
            if p.grad.is_sparse:  # torch falls back to per-tensor ops for sparse grads too
                self._run(group, [p], [states[i]], LOOP)
            else:
                dense.append(i)
        for idx in group_by_device_and_dtype([params[i] for i in dense]):
            idx = [dense[i] for i in idx]
            self._run(group, [params[i] for i in idx], [states[i] for i in idx], FOREACH)

    def _states(self, group: dict[str, Any], params: list[Tensor]) -> list[dict[str, Any]]:
        """The state dict of each of ``params`` (shared empty dicts when the rule keeps none)."""
        return [self.state[p] for p in params] if self._needs_state(group) else [{}] * len(params)

    def _check_capturable(self, params: list[Tensor]) -> None:
        devices = capturable_supported_devices()
        for p in params:
            step = self.state[p].get("step") if self._has_step else None
            if p.device.type not in devices or (
                step is not None and step.device.type != p.device.type
            ):
                raise AssertionError(
                    "If capturable=True, params and state_steps must be on supported "
                    f"devices: {devices}."
                )

    def _run(self, group: dict[str, Any], params: list[Tensor], states: list[dict[str, Any]],
             ops: _LoopOps) -> None:
        """Common prologue (step, complex views, maximize, weight decay), then the rule
        (``states``: the state dict of each parameter)."""
        # under torch.compile the scalars stay 0-d tensors computed from the step, as torch's
        # ``_get_value`` keeps them: no ``.item()`` to break the graph once per call, and no
        # host float for the compiler to turn into a graph input
        capturable = bool(group.get("capturable")) or torch.compiler.is_compiling()
        differentiable = bool(group.get("differentiable"))
        b = Bucket(
            params=params,
            grads=[p.grad for p in params],
            state={k: [s[k] for s in states] for k in self._tensor_state_keys_for(group)},
            states=states,
            lr=_scalar(group["lr"], capturable, params[0], differentiable),
            weight_decay=_scalar(group.get("weight_decay", 0), False, None, differentiable),
            capturable=capturable,
            differentiable=differentiable,
        )
        if self._view_complex and params[0].is_complex():  # a bucket holds one dtype
            b.params, b.grads = [_real(p) for p in params], [_real(g) for g in b.grads]
            b.state = {k: [_real(t) for t in ts] for k, ts in b.state.items()}
        state_dtype = group.get("state_dtype")
        stores = _widen(b, state_dtype) if state_dtype is not None else ()
        if self._has_step:
            steps = [s["step"] for s in states]
            if ops.foreach and steps[0].is_cpu:
                torch._foreach_add_(steps, torch.tensor(1.0), alpha=1.0)
            else:
                for s in steps:
                    s += 1
            if self._reads_step:
                b.t = [s.to(torch.float64) for s in steps] if capturable else [s.item() for s in steps]
        if group["maximize"]:
            b.grads = ops.neg(b.grads)
        if b.weight_decay != 0:
            if group.get("decoupled_weight_decay"):
                factors = [1 - lr * b.weight_decay for lr in self._decay_lrs(group, b)]
                ops.mul_(b.params, factors)
            elif isinstance(b.weight_decay, Tensor):  # requires grad (differentiable), as torch:
                # g.addcmul_(θ.clone(), λ) (sgd.py / adam.py ``_single_tensor_*``)
                b.grads = ops.addcmul(b.grads, [p.clone() for p in b.params],
                                      [b.weight_decay] * len(b.params))
            elif ops.foreach or stores or not (self._l2_complex_first and params[0].is_complex()):
                b.grads = ops.add(b.grads, b.params, alpha=b.weight_decay)
            else:  # torch's for-loop path adds λθ in complex arithmetic, then views as real
                grad = torch.view_as_complex(b.grads[0]).add(params[0], alpha=b.weight_decay)
                b.grads = [torch.view_as_real(grad)]
        self._update(group, b, ops)
        for param, work in stores:
            param.copy_(work)  # mixed precision: the one rounding to the parameter dtype

    def _tensor_state_keys_for(self, group: dict[str, Any]) -> tuple[str, ...]:
        return self._tensor_state_keys


def state_dtype_for(group: dict[str, Any], p: Tensor) -> torch.dtype:
    """dtype of ``p``'s state tensors: ``p.dtype``, or float32 for a bfloat16/float16 ``p``
    under ``state_dtype=torch.float32``."""
    sd = group.get("state_dtype")
    if sd is None or not p.is_floating_point():
        return p.dtype
    return torch.promote_types(p.dtype, sd)


def _widen_state(group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
    """Cast ``p``'s per-element state tensors to `state_dtype_for` (exact: a widening)."""
    dtype = state_dtype_for(group, p)
    if dtype == p.dtype:
        return
    for key, value in state.items():
        if (key not in ("step", "mu_product") and isinstance(value, Tensor)
                and value.dtype != dtype and value.shape == p.shape):
            state[key] = value.to(dtype)


def _widen(b: Bucket, state_dtype: torch.dtype) -> list[tuple[Tensor, Tensor]]:
    """Mixed precision on the for-loop and foreach paths: replace the bucket's bfloat16/float16
    params and grads by float32 working copies (exact) and return ``(param, copy)`` pairs
    that `OptimizerBase._run` stores back after the rule: every operation of the rule
    then rounds in float32 and the parameter is rounded to its dtype once, as in the fused
    kernels (the bound: ``optproof.reference.mixed.mixed_bounded_run``)."""
    stores = []
    b.params, b.grads = list(b.params), list(b.grads)
    for i, p in enumerate(b.params):
        dtype = torch.promote_types(p.dtype, state_dtype) if p.is_floating_point() else p.dtype
        if dtype != p.dtype:
            work = p.to(dtype)
            stores.append((p, work))
            b.params[i], b.grads[i] = work, b.grads[i].to(dtype)
    return stores


def _scalar(x: Any, capturable: bool, like: Tensor | None, differentiable: bool = False) -> Any:
    """A hyperparameter as used in the math: Python float (``.item()`` of a
    Tensor), or a 0-d tensor on ``like``'s device when capturable; under ``differentiable`` a
    Tensor that requires grad is kept, squeezed to 0-d (torch's ``_to_scalar``)."""
    if isinstance(x, Tensor):
        if differentiable and x.requires_grad:
            return x.squeeze() if x.dim() else x
        if capturable:
            return x.reshape(()).to(device=like.device, dtype=torch.float64)
        return x.item()
    return x


# the fused path imports state_dtype_for from this module, so it is imported last
from . import fused  # noqa: E402
