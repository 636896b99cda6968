"""optproof: the verified reference implementation of the classic deep-learning optimizers.

The public face of the four layers: ``optproof.derivations`` (SymPy specs), ``optproof.reference``
(mpmath reference steps and error bounds), ``optproof.torch_impl`` (production torch optimizers)
and ``optproof.audit``. The most used names are re-exported here, imported on first use so that
``import optproof`` stays light:

>>> import optproof
>>> optproof.rule("adamw").summary  # doctest: +ELLIPSIS
'AdamW, decay scaled by the learning rate...'
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "rule": "optproof.derivations",
    "rules": "optproof.derivations",
    "run": "optproof.reference",
    "bounded_run": "optproof.reference",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'optproof' has no attribute {name!r}")
