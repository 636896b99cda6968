"""Adapters: how the auditor constructs, steps and reads a target of one framework.

An adapter turns the audit's configuration (torch.optim keyword names, a learning rate per
step, parameters and gradients as float64 arrays of values representable in the audited
dtype) into calls of the framework, and reads back exact parameter values (and, for
torch-style optimizers, their state under torch's keys). One small module per framework;
the optional ones (``optax``, ``keras``, ``timm``, ``pytorch_optimizer``) import their library
only when used.

* `torch` — ``torch.optim.Optimizer`` subclasses (torch, optproof, user code; timm and
  pytorch-optimizer classes with their keyword translations).
* `optax` — optax gradient transformations (jax on CPU, float64 enabled).
* `keras` — Keras 3 optimizers on the torch backend.
"""

from __future__ import annotations

from .base import Adapter, Session, Unsupported

__all__ = ["Adapter", "Session", "Unsupported"]
