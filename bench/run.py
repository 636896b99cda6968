"""optproof.torch_impl against torch.optim: every rule, every kernel path, in one run.

    python bench/run.py [--quick] [--json FILE] [--device cpu|cuda|all] [--rules adam,sgd]

For each rule (SGD with momentum, Adagrad, Adadelta, RMSprop, Adam, AdamW, NAdam), problem
size (1 × 10M, 100 × 100k, 2000 × 1k elements), dtype (float32, bfloat16) and device (CPU;
CUDA when present) every available path of both libraries — for-loop, foreach, fused (torch
has fused kernels for SGD, Adagrad, Adam and AdamW only) — steps the same parameters,
gradients and state: the very same memory (`share_state`), since where a buffer lies
in physical memory moves a memory-bound step by several per cent.  The paths of one (rule,
size, dtype, device) cell are timed *interleaved*, round-robin in a shuffled order, one step
each per round, each after the caches were evicted (`cache_flusher`), so that a shared
or throttled machine slows them all alike: the ratios measured in the same run are the
claim, not the absolute times.

Per record: the median step time after warm-up and the median page faults per step, the
bytes a single-pass kernel must move per element per step (reads + writes of the parameter,
the gradient and each state tensor, in the dtype), the effective bandwidth, and the ratio
to torch's fastest path for the same rule, size, dtype and device (``ratio``) and to
torch's fused path where it has one
(``ratio_torch_fused``), each the median over rounds of the paired per-round ratio, with a
95 % interval (``ratio_ci``, ``ratio_torch_fused_ci``).

Every cell also times, in the same rounds, an in-place ``g ← g + 0·θ`` over the cell's flat
gradient and parameter buffers: the *stream* bandwidth the memory system gives a
single-pass kernel right then.  From it come ``stream_fraction`` (the fused kernel's
bandwidth as a fraction of it) and ``floor_ratio``: the time a kernel moving the minimum
bytes at stream bandwidth would take, over torch's fastest path, per round — about the best
``ratio`` a single-pass kernel can reach in this run.  On CUDA the run also measures the
device-to-device copy bandwidth and reports each kernel's fraction of it.  A rich table
comes last, then each float32 CPU cell against its target (``TARGETS``), then every cell's
for-loop and foreach paths against torch's same path (``ratio_same_path``, target
``SAME_PATH_TARGET``: the Python around the same kernels costs at most 5 %).

**Anchors.** Where installed, other libraries' CPU Adam and AdamW step in the same rounds
of the ``adam`` and ``adamw`` cells (`anchors`): DeepSpeed's ``DeepSpeedCPUAdam`` (the
AVX C++ kernel of ZeRO-Offload; ``adamw_mode`` per rule, its default float32 state and, for
16-bit parameters, also ``fp32_optimizer_states=False``), bitsandbytes' ``Adam``/``AdamW``
(32-bit state) and ``AdamW8bit`` (8-bit state on every tensor: ``min_8bit_size=0``) through its
CPU back end, and with ``--anchors torchao`` torchao's ``_AdamW`` and ``AdamW8bit``
(``torch.compile``d on first use: minutes per cell on a small CPU, hence opt-in). Each
record then carries ``ratio_deepspeed``, the paired ratio to DeepSpeed's fastest path in the
cell, and a last table checks optproof's fused Adam/AdamW against it (target ≤ 1.0 on every
float32 and bfloat16 cell). An anchor keeps its own state where its layout differs (8-bit
codes, DeepSpeed's float32 state for bfloat16 parameters): those buffers are not shared.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import resource  # POSIX
except ImportError:  # pragma: no cover - Windows
    resource = None

import torch
from torch import Tensor

import optproof.torch_impl as ours

#: rule → (class name, constructor keywords, state tensors a single pass reads and writes)
RULES: dict[str, tuple[str, dict[str, Any], int]] = {
    "sgd": ("SGD", {"lr": 1e-3, "momentum": 0.9}, 1),
    "adagrad": ("Adagrad", {}, 1),
    "adadelta": ("Adadelta", {}, 2),
    "rmsprop": ("RMSprop", {}, 1),
    "adam": ("Adam", {}, 2),
    "adamw": ("AdamW", {}, 2),
    "nadam": ("NAdam", {}, 2),
}
TORCH_FUSED = {"sgd", "adagrad", "adam", "adamw"}
#: float32 CPU targets: (torch path the ratio is taken against, largest ratio)
TARGETS = {**{r: ("fused", 1.0) for r in TORCH_FUSED},
           **{r: ("fastest", 0.33) for r in ("adadelta", "rmsprop", "nadam")}}
#: optproof's for-loop and foreach paths against torch's same path: largest ratio, every cell
SAME_PATH = ("for-loop", "foreach")
SAME_PATH_TARGET = 1.05
SIZES = [(1, 10_000_000), (100, 100_000), (2000, 1_000)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_DTYPES = ("float32", "bfloat16")
PATHS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
#: the libraries whose CPU Adam/AdamW are timed beside the cell's paths (when installed)
ANCHOR_LIBRARIES = ("deepspeed", "bitsandbytes", "torchao")
DEFAULT_ANCHORS = ("deepspeed", "bitsandbytes")


@dataclass
class Record:
    library: str
    rule: str
    impl: str
    dtype: str
    device: str
    numel: int
    tensors: int
    median_ms: float
    gbps: float
    bytes_per_element: int
    ratio: float = float("nan")
    ratio_ci: tuple[float, float] = (float("nan"), float("nan"))
    ratio_torch_fused: float | None = None
    ratio_torch_fused_ci: tuple[float, float] | None = None
    #: optproof's for-loop / foreach path against torch's same path (None for the others)
    ratio_same_path: float | None = None
    ratio_same_path_ci: tuple[float, float] | None = None
    ratio_deepspeed: float | None = None
    ratio_deepspeed_ci: tuple[float, float] | None = None
    floor_ratio: float = float("nan")
    stream_gbps: float = float("nan")
    stream_fraction: float = float("nan")
    copy_fraction: float | None = None
    #: median page faults (minor) per step: a step that allocates pays one per page it touches
    faults_per_step: float = float("nan")
    steps: int = 0
    times_ms: list[float] = field(default_factory=list)


def bytes_per_element(rule: str, dtype: torch.dtype) -> int:
    """Minimum traffic of one step: θ read+write, g read, each state read+write."""
    states = RULES[rule][2]
    return (2 + 1 + 2 * states) * torch.empty((), dtype=dtype).element_size()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def make_params(tensors: int, numel: int, dtype, device, seed=0):
    """The cell's parameters and gradients: ``tensors`` views of ``numel`` elements into one
    flat buffer each (the layout FSDP and ZeRO use), returned with the two buffers."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    flat_p = torch.randn(tensors * numel, generator=gen).to(device=device, dtype=dtype)
    flat_g = (torch.randn(tensors * numel, generator=gen) * 1e-2).to(device=device, dtype=dtype)
    params = [torch.nn.Parameter(v) for v in flat_p.view(tensors, numel).unbind(0)]
    for p, g in zip(params, flat_g.view(tensors, numel).unbind(0)):
        p.grad = g
    return params, flat_p, flat_g


def build(library: str, rule: str, path: str, params):
    name, kwargs, _ = RULES[rule]
    cls = getattr(torch.optim if library == "torch" else ours, name)
    return cls(params, **kwargs, **PATHS[path])


def anchors(rule: str, dtype: torch.dtype, libraries=DEFAULT_ANCHORS) -> dict[tuple, Any]:
    """Other libraries' CPU Adam/AdamW for ``rule`` with torch's defaults, each a factory
    ``params → optimizer`` keyed by (library, path); those not installed are left out."""
    if rule not in ("adam", "adamw"):
        return {}
    kwargs = dict(RULES[rule][1])
    decay = 1e-2 if rule == "adamw" else 0.0  # torch's default λ of each
    out: dict[tuple, Any] = {}
    if "deepspeed" in libraries and _importable("deepspeed"):
        from deepspeed.ops.adam import DeepSpeedCPUAdam
        mode = {"adamw_mode": rule == "adamw", "weight_decay": decay}
        out[("deepspeed", "cpu-adam")] = lambda ps: DeepSpeedCPUAdam(ps, **kwargs, **mode)
        if dtype != torch.float32:
            out[("deepspeed", "cpu-adam-16bit-state")] = lambda ps: DeepSpeedCPUAdam(
                ps, **kwargs, **mode, fp32_optimizer_states=False)
    if "bitsandbytes" in libraries and _importable("bitsandbytes"):
        import bitsandbytes as bnb
        cls = bnb.optim.AdamW if rule == "adamw" else bnb.optim.Adam
        out[("bitsandbytes", "32bit")] = lambda ps: cls(ps, weight_decay=decay)
        out[("bitsandbytes", "8bit")] = lambda ps: bnb.optim.AdamW8bit(
            ps, weight_decay=decay, min_8bit_size=0)
    if "torchao" in libraries and _importable("torchao"):
        from torchao.optim import AdamW8bit, _AdamW
        out[("torchao", "adamw")] = lambda ps: _AdamW(ps, weight_decay=decay)
        out[("torchao", "8bit")] = lambda ps: AdamW8bit(ps, weight_decay=decay)
    return out


def _importable(name: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(name) is not None


def share_state(optimizers, params) -> list[tuple[dict, str, Tensor]]:
    """Point every optimizer's per-element state (the tensors shaped like their parameter)
    at one flat buffer per key, filled from the first optimizer's state, so that all paths
    of a cell read and write the very same memory: where a buffer lies in physical memory
    moves a memory-bound step by several per cent on a VM (bench/README.md), which unshared
    copies would charge to the library.
    Per-tensor scalars (``step``, NAdam's ``mu_product``) stay each optimizer's own, as does
    a state kept in a tensor subclass (torchao's quantized state); one buffer is kept per
    key and dtype (DeepSpeed's float32 state beside bfloat16 ones, 8-bit codes).
    Returns (state, key, shared view) triples for `check_shared`."""
    flat: dict[tuple, Tensor] = {}
    owner: dict[tuple, Any] = {}  # the optimizer whose values fill each buffer
    shared = []
    offsets = [0]
    for p in params:
        offsets.append(offsets[-1] + p.numel())
    for opt in optimizers:
        for i, p in enumerate(params):
            state = opt.state[p]
            for key, value in list(state.items()):
                if not (type(value) is Tensor and value.shape == p.shape):
                    continue
                slot = (key, value.dtype)
                if slot not in flat:
                    flat[slot] = torch.empty(offsets[-1], dtype=value.dtype, device=value.device)
                    owner[slot] = opt
                view = flat[slot][offsets[i]:offsets[i + 1]].view(p.shape)
                if owner[slot] is opt:
                    view.copy_(value)
                state[key] = view
                shared.append((state, key, view))
    return shared


def check_shared(shared) -> None:
    """Every path still steps the shared buffers (none replaced a state tensor)."""
    for state, key, view in shared:
        if state[key].data_ptr() != view.data_ptr():
            raise RuntimeError(f"a path replaced its state tensor {key!r}: the cell no "
                               "longer compares the same memory")


def cache_flusher(device: str):
    """A step that evicts the caches with reads only (clean lines, nothing to write back):
    run before every timed step, so each starts cold, and no step pays for the dirty lines
    the previous one left behind in a shuffled order."""
    if device == "cuda":
        size = torch.cuda.get_device_properties(device).L2_cache_size
    else:
        sizes = (p.read_text().strip() for p in
                 Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"))
        size = max((int(s[:-1]) * 1024 for s in sizes if s.endswith("K")), default=32 << 20)
    buf = torch.ones(2 * size // 4, dtype=torch.float32, device=device)
    return lambda: buf.sum()


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` does not exist)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0


def paired_ratio(times: list[float], ref: Record) -> float:
    return statistics.median(a / b for a, b in zip(times, ref.times_ms))


def paired_ratio_ci(times: list[float], ref: Record, z: float = 1.96) -> tuple[float, float]:
    """A distribution-free 95 % confidence interval of `paired_ratio`: the per-round
    ratios of ranks ⌊n/2 − z√n/2⌋ and ⌈1 + n/2 + z√n/2⌉ (1-based; the normal approximation
    of the binomial interval of a median: ranks 10 and 22 for n = 31)."""
    ratios = sorted(a / b for a, b in zip(times, ref.times_ms))
    n, half = len(ratios), z * len(ratios) ** 0.5 / 2
    lo, hi = math.floor(n / 2 - half), math.ceil(1 + n / 2 + half)
    return ratios[max(lo, 1) - 1], ratios[min(hi, n) - 1]


def stream_step(flat_p: Tensor, flat_g: Tensor):
    """``g ← g + 0·θ`` in place over the cell's own flat buffers: reads 2, writes 1 per
    element, leaves the values as they are (finite θ), on the memory the optimizers step."""
    return lambda: flat_g.add_(flat_p, alpha=0.0)


def copy_bandwidth(device: str, numel: int = 50_000_000, reps: int = 10) -> float:
    """Device-to-device copy bandwidth (read + write), GB/s, median of ``reps``."""
    src = torch.empty(numel, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    times = []
    for _ in range(reps + 2):
        _sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * numel * 4 / statistics.median(times[2:]) / 1e9


#: what a step's time is read from: ``wall`` (``time.perf_counter``), or ``cpu``
#: (``time.process_time``: the CPU time of all the process's threads, blind to the time a
#: crowded machine keeps the process waiting; on CPU only, it does not see a GPU's work)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def bench_cell(rule, tensors, numel, dtype_name, device, warmup, steps, max_seconds,
               clock=time.perf_counter, anchor_libraries=()):
    """Every path of both libraries (and the anchors on CPU) on one problem, timed
    round-robin with ``clock``."""
    dtype = DTYPES[dtype_name]
    params, flat_p, flat_g = make_params(tensors, numel, dtype, device)
    runs = {}
    for library in ("torch", "optproof"):
        for path in PATHS:
            if library == "torch" and path == "fused" and rule not in TORCH_FUSED:
                continue
            opt = build(library, rule, path, params)
            opt.step()  # lazy state initialisation
            runs[(library, path)] = opt
    if device == "cpu":
        for key, make in anchors(rule, dtype, anchor_libraries).items():
            runs[key] = make(params)
            runs[key].step()
    shared = share_state(list(runs.values()), params)
    # (step, its times in ms, its page faults) per path
    runs = {key: (opt.step, [], []) for key, opt in runs.items()}
    runs["stream"] = (stream_step(flat_p, flat_g), [], [])
    flush = cache_flusher(device)
    for step, _, _ in runs.values():
        for _ in range(warmup):
            step()
    _sync(device)
    start = time.perf_counter()
    order = list(runs.values())
    rng = random.Random(f"{rule}{tensors}{numel}{dtype_name}{device}")
    for k in range(steps):
        rng.shuffle(order)  # no path always runs right after another
        for step, times, faults in order:
            flush()
            _sync(device)
            f0 = minor_faults()
            t0 = clock()
            step()
            _sync(device)
            times.append((clock() - t0) * 1e3)
            faults.append(minor_faults() - f0)
        if k >= 2 and time.perf_counter() - start > max_seconds:
            break
    check_shared(shared)
    bpe = bytes_per_element(rule, dtype)
    stream_times = runs.pop("stream")[1]
    esize = torch.empty((), dtype=dtype).element_size()
    # a single pass at stream bandwidth: the stream op's time scaled to the rule's bytes
    floor_times = [t * bpe / (3 * esize) for t in stream_times]
    stream_gbps = 3 * esize * numel * tensors / (statistics.median(stream_times) * 1e-3) / 1e9
    out = []
    for (library, path), (_, times, faults) in runs.items():
        median = statistics.median(times)
        out.append(Record(library, rule, path, dtype_name, device, numel, tensors, median,
                          bpe * numel * tensors / (median * 1e-3) / 1e9, bpe,
                          faults_per_step=statistics.median(faults),
                          steps=len(times), times_ms=times))
    # ratios are paired: the median over rounds of (this path's time / the reference path's
    # time in the same round), robust to the machine's load drifting between rounds
    torch_runs = [r for r in out if r.library == "torch"]
    fastest = min(torch_runs, key=lambda r: r.median_ms)
    fused = [r for r in torch_runs if r.impl == "fused"]
    same = {r.impl: r for r in torch_runs if r.impl in SAME_PATH}
    deepspeed = min((r for r in out if r.library == "deepspeed"), key=lambda r: r.median_ms,
                    default=None)
    for r in out:
        if r.library == "optproof" and r.impl in same:
            r.ratio_same_path = paired_ratio(r.times_ms, same[r.impl])
            r.ratio_same_path_ci = paired_ratio_ci(r.times_ms, same[r.impl])
        r.ratio = paired_ratio(r.times_ms, fastest)
        r.ratio_ci = paired_ratio_ci(r.times_ms, fastest)
        if fused:
            r.ratio_torch_fused = paired_ratio(r.times_ms, fused[0])
            r.ratio_torch_fused_ci = paired_ratio_ci(r.times_ms, fused[0])
        r.floor_ratio = paired_ratio(floor_times, fastest)
        if deepspeed:
            r.ratio_deepspeed = paired_ratio(r.times_ms, deepspeed)
            r.ratio_deepspeed_ci = paired_ratio_ci(r.times_ms, deepspeed)
        r.stream_gbps = stream_gbps
        r.stream_fraction = r.gbps / stream_gbps
    del runs
    gc.collect()
    return out


def _cells(records: list[Record]) -> dict[tuple, dict[tuple, Record]]:
    cells: dict[tuple, dict[tuple, Record]] = {}
    for r in records:
        cells.setdefault((r.rule, r.tensors, r.numel, r.dtype, r.device), {})[(r.library, r.impl)] = r
    return cells


def table(records: list[Record]):
    from rich.table import Table

    t = Table(title="optproof.torch_impl vs torch.optim — median step time (ms); "
                    "ratio = optproof fused / torch's fastest path (same run); floor = the "
                    "ratio of a single pass at stream bandwidth")
    for col in ("rule", "tensors×numel", "dtype", "dev", "torch loop", "torch foreach",
                "torch fused", "ours loop", "ours foreach", "ours fused", "fused GB/s",
                "ratio fastest", "floor", "ratio t.fused"):
        t.add_column(col, justify="right" if col not in ("rule", "dtype", "dev") else "left")
    fmt = lambda r: "-" if r is None else f"{r.median_ms:.2f}"  # noqa: E731
    for (rule, tensors, numel, dtype, device), c in _cells(records).items():
        f = c[("optproof", "fused")]
        gb = f"{f.gbps:.1f} ({f.stream_fraction:.0%} stream"
        gb += ")" if f.copy_fraction is None else f", {f.copy_fraction:.0%} copy)"
        t.add_row(rule, f"{tensors}×{numel:,}", dtype, device,
                  *(fmt(c.get(("torch", p))) for p in PATHS),
                  *(fmt(c.get(("optproof", p))) for p in PATHS), gb,
                  f"{f.ratio:.2f}", f"{f.floor_ratio:.2f}",
                  "-" if f.ratio_torch_fused is None else f"{f.ratio_torch_fused:.2f}")
    return t


def target_table(records: list[Record]):
    """Each float32 CPU cell against its target in ``TARGETS``."""
    from rich.table import Table

    t = Table(title="float32 CPU targets: optproof fused / torch path (95 % interval of the "
                    "median ratio)")
    for col in ("rule", "tensors×numel", "against", "ratio", "95 % interval", "target", "floor",
                "met"):
        t.add_column(col, justify="left" if col in ("rule", "against") else "right")
    for (rule, tensors, numel, dtype, device), c in _cells(records).items():
        if dtype != "float32" or device != "cpu" or rule not in TARGETS:
            continue
        against, target = TARGETS[rule]
        f = c[("optproof", "fused")]
        ratio, (lo, hi) = ((f.ratio_torch_fused, f.ratio_torch_fused_ci) if against == "fused"
                           else (f.ratio, f.ratio_ci))
        floor = f.floor_ratio * (f.ratio_torch_fused / f.ratio if against == "fused" else 1)
        t.add_row(rule, f"{tensors}×{numel:,}", f"torch {against}", f"{ratio:.2f}",
                  f"{lo:.2f}–{hi:.2f}", f"≤ {target:.2f}", f"{floor:.2f}",
                  "yes" if ratio <= target else "no")
    return t


def same_path_table(records: list[Record]):
    """Every cell's for-loop and foreach ratios, optproof's path over torch's same path,
    against ``SAME_PATH_TARGET``."""
    from rich.table import Table

    t = Table(title="for-loop and foreach: optproof / torch's same path (95 % interval of the "
                    f"median ratio), target ≤ {SAME_PATH_TARGET:.2f}")
    for col in ("rule", "tensors×numel", "dtype", "dev", *SAME_PATH, "met"):
        t.add_column(col, justify="left" if col in ("rule", "dtype", "dev") else "right")
    for (rule, tensors, numel, dtype, device), c in _cells(records).items():
        rs = [c[("optproof", path)] for path in SAME_PATH]
        t.add_row(rule, f"{tensors}×{numel:,}", dtype, device,
                  *(f"{r.ratio_same_path:.2f} ({r.ratio_same_path_ci[0]:.2f}–"
                    f"{r.ratio_same_path_ci[1]:.2f})" for r in rs),
                  "yes" if all(r.ratio_same_path <= SAME_PATH_TARGET for r in rs) else "no")
    return t


def anchor_table(records: list[Record]):
    """optproof's fused Adam/AdamW, torch's fused and the other anchors against DeepSpeed's
    fastest CPU Adam in each cell (target: optproof fused ≤ 1.0 on every cell)."""
    from rich.table import Table

    t = Table(title="against DeepSpeedCPUAdam (its fastest path in the cell): paired median "
                    "ratio of step times (95 % interval); target: optproof fused ≤ 1.00")
    for col in ("rule", "tensors×numel", "dtype", "optproof fused", "95 % interval", "met",
                "torch fused", "bitsandbytes 32-bit", "bitsandbytes 8-bit", "torchao", "DS ms"):
        t.add_column(col, justify="left" if col in ("rule", "dtype") else "right")
    fmt = lambda r: "-" if r is None or r.ratio_deepspeed is None else f"{r.ratio_deepspeed:.2f}"  # noqa: E731
    for (rule, tensors, numel, dtype, device), c in _cells(records).items():
        f = c[("optproof", "fused")]
        if f.ratio_deepspeed is None:
            continue
        ds = min((r for (lib, _), r in c.items() if lib == "deepspeed"), key=lambda r: r.median_ms)
        lo, hi = f.ratio_deepspeed_ci
        t.add_row(rule, f"{tensors}×{numel:,}", dtype, f"{f.ratio_deepspeed:.2f}",
                  f"{lo:.2f}–{hi:.2f}", "yes" if f.ratio_deepspeed <= 1.0 else "no",
                  fmt(c.get(("torch", "fused"))), fmt(c.get(("bitsandbytes", "32bit"))),
                  fmt(c.get(("bitsandbytes", "8bit"))), fmt(c.get(("torchao", "adamw"))),
                  f"{ds.median_ms:.2f} ({ds.impl})")
    return t


def _choices(what: str, valid):
    """An argparse type: a comma-separated list of names from ``valid``."""
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in valid]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"{what} must be a comma-separated list of {', '.join(valid)}; got {text!r}")
        return names
    return parse


def _sizes(text: str) -> list[tuple[int, int]]:
    """An argparse type: comma-separated ``TENSORSxNUMEL``, both positive integers."""
    try:
        sizes = [tuple(int(v) for v in s.split("x")) for s in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(len(s) != 2 or min(s) < 1 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"sizes must be comma-separated TENSORSxNUMEL with positive integers, e.g. "
            f"1x10000000,2000x1000; got {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (under 10 min on 2 cores)")
    ap.add_argument("--json", metavar="FILE", help="write the records as a JSON list")
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--rules", type=_choices("rules", RULES), default=list(RULES),
                    help=f"comma-separated, of {','.join(RULES)} (default: all)")
    ap.add_argument("--dtypes", type=_choices("dtypes", DTYPES), default=list(DEFAULT_DTYPES),
                    help=f"comma-separated, of {','.join(DTYPES)} (default: "
                         f"{','.join(DEFAULT_DTYPES)})")
    ap.add_argument("--sizes", type=_sizes, default=SIZES,
                    help="comma-separated TENSORSxNUMEL, e.g. 1x10000000,2000x1000")
    ap.add_argument("--clock", choices=list(CLOCKS), default="wall",
                    help="wall: elapsed time (default); cpu: the process's CPU time, for a "
                         "crowded machine (CPU only)")
    ap.add_argument("--anchors", type=_choices("anchors", ANCHOR_LIBRARIES + ("none",)),
                    default=list(DEFAULT_ANCHORS),
                    help="other libraries' CPU Adam/AdamW timed beside the adam and adamw "
                         f"cells when installed, of {','.join(ANCHOR_LIBRARIES)} or none "
                         f"(default: {','.join(DEFAULT_ANCHORS)})")
    args = ap.parse_args(argv)
    if args.clock == "cpu" and args.device != "cpu":
        ap.error("--clock cpu needs --device cpu (a GPU's work is not CPU time)")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.device != "all":
        devices = [args.device]
    warmup, steps, max_seconds = (2, 31, 8.0) if args.quick else (3, 101, 60.0)

    from rich.console import Console
    console = Console(stderr=True)
    t0 = time.perf_counter()
    from optproof.torch_impl.fused import cpu as fused_cpu
    fused_cpu.load()
    console.log(f"fused CPU kernels ready in {fused_cpu.build_seconds:.1f} s "
                f"(compile on a cold cache, load on a warm one)")
    copy_gbps = {d: copy_bandwidth(d) for d in devices if d == "cuda"}
    records: list[Record] = []
    for device in devices:
        for rule in args.rules:
            for tensors, numel in args.sizes:
                for dtype in args.dtypes:
                    cell = bench_cell(rule, tensors, numel, dtype, device, warmup, steps,
                                      max_seconds, CLOCKS[args.clock], args.anchors)
                    for r in cell:
                        if device in copy_gbps:
                            r.copy_fraction = r.gbps / copy_gbps[device]
                    f = next(r for r in cell if r.library == "optproof" and r.impl == "fused")
                    console.log(f"{rule:8s} {tensors:>5}×{numel:<9,} {dtype:8s} {device}: "
                                f"optproof fused {f.median_ms:8.2f} ms, ratio {f.ratio:.2f}"
                                + (f" (vs torch fused {f.ratio_torch_fused:.2f})"
                                   if f.ratio_torch_fused else "")
                                + (f" (vs DeepSpeed {f.ratio_deepspeed:.2f})"
                                   if f.ratio_deepspeed else ""))
                    records.append(cell)
    records = [r for cell in records for r in cell]
    if args.json:
        meta = {"torch": torch.__version__, "python": platform.python_version(),
                "machine": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(), "copy_gbps": copy_gbps, "clock": args.clock,
                "fused_cpu_vector_path": getattr(fused_cpu.load(), "vector_path", None),
                "seconds": time.perf_counter() - t0}
        with open(args.json, "w") as fh:
            json.dump([{**asdict(r), "meta": meta} for r in records], fh, indent=1)
    out = Console(width=max(Console().width, 200))
    out.print(table(records))
    out.print(target_table(records))
    out.print(same_path_table(records))
    if any(r.ratio_deepspeed is not None for r in records):
        out.print(anchor_table(records))
    console.log(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
