"""Adapters: how the auditor constructs, steps and reads a target of one framework.

An adapter turns the audit's configuration (torch.optim keyword names, a learning rate per
step, parameters and gradients as float64 arrays of values representable in the audited
dtype) into calls of the framework, and reads back exact parameter values (and, for
torch-style optimizers, their state under torch's keys). One small module per framework;
the optional ones (``optax``, ``keras``, ``timm``, ``pytorch_optimizer``, ``bitsandbytes``,
``torchao``, ``deepspeed``, ``heavyball``) import their library only when used.

* ``torch`` — ``torch.optim.Optimizer`` subclasses (torch, optproof, user code), and through
  it the torch-style libraries, each with its keyword translations, state keys and expected
  variants: ``timm``, ``pytorch_optimizer``, ``bitsandbytes``, ``torchao``, ``deepspeed``,
  ``heavyball`` (registered in ``optproof.audit.target.TORCH_STYLE``).
* ``optax`` — optax gradient transformations (jax on CPU, float64 enabled).
* ``keras`` — Keras 3 optimizers on the torch backend.

A low-bit optimizer's quantized state is read as
[QuantizedState][optproof.audit.adapters.base.QuantizedState] (``Session.quantized_state``).
"""

from __future__ import annotations

from .base import Adapter, QuantizedState, Session, Unsupported

__all__ = ["Adapter", "QuantizedState", "Session", "Unsupported"]
