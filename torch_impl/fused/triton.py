"""The CUDA backend of the fused path: one Triton launch per (device, dtype) bucket.

A bucket of tensors is flattened into tables, not copied: one int64 table of the data pointers
of every parameter, gradient and state tensor, the number of elements and the scalar row of
each tensor, and a block table ``(tensor, first element)`` with one entry per ``BLOCK``
elements of every tensor (built once per set of sizes and cached on the device).  Program
``pid`` reads its block's tensor, casts the table entries to typed pointers and updates
``BLOCK`` elements — the same single pass, prologue and per-rule element
update as the C++ kernel (the math, with its sources, is in `rules`; the element updates
are the ``@triton.jit`` functions below, one per rule, selected by a ``tl.constexpr``).

Numerics: loads are widened to opmath (float32, float64 for float64 tensors), every store
rounds once; ``tl.sqrt_rn`` and ``tl.div_rn`` (IEEE round-to-nearest; Triton's default
``sqrt``/``/`` on float32 are approximations) and ``enable_fp_fusion=False`` (no FMA
contraction), so each operation rounds once as the bound in ``optproof.reference.bounds``
counts.  Scalars are float64 rows computed on the host and cast once in the kernel.

Status: exercised on CPU tensors under ``TRITON_INTERPRET=1`` by ``tests/test_fused.py``
(numpy executes the kernel); **not yet run on a GPU** — no device was available when it was
written.  Step counters stay on the device (``_update_scalars`` in ``__init__.py`` does one
device→host copy per step for the float64 scalars).
"""

from __future__ import annotations

import functools
import os

import torch

__all__ = ["available", "unavailable_reason", "step", "BLOCK"]

BLOCK = 1024

try:  # triton is optional: CUDA builds of torch ship it, CPU builds do not
    import triton
    import triton.language as tl

    _IMPORT_ERROR = ""
except Exception as exc:  # noqa: BLE001
    triton = tl = None
    _IMPORT_ERROR = f"{type(exc).__name__}: {exc}"


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def available() -> bool:
    """Triton is importable (CUDA device, or the CPU interpreter under TRITON_INTERPRET=1)."""
    return triton is not None


def unavailable_reason() -> str:
    return f"triton is not importable ({_IMPORT_ERROR})" if triton is None else ""


RULE_IDS = {"sgd": 0, "adagrad": 1, "adadelta": 2, "rmsprop": 3, "adam": 4, "nadam": 5}
N_STATES = {"sgd": lambda v: 0 if v == 0 else 1, "adagrad": lambda v: 1,
            "adadelta": lambda v: 2, "rmsprop": lambda v: 1 + (v & 1) + ((v >> 1) & 1),
            "adam": lambda v: 2 + v, "nadam": lambda v: 2}

if triton is not None:
    _TL_DTYPES = {torch.float64: tl.float64, torch.float32: tl.float32,
                  torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}

    @triton.jit
    def _sqrt(x):
        """Correctly rounded square root (tl.sqrt_rn is float32-only; float64 sqrt is IEEE)."""
        if x.dtype == tl.float64:
            return tl.sqrt(x)
        return tl.sqrt_rn(x)

    @triton.jit
    def _div(a, b):
        """Correctly rounded division (float32 ``/`` is an approximation in Triton)."""
        if a.dtype == tl.float64:
            return a / b
        return tl.div_rn(a, b)

    @triton.jit
    def _store(ptr, x, mask, DT: tl.constexpr):
        """One rounding to the storage dtype, to nearest even.  float32 → bfloat16 is done on
        the bits (as c10::BFloat16 does): the same on every backend, where Triton's CPU
        interpreter otherwise truncates or rounds ties away."""
        if DT == x.dtype:
            tl.store(ptr, x, mask=mask)
        elif DT == tl.bfloat16:
            bits = x.to(tl.uint32, bitcast=True)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
            bits = tl.where(x != x, 0x7FC0, bits)
            tl.store(ptr, bits.to(tl.uint16).to(tl.bfloat16, bitcast=True), mask=mask)
        else:
            tl.store(ptr, x.to(DT), mask=mask)

    @triton.jit
    def _sgd(p, g, b, V: tl.constexpr, c2, c3, c4, first):
        """sgd: b ← g (first step) or μ b + (1 − τ) g; d = g + μ b | b | g; θ ← θ + (−γ) d."""
        d = g
        if V > 0:
            b = tl.where(first, g, b * c2 + c3 * g)
            if V == 2:
                d = g + c2 * b
            else:
                d = b
        return p + c4 * d, b

    @triton.jit
    def _adagrad(p, g, s, c2, c3):
        """adagrad: s ← s + g²; θ ← θ + (−clr) · g / (√s + ε)."""
        s = s + g * g
        return p + c2 * _div(g, _sqrt(s) + c3), s

    @triton.jit
    def _adadelta(p, g, v, u, c2, c3, c4, c5):
        """adadelta: v ← ρv + (1−ρ)g²; Δ = √(u+ε)/√(v+ε)·g; u ← ρu + (1−ρ)Δ²; θ ← θ + (−γ)Δ."""
        v = v * c2 + c3 * g * g
        delta = _div(_sqrt(u + c4), _sqrt(v + c4)) * g
        u = u * c2 + c3 * delta * delta
        return p + c5 * delta, v, u

    @triton.jit
    def _rmsprop(p, g, v, s1, s2, V: tl.constexpr, c2, c3, c4, c5, c6):
        """rmsprop: v ← αv + (1−α)g²; [ḡ ← αḡ + (1−α)g]; d = √(v [− ḡ²]) + ε;
        [b ← μb + g/d; θ ← θ + (−γ)b] or θ ← θ + (−γ) g/d."""
        v = v * c2 + c3 * g * g
        if (V & 2) != 0:
            if (V & 1) != 0:
                s2 = s2 * c2 + c3 * g
                avg = _sqrt(v - s2 * s2)
            else:
                s1 = s1 * c2 + c3 * g
                avg = _sqrt(v - s1 * s1)
        else:
            avg = _sqrt(v)
        avg = avg + c4
        if (V & 1) != 0:
            s1 = s1 * c5 + _div(g, avg)
            p = p + c6 * s1
        else:
            p = p + c6 * _div(g, avg)
        return p, v, s1, s2

    @triton.jit
    def _adam(p, g, m, v, vmax, V: tl.constexpr, c2, c3, c4, c5, c6, c7, c8):
        """adam: m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; [v̂ = max(v̂, v)];
        θ ← θ + (−γ/bc₁) · m / (√v̂ · bc₂^(−½) + ε)."""
        m = m * c2 + c3 * g
        v = v * c4 + c5 * g * g
        vhat = v
        if V == 1:
            vmax = tl.where((v > vmax) | (v != v), v, vmax)
            vhat = vmax
        denom = _sqrt(vhat) * c7 + c8
        return p + c6 * _div(m, denom), m, v, vmax

    @triton.jit
    def _nadam(p, g, m, v, c2, c3, c4, c5, c6, c7, c8, c9):
        """nadam: m, v as Adam; r = 1/(√(v·bc₂⁻¹) + ε); θ ← θ + c_g·(g·r) + c_m·(m·r)."""
        m = m * c2 + c3 * g
        v = v * c4 + c5 * g * g
        r = _div(tl.full(v.shape, 1.0, v.dtype), _sqrt(v * c6) + c7)
        p = p + c8 * (g * r)
        p = p + c9 * (m * r)
        return p, m, v

    @triton.jit
    def _fused_kernel(p_ptrs, g_ptrs, s0_ptrs, s1_ptrs, s2_ptrs, numels, rows, block_tensor,
                      block_start, scalars,
                      RULE: tl.constexpr, V: tl.constexpr, NS: tl.constexpr,
                      P_DT: tl.constexpr, S_DT: tl.constexpr, CT: tl.constexpr,
                      MAXIMIZE: tl.constexpr, L2: tl.constexpr, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        i = tl.load(block_tensor + pid)
        offs = tl.load(block_start + pid) + tl.arange(0, BLOCK)
        mask = offs < tl.load(numels + i)
        pp = tl.load(p_ptrs + i).to(tl.pointer_type(P_DT))
        gp = tl.load(g_ptrs + i).to(tl.pointer_type(P_DT))
        c = scalars + tl.load(rows + i) * 16
        c0 = tl.load(c + 0).to(CT)
        c1 = tl.load(c + 1).to(CT)
        c2 = tl.load(c + 2).to(CT)
        c3 = tl.load(c + 3).to(CT)
        c4 = tl.load(c + 4).to(CT)
        c5 = tl.load(c + 5).to(CT)
        c6 = tl.load(c + 6).to(CT)
        c7 = tl.load(c + 7).to(CT)
        c8 = tl.load(c + 8).to(CT)
        c9 = tl.load(c + 9).to(CT)
        first = tl.load(c + 15) != 0
        p = tl.load(pp + offs, mask=mask).to(CT)
        g = tl.load(gp + offs, mask=mask).to(CT)
        a = tl.zeros_like(p)
        b = tl.zeros_like(p)
        d = tl.zeros_like(p)
        if NS > 0:
            s0p = tl.load(s0_ptrs + i).to(tl.pointer_type(S_DT))
            a = tl.load(s0p + offs, mask=mask).to(CT)
        if NS > 1:
            s1p = tl.load(s1_ptrs + i).to(tl.pointer_type(S_DT))
            b = tl.load(s1p + offs, mask=mask).to(CT)
        if NS > 2:
            s2p = tl.load(s2_ptrs + i).to(tl.pointer_type(S_DT))
            d = tl.load(s2p + offs, mask=mask).to(CT)
        if MAXIMIZE:
            g = -g
        p = p * c1
        if L2:
            g = g + c0 * p
        if RULE == 0:
            p, a = _sgd(p, g, a, V, c2, c3, c4, first)
        elif RULE == 1:
            p, a = _adagrad(p, g, a, c2, c3)
        elif RULE == 2:
            p, a, b = _adadelta(p, g, a, b, c2, c3, c4, c5)
        elif RULE == 3:
            p, a, b, d = _rmsprop(p, g, a, b, d, V, c2, c3, c4, c5, c6)
        elif RULE == 4:
            p, a, b, d = _adam(p, g, a, b, d, V, c2, c3, c4, c5, c6, c7, c8)
        else:
            p, a, b = _nadam(p, g, a, b, c2, c3, c4, c5, c6, c7, c8, c9)
        _store(pp + offs, p, mask, P_DT)
        if NS > 0:
            _store(s0p + offs, a, mask, S_DT)
        if NS > 1:
            _store(s1p + offs, b, mask, S_DT)
        if NS > 2:
            _store(s2p + offs, d, mask, S_DT)


@functools.lru_cache(maxsize=64)
def _blocks(numels: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The block table of a bucket: for each ``BLOCK`` elements of each tensor, the tensor's
    index and the block's first element (int64, on ``device``).  It depends on the sizes only,
    so a training loop builds it once."""
    counts = torch.tensor([-(-m // BLOCK) for m in numels], dtype=torch.int64)
    tensor = torch.repeat_interleave(torch.arange(len(numels)), counts)
    first = torch.cumsum(counts, 0) - counts
    start = (torch.arange(tensor.numel()) - first[tensor]) * BLOCK
    return tensor.to(device), start.to(device)


def step(rule: str, variant: int, flags: int, params, grads, states, scalars, rows) -> None:
    """One launch for a bucket (same device, param dtype and state dtype); arguments as the
    C++ kernel's (``scalars``: the rows, concatenated; no counters: on CUDA the host advances
    them).  Non-contiguous tensors are computed on dense copies and written back.  Per step
    the host sends two small tables (pointers, sizes and rows; the scalars): two copies."""
    n = len(params)
    ns = N_STATES[rule](variant)
    if not n:
        return
    device = params[0].device
    write_back: list[tuple[torch.Tensor, torch.Tensor]] = []

    def dense(t: torch.Tensor, output: bool) -> torch.Tensor:
        if t.is_contiguous():
            return t
        d = t.contiguous()
        if output:
            write_back.append((t, d))
        return d

    p_dtype = params[0].dtype
    ps = [dense(p, True) for p in params]
    gs = [dense(g if g.dtype == p_dtype else g.to(p_dtype), False) for g in grads]
    ss = [dense(s, True) for s in states]
    s_dtype = ss[0].dtype if ns else p_dtype
    numels = [p.numel() for p in ps]
    block_tensor, block_start = _blocks(tuple(numels), device)
    if not block_tensor.numel():
        return
    # one int64 table, rows of n: θ, g and three state pointers (0 where a rule has fewer
    # states), the sizes, the scalar rows
    table = [t.data_ptr() for t in ps] + [t.data_ptr() for t in gs]
    for j in range(3):
        table += [ss[j * n + i].data_ptr() for i in range(n)] if j < ns else [0] * n
    table += numels + (list(rows) if rows else [0] * n)
    p_ptrs, g_ptrs, s0_ptrs, s1_ptrs, s2_ptrs, sizes, row_of = torch.tensor(
        table, dtype=torch.int64, device=device).view(7, n)
    ct = tl.float64 if p_dtype == torch.float64 else tl.float32
    _fused_kernel[(block_tensor.numel(),)](
        p_ptrs, g_ptrs, s0_ptrs, s1_ptrs, s2_ptrs, sizes, row_of, block_tensor, block_start,
        torch.tensor(scalars, dtype=torch.float64, device=device),
        RULE=RULE_IDS[rule], V=variant, NS=ns, P_DT=_TL_DTYPES[p_dtype],
        S_DT=_TL_DTYPES[s_dtype], CT=ct, MAXIMIZE=bool(flags & 1), L2=bool(flags & 2),
        BLOCK=BLOCK, **({} if interpreting() else {"enable_fp_fusion": False}))
    for out, d in write_back:
        out.copy_(d)
