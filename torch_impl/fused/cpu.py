"""The CPU backend of the fused path: a C++ extension compiled once per machine.

Technique (chosen by measurement, see ``bench/README.md``): ``csrc/fused_cpu.cpp`` is
compiled with `torch.utils.cpp_extension.load` the first time a ``fused=True``
optimizer steps on CPU, into torch's persistent extension cache
(``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``), saying so in one line
on standard error when the compile starts; later processes load the cached ``.so`` in well
under a second, silently.  The source includes only the small ATen headers
and torch's pybind11 tensor casters (``torch/csrc/utils/pybind.h``, not the much larger
``torch/extension.h``), so the one-off compile takes about 20 s on the 2-core CI machine for
every rule, flag, dtype and tensor count, where
``torch.compile`` took 30-44 s *per* (rule, flags, dtype, list length) and recompiled when a
per-step scalar changed (numbers in ``bench/README.md``).

The module name carries a hash of the source, the flags and the host CPU's feature flags:
``-march=native`` code is never loaded on a CPU that cannot run it, and an edited source
is rebuilt.  Flags: ``-O3 -march=native`` (auto-vectorised loops), ``-fno-math-errno``
(vectorised ``sqrt``) and ``-ffp-contract=off`` (no fused multiply-add: every operation
rounds once, as the bound in ``optproof.reference.bounds`` counts and as the for-loop path
does) — and never ``-ffast-math``.

If no compiler is available (or the build fails), `load` returns ``None`` after one
`RuntimeWarning`, and the fused path runs the foreach kernels instead.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

__all__ = ["SOURCE", "FLAGS", "build", "cache_folder", "load", "module_name", "build_seconds"]

SOURCE = Path(__file__).with_name("csrc") / "fused_cpu.cpp"
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fopenmp"]
#: -fopenmp: ``at::parallel_for`` is an inline ``#pragma omp parallel`` (torch's OpenMP
#: backend); the .so's libgomp.so.1 dependency resolves to the copy torch already loaded
LDFLAGS = ["-fopenmp"]

_lock = threading.Lock()
_state: dict[str, object] = {}

#: seconds the last `load` took in this process (compile or cache hit), or None
build_seconds: float | None = None


def _cpu_signature() -> str:
    """The host CPU's feature flags (``-march=native`` depends on them)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def module_name(extra_cflags: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(FLAGS + list(extra_cflags) + LDFLAGS).encode(),
                 _cpu_signature().encode(), torch.__version__.encode()):
        digest.update(part)
    return f"optproof_fused_{digest.hexdigest()[:12]}"


def cache_folder(name: str) -> Path:
    """The folder of torch's extension cache that holds the extension ``name``
    (``$TORCH_EXTENSIONS_DIR/<name>``, by default under ``~/.cache/torch_extensions``)."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(name, verbose=False))


def build(extra_cflags: tuple[str, ...] = (), verbose: bool = False):
    """Compile (or load from the cache) the extension with ``FLAGS`` and ``extra_cflags``.

    A compile (no ``.so`` in the cache yet) first prints one line to standard error naming
    the cache folder, since it takes 15–60 s.  Raises whatever the build raises.
    ``extra_cflags`` lets the tests build the kernel's other instruction-set paths on one
    machine (``-mno-avx512f``: the AVX2 loops)."""
    from torch.utils.cpp_extension import load as _load

    name = module_name(tuple(extra_cflags))
    folder = cache_folder(name)
    if not (folder / f"{name}.so").exists():
        print(f"optproof: compiling the fused CPU kernels once for this machine and torch "
              f"(15-60 s) into {folder}", file=sys.stderr, flush=True)
    return _load(name=name, sources=[str(SOURCE)], extra_cflags=FLAGS + list(extra_cflags),
                 extra_ldflags=LDFLAGS, build_directory=str(folder), verbose=verbose)


def load(verbose: bool = False):
    """The extension module (built or loaded once per process),
    or ``None`` with a warning if it cannot be built."""
    global build_seconds
    if "ops" in _state:
        return _state["ops"]
    with _lock:
        if "ops" in _state:
            return _state["ops"]
        start = time.perf_counter()
        ops = None
        if os.environ.get("OPTPROOF_FUSED_CPU", "1") == "0":
            reason = "disabled by OPTPROOF_FUSED_CPU=0"
        else:
            try:
                ops = build(verbose=verbose)
                reason = ""
            except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, build error
                reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1:]}"
                ops = None
        build_seconds = time.perf_counter() - start
        if ops is None:
            warnings.warn(
                "optproof.torch_impl: the fused CPU kernels could not be built "
                f"({reason}); fused=True runs the foreach kernels instead (same results "
                "within the derived bound, more passes over memory).",
                RuntimeWarning, stacklevel=3)
        _state["ops"] = ops
        return ops


def step(rule: str, variant: int, flags: int, params, grads, states, counters, scalars,
         rows) -> bool:
    """Run the kernel on one bucket and advance its counters (see ``csrc/fused_cpu.cpp``);
    False, with nothing written, if a counter does not hold the value its row expects."""
    return _state["ops"].step(rule, variant, flags, params, grads, states, counters, scalars, rows)


def update_counters(xs, factors, add: float) -> list[float]:
    """``x ← x·f + add`` on 1-element CPU tensors (step counters, mu_products), in their
    dtype; returns the new values."""
    return _state["ops"].update_counters(xs, factors, add)
