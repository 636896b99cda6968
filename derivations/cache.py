"""An on-disk cache of derived programs.

Deriving a program runs SymPy (the bias correction is a ``summation``: about two seconds on
a first run), so the programs of the registered rules are kept in
``$XDG_CACHE_HOME/optproof/programs-<hash>.pkl`` (``~/.cache`` by default). The hash covers
SymPy's version and every source file of ``optproof.derivations``: any edit to a rule starts
a new file, so a cached program can never be stale. A cache that cannot be read or written
is ignored.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import sympy as sp

__all__ = ["load", "store"]


@lru_cache(maxsize=1)
def _path() -> Path:
    digest = hashlib.sha256(sp.__version__.encode())
    for source in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(source.read_bytes())
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "optproof" / f"programs-{digest.hexdigest()[:16]}.pkl"


_entries: dict[tuple, Any] | None = None


def _all() -> dict[tuple, Any]:
    global _entries
    if _entries is None:
        try:
            with open(_path(), "rb") as fh:
                _entries = pickle.load(fh)
        except Exception:  # noqa: BLE001 - no cache yet, or an unreadable one
            _entries = {}
    return _entries


def load(key: tuple) -> Any | None:
    """The cached program under ``key``, or None."""
    return _all().get(key)


def store(key: tuple, program: Any) -> None:
    """Cache ``program`` under ``key`` (best effort: a read-only home derives every time)."""
    entries = _all()
    entries[key] = program
    try:
        path = _path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(entries, fh)
        tmp.replace(path)
    except Exception:  # noqa: BLE001
        pass
