"""torch-style targets: ``torch.optim.Optimizer`` subclasses (or factories returning one).

The target is constructed as ``Target(params, **keywords)`` with torch.optim's keyword names
(translated by ``rename`` for libraries that spell them differently), stepped with
``param.grad`` set and every group's ``lr`` set to the step's learning rate, and read back
through ``optimizer.state[param]`` (torch's keys) and ``state_dict()``.

A keyword the target does not take (``TypeError: unexpected keyword argument``) is dropped
and the construction retried when its value is torch's default (the target then behaves as
if it had it); otherwise the configuration is `Unsupported`.

A library that keeps its state under other keys (bitsandbytes ``state1``, ``state2``) names
torch's key for each (``state_keys``; ``None`` hides an entry whose meaning differs, such as
heavyball's bias-corrected ``exp_avg``); entries stored as low-bit codes are never read as
floats: the library's ``quantized`` reader exposes them as
[QuantizedState][optproof.audit.adapters.base.QuantizedState]. A learning rate held in a
tensor (torchao) is filled in place. ``stance`` names a ``torch.compiler.set_stance`` the
steps run under (``"force_eager"`` for libraries that compile their step with
``torch.compile``: the audit then checks the eager program, not the compiled kernel).
A library that holds its hyperparameters or computes its per-step scalars in float32 declares
that precision model (``precision``: a `Rounding`, as the Keras and optax adapters do); the
default is torch.optim's (Python floats, float64 scalars).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from optproof.reference.bounds import Rounding

from .base import Adapter, QuantizedState, Session, Unsupported

__all__ = ["TorchAdapter", "TorchSession"]

_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def _flat(tensor) -> list[float]:
    import torch
    return tensor.detach().to("cpu", torch.float64).reshape(-1).tolist()


class TorchSession(Session):
    def __init__(self, adapter: TorchAdapter, hyper: Mapping[str, Any],
                 params: Sequence[np.ndarray], dtype: str, device: str, defaults=None):
        import torch
        self.adapter, self.dtype, self.device = adapter, getattr(torch, dtype), device
        self.hyper = dict(hyper)
        # torch.tensor copies: the target must never write into the problem's arrays
        self.tensors = [torch.nn.Parameter(torch.tensor(p, dtype=torch.float64)
                                           .to(self.dtype).to(device)) for p in params]
        self.dropped: list[str] = []
        self.optimizer = adapter.construct(self.tensors, self.hyper, defaults or {}, self.dropped)

    def step(self, grads, lr):
        import torch
        for p, gr in zip(self.tensors, grads):
            p.grad = torch.tensor(gr, dtype=torch.float64).to(self.dtype).to(self.device)
        for group in self.optimizer.param_groups:
            if lr is None or "lr" not in group:  # None: the target's own
                continue
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        if self.adapter.stance:
            with torch.compiler.set_stance(self.adapter.stance):
                self.optimizer.step()
        else:
            self.optimizer.step()

    def params(self):
        return [_flat(p) for p in self.tensors]

    def _entries(self, p):
        """The state entries of ``p`` under torch's keys, without low-bit codes."""
        import torch
        for key, value in getattr(self.optimizer, "state", {}).get(p, {}).items():
            name = self.adapter.state_keys.get(key, key)
            if name is None:
                continue
            if isinstance(value, torch.Tensor) and (
                    type(value) not in (torch.Tensor, torch.nn.Parameter)
                    or value.ndim > 0 and not value.is_floating_point()):
                continue  # codes (a tensor subclass, or integers): read by quantized_state()
            yield name, value

    def state(self):
        """Each state entry flattened to floats (a 0-d entry gives one float): which keys
        hold one value per element and which one per tensor is the hypothesis's to say."""
        import torch
        out = []
        for p in self.tensors:
            entry: dict[str, Any] = {}
            for key, value in self._entries(p):
                if isinstance(value, torch.Tensor) and not value.is_complex():
                    entry[key] = _flat(value)
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    entry[key] = [float(value)]
            out.append(entry)
        return out

    def state_dtypes(self):
        import torch
        return [{k: str(v.dtype).removeprefix("torch.") for k, v in self._entries(p)
                 if isinstance(v, torch.Tensor) and v.is_floating_point()}
                for p in self.tensors]

    def quantized_state(self) -> list[dict[str, QuantizedState]] | None:
        read = self.adapter.quantized
        if read is None:
            return None
        return [read(self.optimizer, p) for p in self.tensors]

    def raw_state_keys(self) -> list[set[str]]:
        return [set(getattr(self.optimizer, "state", {}).get(p, {})) for p in self.tensors]

    def clone(self) -> TorchSession:
        """A new optimizer on copies of the current parameters, loaded from this one's
        ``state_dict()`` (a checkpoint round trip)."""
        import torch
        new = object.__new__(TorchSession)
        new.adapter, new.dtype, new.device, new.hyper = self.adapter, self.dtype, self.device, self.hyper
        new.tensors = [torch.nn.Parameter(p.detach().clone()) for p in self.tensors]
        new.dropped = []
        saved = copy.deepcopy(self.optimizer.state_dict())
        new.optimizer = self.adapter.construct(new.tensors, self.hyper, {}, new.dropped)
        new.optimizer.load_state_dict(saved)
        return new


class TorchAdapter(Adapter):
    """A torch-style target. ``rename`` maps torch keywords to the target's
    (``{"betas": ("betas", None)}``; a callable converts the value); ``fixed`` adds keywords
    (``{"weight_decouple": False}``); ``expected_rule`` is the variant the target claims
    (``None``: inferred from the class name); ``extra`` are the user's constructor arguments
    (``Adapter.args``); ``implied`` the hyperparameters the class has built in;
    ``state_keys``, ``quantized``, ``stance`` and ``precision`` as in the module docstring."""

    framework = "torch"
    torch_style = True

    def __init__(self, target: Any, name: str, *, framework: str = "torch",
                 rename: Mapping[str, tuple[str, Callable | None]] | None = None,
                 fixed: Mapping[str, Any] | None = None, expected_rule: str | None = None,
                 extra: Mapping[str, Any] | None = None,
                 implied_hyper: Mapping[str, Any] | None = None,
                 state_keys: Mapping[str, str | None] | None = None,
                 quantized: Callable[[Any, Any], dict[str, QuantizedState]] | None = None,
                 stance: str | None = None, precision: Rounding | None = None):
        super().__init__(target, name, extra)
        self.framework = framework
        self.rename = dict(rename or {})
        self.reverse = {new: key for key, (new, convert) in self.rename.items()
                        if new and convert is None}
        self.fixed = dict(fixed or {})
        self.expected_rule = expected_rule
        self._implied = dict(implied_hyper or {})
        self.state_keys = dict(state_keys or {})
        self.quantized = quantized
        self.stance = stance
        self.precision = precision

    @property
    def extra(self) -> dict[str, Any]:
        return self.args

    def expected(self):
        return self.expected_rule

    def implied_hyper(self):
        return dict(self._implied)

    def rounding(self, dtype):
        return self.precision

    def translate(self, hyper: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in self.constructor_hyper(hyper).items():
            name, convert = self.rename.get(key, (key, None))
            if name is None:
                if value not in (False, 0, 0.0):
                    raise Unsupported(f"{self.framework} target has no equivalent of {key}={value!r}")
                continue
            out[name] = convert(value) if convert else value
        return {**out, **self.fixed, **self.args}

    def construct(self, tensors, hyper, defaults, dropped):
        import torch
        keywords = self.translate(hyper)
        while True:
            try:
                optimizer = self.target(tensors, **keywords)
                break
            except TypeError as error:
                match = _UNEXPECTED.search(str(error))
                if not match or match.group(1) not in keywords:
                    raise
                key = match.group(1)
                value = keywords.pop(key)
                if key in defaults and defaults[key] == value or value is False:
                    dropped.append(key)
                    continue
                raise Unsupported(f"the target takes no keyword {key!r} "
                                  f"(configuration sets {key}={value!r})") from None
        if not isinstance(optimizer, torch.optim.Optimizer) and not hasattr(optimizer, "step"):
            raise TypeError(f"{self.name}(...) returned {type(optimizer).__name__}, "
                            "not an optimizer")
        return optimizer

    def open(self, hyper, params, dtype, device, defaults=None):
        return TorchSession(self, hyper, params, dtype, device, defaults)

    def open_defaults(self, params, dtype, given):
        session = TorchSession(self, {}, params, dtype, "cpu")
        if given:
            session.optimizer = self.target(session.tensors, **self.fixed, **self.args, **given)
        return session
