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
from pathlib import Path

__version__ = "0.1.0"

# In the source tree the subpackages are the folders beside this one (pyproject.toml's
# package-dir maps derivations/ to optproof.derivations, and so on); an installed copy has
# them inside. Python run from the tree's root imports this folder, not the installed copy
# (the current directory comes first on sys.path), so there they are looked up beside it.
_TREE = Path(__file__).resolve().parent.parent
if not Path(__file__).with_name("audit").is_dir() and (_TREE / "audit" / "__init__.py").is_file():
    __path__.append(str(_TREE))

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
