"""The quantized-state oracle: one step of a low-bit optimizer checked against the exact rule.

A low-bit optimizer (bitsandbytes ``AdamW8bit``, torchao ``AdamW8bit`` / ``AdamW4bit`` /
``AdamWFp8``) stores each state tensor as one *code* per element and one *scale* per block
of ``block_size`` elements; the state's value is ``map[code] · scale``. A step dequantizes,
computes the rule in float32, and re-quantizes: the new scale from the block's new absmax,
the new code by rounding ``state / scale`` to the map. `check_quantized_step` checks
all three outputs of one step from the codes and scales the kernel read:

**(a) The parameter.** The kernel read ``fl₃₂(map[c]·s)``, one float32 rounding of the exact
dequantized value x = map[c]·s (a product of two floats, exact in mpmath), so it read x
within ``u·|x| + η`` (u = 2⁻²⁴, η half float32's smallest subnormal; Higham §2.2). The exact
step is the rule's reference from x; the kernel's step from its rounded input is bounded by
`bounded_run` with that input error carried through every
node (``state_errors``): the same running error analysis as every other rule, plus the
dequantization term. A parameter stored in a lower dtype after a float32 computation gets
one more rounding, to nearest (`optproof.reference.mixed`'s bound) or stochastic (the
stored value must be one of the two neighbours bracketing the float32 interval).

**(b) The new scale.** The kernel's new state m̂ᵢ lies within eᵢ of the exact new state xᵢ
((a)'s bound on the state output), and the block absmax is an exact operation on the m̂ᵢ,
so it lies in [A₋, A₊] = [maxᵢ (|xᵢ| − eᵢ)⁺, maxᵢ (|xᵢ| + eᵢ)] (max is 1-Lipschitz). The
stored scale is ``max(absmax, floor) / divisor`` (floor: torchao clips at 1e-12; divisor:
448 for FP8 E4M3, where the division rounds once more: a factor 1 ± u). A scale outside
that interval is rejected — the absmax of the *old* state, or of a neighbouring block, is.

**(c) The new code.** With the stored scale s (an exact float), the exact normalised value
is y = x/s. The kernel rounds m̂/s once (or m̂·fl(1/s), twice), so its ŷ lies within
eᵧ = e/s + (2u + u²)·(|x| + e)/s + (1 + |x| + e)·η of y. A quantizer that resolves its
input only to a grid (bitsandbytes' CPU look-up table) adds its resolution r. Rounding to nearest then
picks a code whose *cell* — the values nearer to it than to its neighbours, between the
midpoints of adjacent map values — meets [y − eᵧ − r, y + eᵧ + r]; each cell boundary is
widened by τ = u·(|a| + |b|) + η for map neighbours a < b, because the kernel compares in
float32: bitsandbytes computes the midpoint fl((a + b)/2), off by ≤ u·|a + b|/2 + η;
torchao compares fl(y − a) with fl(b − a)/2, which moves the switch point by
≤ u·(b − a)·(1 + 2u). So a code is accepted iff the exact value lies within half the map's
spacing to its neighbours, widened only by eᵧ + r and τ. Stochastic rounding must give one
of the map values bracketing the same interval (everything between them included).

**Stochastic-rounding statistics.** Where the kernel claims stochastic rounding, the two
neighbours a < b of an element are known when its interval lies strictly between them,
and P(up) = (ŷ − a)/(b − a) ∈ [p₋, p₊]. Where that interval lies on one side of ½ the *far*
neighbour is known; F, the number of elements rounded to their far neighbour, is a sum of
independent Bernoulli(qᵢ), qᵢ ∈ [q₋ᵢ, q₊ᵢ] (the rounding bits are independent draws).
Round-to-nearest gives F = 0, truncation gives F near half the count. With μ₋ = Σq₋ᵢ,
μ₊ = Σq₊ᵢ and a = ln(1/α): Chernoff's lower tail P(F ≤ μ − t) ≤ exp(−t²/(2μ)) and
Bernstein's upper tail P(F ≥ μ + t) ≤ exp(−t²/(2μ + 2t/3)) (var ≤ μ) give the acceptance
interval [μ₋ − √(2μ₊a), μ₊ + a/3 + √(a²/9 + 2μ₊a)], whose false-alarm probability for a
kernel that does round stochastically is at most 2α (α = 10⁻⁹ by default). Where the
lower end is ≤ 0 nearest rounding cannot be told apart: "not measured".
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath

from .bounds import Rounding, bounded_run, precision, ulp
from .mixed import mixed_bounded_run

__all__ = ["Quantizer", "StoredState", "documented_dynamic_map", "map_deviation",
           "StochasticTest", "stochastic_test", "Check", "QuantizedReport",
           "check_quantized_step"]

#: every low-bit kernel checked here computes the step in float32
_F32 = precision("float32")


def documented_dynamic_map(signed: bool = True, max_exponent_bits: int = 7,
                           total_bits: int = 8) -> list[mpmath.mpf]:
    """The dynamic-exponent map, exactly, sorted: for i = 0 … E − 1 the values 10^(i − E + 1)·mₖ
    (and their negatives when ``signed``), mₖ the midpoints of ``linspace(0.1, 1, nᵢ)`` with
    nᵢ = 2^(i + b − E) + 1 (b = total_bits − 1, one more power of two when unsigned), plus 0
    and 1 (Dettmers 2016, arXiv:1511.04561; bitsandbytes 0.50.2
    ``functional.create_dynamic_map`` and torchao 0.18.0 ``optim.quant_utils.create_dynamic_map``
    state it so and compute it in float32)."""
    bits = total_bits - 1
    values = [mpmath.mpf(0), mpmath.mpf(1)]

    def midpoints(points: int, power: mpmath.mpf) -> None:
        for k in range(points - 1):
            mid = power * (mpmath.mpf(1) / 10 + mpmath.mpf(9) / 10 * (2 * k + 1) / (2 * (points - 1)))
            values.extend([mid, -mid] if signed else [mid])

    for i in range(max_exponent_bits):
        midpoints(2 ** (i + bits - max_exponent_bits + (0 if signed else 1)) + 1,
                  mpmath.power(10, i - max_exponent_bits + 1))
    extra = 2 ** (bits - max_exponent_bits) - 1  # all exponent bits zero: a linear region at 10⁰
    if extra > 0:
        midpoints(extra + 1, mpmath.mpf(1))
    return sorted(values)


def map_deviation(values: Sequence[float], documented: Sequence[mpmath.mpf]) -> float:
    """The largest |value − documented| / |documented| of a library's map against the
    documented one, code by code, in units of float32's u (a map computed in float32 is
    within a few u); ``inf`` when the two have different lengths."""
    if len(values) != len(documented):
        return math.inf
    worst = mpmath.mpf(0)
    for v, d in zip(values, documented):
        err = abs(mpmath.mpf(v) - d)
        worst = max(worst, err / abs(d) if d else (mpmath.inf if err else mpmath.mpf(0)))
    return float(worst / _F32.u)


# --------------------------------------------------------------------------- quantizers


@dataclass(frozen=True)
class Quantizer:
    """How a library stores one state tensor (see the module docstring for the rule).

    Attributes:
        name: what to call it in reports.
        values: the map, code → value (``nan`` for codes that are no number, FP8's NaN).
        block_size: elements per scale.
        rounding: ``"nearest"`` or ``"stochastic"``.
        scale_floor: the absmax is clipped below at this value (torchao: 1e-12).
        scale_divisor: the scale is absmax / divisor (FP8 E4M3: 448, its largest value).
        resolution: how finely the quantizer resolves its normalised input (0: exactly;
            bitsandbytes' CPU look-up table: half its bin width, see `bitsandbytes_cpu`).
    """

    name: str
    values: tuple[float, ...]
    block_size: int
    rounding: str = "nearest"
    scale_floor: float = 0.0
    scale_divisor: float = 1.0
    resolution: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {self.block_size!r}")
        if self.rounding not in ("nearest", "stochastic"):
            raise ValueError(f"rounding must be 'nearest' or 'stochastic', got {self.rounding!r}")
        if not self.values or not any(v == v for v in self.values):
            raise ValueError("values must hold at least one number (the map, code -> value)")
        if self.scale_divisor <= 0 or self.scale_floor < 0 or self.resolution < 0:
            raise ValueError("scale_divisor must be > 0, scale_floor and resolution >= 0")

    @property
    def levels(self) -> list[float]:
        """The map's distinct numbers, ascending."""
        return sorted({v for v in self.values if v == v})

    @classmethod
    def bitsandbytes_cpu(cls, values: Sequence[float], block_size: int = 256) -> Quantizer:
        """bitsandbytes 0.50.2's CPU ``quantize_blockwise`` (csrc/cpu_ops.cpp
        ``quantize_cpu_impl``): y = m̂·fl(1/absmax) is looked up in a 65536-entry table built
        for the grid −1 + 2i/65535 (index fl((y + 1)·0.5·65535 + 0.5) truncated), each entry
        the nearest code of its grid point. The code is the nearest of a value within half
        the grid spacing, 1/65535, of y; the index and grid arithmetic in float32 add at most
        8u (four roundings of values ≤ 2, in units of the grid's 2/65535 scale)."""
        return cls("bitsandbytes cpu blockwise", tuple(values), block_size,
                   resolution=1 / 65535 + 8 * float(_F32.u))


@dataclass(frozen=True)
class StoredState:
    """One stored state tensor: a code per element (row-major) and a scale per block."""

    codes: tuple[int, ...]
    scales: tuple[float, ...]
    quantizer: Quantizer

    def __post_init__(self) -> None:
        blocks = -(-len(self.codes) // self.quantizer.block_size)
        if len(self.scales) != blocks:
            raise ValueError(f"scales has {len(self.scales)} entries; {len(self.codes)} codes in "
                             f"blocks of {self.quantizer.block_size} need {blocks}")
        bad = [c for c in self.codes if not 0 <= c < len(self.quantizer.values)]
        if bad:
            raise ValueError(f"codes must lie in [0, {len(self.quantizer.values)}), got {bad[0]}")

    @classmethod
    def from_layout(cls, layout: Any, name: str = "") -> StoredState:
        """A state read through the audit adapters' ``QuantizedState`` interface (any object
        with ``codes``, ``scales``, ``code_map``, ``block_size``, ``scale_rule`` and
        ``rounding``). ``scale_rule`` names ``absmax``, optionally divided (``absmax/448``)
        and clipped below (``max(absmax, 1e-12)`` or ``… (clipped below at 1e-12)``);
        ``rounding`` starts with ``nearest``, ``stochastic`` or ``lut65536`` (bitsandbytes'
        CPU table, `Quantizer.bitsandbytes_cpu`); anything else raises ``ValueError``."""
        rule = str(layout.scale_rule).replace(" ", "")
        shape = re.fullmatch(r"(?:absmax|max\(absmax,(?P<f1>[0-9.e+-]+)\))(?:/(?P<d>[0-9.e+-]+))?"
                             r"(?:\(clippedbelowat(?P<f2>[0-9.e+-]+)\))?", rule)
        if shape is None:
            raise ValueError(f"scale_rule must name absmax, optionally /D and a floor, got "
                             f"{layout.scale_rule!r}")
        floor = float(shape["f1"] or shape["f2"] or 0.0)
        divisor = float(shape["d"] or 1.0)
        rounding = str(layout.rounding).split(maxsplit=1)[0].rstrip(",") if layout.rounding else ""
        values = tuple(float(v) for v in layout.code_map)
        block = int(layout.block_size)
        if rounding == "lut65536":
            if (floor, divisor) != (0.0, 1.0):
                raise ValueError("rounding 'lut65536' (bitsandbytes' CPU table) has scale_rule absmax")
            quantizer = Quantizer.bitsandbytes_cpu(values, block)
        elif rounding in ("nearest", "stochastic"):
            quantizer = Quantizer(name or str(getattr(layout, "source", "")), values, block,
                                  rounding, floor, divisor)
        else:
            raise ValueError(f"rounding must start with nearest, stochastic or lut65536, got "
                             f"{layout.rounding!r}")
        return cls(tuple(int(c) for c in layout.codes), tuple(float(x) for x in layout.scales),
                   quantizer)

    def scale_of(self, i: int) -> float:
        return self.scales[i // self.quantizer.block_size]

    def dequantized(self) -> list[mpmath.mpf]:
        """The exact values map[code]·scale (a product of two floats: exact in mpmath)."""
        return [mpmath.mpf(self.quantizer.values[c]) * self.scale_of(i)
                for i, c in enumerate(self.codes)]


# --------------------------------------------------------------------------- statistics


@dataclass
class StochasticTest:
    """The far-neighbour count test of stochastic rounding (module docstring)."""

    elements: int = 0
    far: int = 0
    mean_low: float = 0.0
    mean_high: float = 0.0
    alpha: float = 1e-9

    def interval(self) -> tuple[float, float]:
        a = math.log(1 / self.alpha)
        low = self.mean_low - math.sqrt(2 * self.mean_high * a)
        high = self.mean_high + a / 3 + math.sqrt(a * a / 9 + 2 * self.mean_high * a)
        return low, high

    @property
    def verdict(self) -> str:
        low, high = self.interval()
        if low <= 0:
            return "not measured"
        return "consistent" if low <= self.far <= high else "rejected"

    def add(self, lo: mpmath.mpf, hi: mpmath.mpf, a: float, b: float, stored: float) -> None:
        """One element: its value lies in [lo, hi] strictly between map neighbours a < b."""
        p_lo, p_hi = (lo - a) / (b - a), (hi - a) / (b - a)
        if p_hi < 0.5:
            q_lo, q_hi, far = p_lo, p_hi, b
        elif p_lo > 0.5:
            q_lo, q_hi, far = 1 - p_hi, 1 - p_lo, a
        else:
            return  # the nearer neighbour is not known
        self.elements += 1
        self.far += stored == far
        self.mean_low += float(q_lo)
        self.mean_high += float(q_hi)

    def describe(self) -> str:
        low, high = self.interval()
        return (f"{self.verdict}: {self.far} of {self.elements} rounded to the far neighbour, "
                f"stochastic rounding expects [{low:.1f}, {high:.1f}] (false alarm <= "
                f"{2 * self.alpha:.0e})")


def stochastic_test(alpha: float = 1e-9) -> StochasticTest:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return StochasticTest(alpha=alpha)


# --------------------------------------------------------------------------- report


@dataclass
class Check:
    """One output's check: elements (blocks, for scales) checked, failures (up to five
    described), those without a finite bound (nothing claimed), the worst error and bound in
    ULPs (parameter and float state), and how many codes are the nearest code of the exact
    value (codes)."""

    checked: int = 0
    failed: int = 0
    unbounded: int = 0
    worst_ulps: float = 0.0
    bound_ulps: float = 0.0
    nearest: int = 0
    examples: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failed += 1
        if len(self.examples) < 5:
            self.examples.append(message)


@dataclass
class QuantizedReport:
    """What `check_quantized_step` found, per output (``param``, ``scale:<key>``,
    ``code:<key>``, or ``<key>`` for a state kept in float), and the stochastic-rounding
    tests where stochastic rounding is claimed."""

    checks: dict[str, Check] = field(default_factory=dict)
    stochastic: dict[str, StochasticTest] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (all(c.failed == 0 for c in self.checks.values())
                and all(s.verdict != "rejected" for s in self.stochastic.values()))

    def summary(self) -> str:
        lines = []
        for name, c in self.checks.items():
            line = f"{name}: {c.checked} checked, {c.failed} failed"
            if c.unbounded:
                line += f", {c.unbounded} without a finite bound"
            if name.startswith("code:") and c.checked:
                line += f", {c.nearest / c.checked:.4f} nearest to exact"
            elif not name.startswith(("code:", "scale:")):
                line += f", worst {c.worst_ulps:.3g} ulp (bound up to {c.bound_ulps:.3g})"
            lines.append(line)
        lines += [f"stochastic {k}: {s.describe()}" for k, s in self.stochastic.items()]
        return "\n".join(lines)

    def assert_ok(self) -> None:
        if not self.ok:
            details = [e for c in self.checks.values() for e in c.examples]
            raise AssertionError(self.summary() + "\n" + "\n".join("  " + d for d in details))


# --------------------------------------------------------------------------- the check


def _error_of_division(x: mpmath.mpf, e: mpmath.mpf, s: float) -> mpmath.mpf:
    """|ŷ − x/s| for ŷ = fl(m̂/s) or fl(m̂·fl(1/s)) and |m̂ − x| ≤ e: e/s, plus two
    relative roundings of |m̂/s|, plus the underflow of fl(1/s) (times |m̂|) and of the
    result."""
    return e / s + (2 * _F32.u + _F32.u ** 2) * (abs(x) + e) / s + (1 + abs(x) + e) * _F32.eta


def _cell_accepts(levels: list[float], value: float, lo: mpmath.mpf, hi: mpmath.mpf,
                  rounding: str) -> bool:
    """Whether rounding a number in [lo, hi] to ``levels`` may give ``value``."""
    k = bisect.bisect_left(levels, value)
    if k == len(levels) or levels[k] != value:
        return False
    if rounding == "stochastic":  # a neighbour bracketing some point of [lo, hi]
        before = levels[k - 1] if k > 0 else -math.inf
        after = levels[k + 1] if k + 1 < len(levels) else math.inf
        return before < hi and lo < after
    def boundary(a: float, b: float, side: int) -> mpmath.mpf:
        """The midpoint of neighbours a < b, moved outwards by the comparison's τ."""
        return (mpmath.mpf(a) + b) / 2 + side * (_F32.u * (abs(a) + abs(b)) + _F32.eta)

    low = boundary(levels[k - 1], levels[k], -1) if k > 0 else -mpmath.inf
    high = boundary(levels[k], levels[k + 1], 1) if k + 1 < len(levels) else mpmath.inf
    return low <= hi and lo <= high


def _nearest(levels: list[float], y: mpmath.mpf) -> float:
    k = bisect.bisect_left(levels, y)
    candidates = levels[max(k - 1, 0):k + 1]
    return min(candidates, key=lambda v: abs(v - y))


def _bracket(levels: list[float], lo: mpmath.mpf, hi: mpmath.mpf) -> tuple[float, float] | None:
    """The map neighbours a < b with a < lo ≤ hi < b, if there are such."""
    k = bisect.bisect_right(levels, lo)
    if 0 < k < len(levels) and hi < levels[k] and levels[k - 1] < lo:
        return levels[k - 1], levels[k]
    return None


def _check_quantized(report: QuantizedReport, key: str, new: Sequence[tuple], after: StoredState,
                     stats: StochasticTest | None) -> None:
    q = after.quantizer
    levels = q.levels
    scales, codes = report.checks.setdefault(f"scale:{key}", Check()), \
        report.checks.setdefault(f"code:{key}", Check())
    for b, s in enumerate(after.scales):
        block = range(b * q.block_size, min((b + 1) * q.block_size, len(after.codes)))
        if any(not mpmath.isfinite(new[i][1]) for i in block):
            scales.unbounded += 1  # no finite bound on the new state: nothing to claim
            continue
        a_lo = max(max(abs(new[i][0]) - new[i][1], 0) for i in block)
        a_hi = max(abs(new[i][0]) + new[i][1] for i in block)
        lo, hi = max(a_lo, q.scale_floor) / q.scale_divisor, max(a_hi, q.scale_floor) / q.scale_divisor
        if q.scale_divisor != 1:
            lo, hi = lo * (1 - _F32.u) - _F32.eta, hi * (1 + _F32.u) + _F32.eta
        scales.checked += 1
        if not (s == s and lo <= s <= hi):
            scales.fail(f"{key} block {b}: scale {s!r}, exact absmax-derived scale in "
                        f"[{mpmath.nstr(lo, 10)}, {mpmath.nstr(hi, 10)}]")
            continue  # the codes were made with a wrong scale: not checked against it
        for i in block:
            value = q.values[after.codes[i]]
            codes.checked += 1
            if s == 0:
                codes.nearest += 1  # every code dequantizes to 0
                continue
            x, e = new[i]
            y = x / s
            spread = _error_of_division(x, e, s) + q.resolution
            lo_y, hi_y = y - spread, y + spread
            codes.nearest += value == _nearest(levels, y)
            if not _cell_accepts(levels, value, lo_y, hi_y, q.rounding):
                codes.fail(f"{key}[{i}]: code {after.codes[i]} = {value!r}, exact normalised "
                           f"value {mpmath.nstr(y, 10)} ± {mpmath.nstr(spread, 3)} "
                           f"(scale {s!r}, {q.rounding} rounding on {q.name})")
            if stats is not None:
                pair = _bracket(levels, lo_y, hi_y)
                if pair is not None:
                    stats.add(lo_y, hi_y, *pair, value)


def _check_float(check: Check, key: str, kernel: Sequence[float], reference: Sequence[tuple],
                 p: Any) -> None:
    for i, (k, (x, bound)) in enumerate(zip(kernel, reference)):
        if not mpmath.isfinite(x) or not mpmath.isfinite(bound):
            check.unbounded += 1
            continue
        check.checked += 1
        err = abs(mpmath.mpf(k) - x) if k == k and abs(k) != math.inf else mpmath.inf
        check.worst_ulps = max(check.worst_ulps, float(err / ulp(x, p)))
        check.bound_ulps = max(check.bound_ulps, float(bound / ulp(x, p)))
        if err > bound:
            check.fail(f"{key}[{i}]: kernel {k!r}, exact {mpmath.nstr(x, 17)}, bound "
                       f"{mpmath.nstr(bound, 4)}, error {mpmath.nstr(err, 4)}")


def _check_stochastic_param(report: QuantizedReport, kernel: Sequence[float],
                            reference: Sequence[tuple], storage: str, alpha: float) -> None:
    """A float32 result stored in ``storage`` by stochastic rounding: one of the two values
    of ``storage`` bracketing [x − e, x + e] (or any between), with the far-neighbour test."""
    check = report.checks.setdefault("param", Check())
    stats = report.stochastic.setdefault("param", stochastic_test(alpha))
    p = precision(storage)
    for i, (k, (x, e)) in enumerate(zip(kernel, reference)):
        if not mpmath.isfinite(x) or not mpmath.isfinite(e):
            check.unbounded += 1
            continue
        check.checked += 1
        lo, hi = x - e, x + e
        down = _round_to(lo, p, mpmath.floor)
        up = _round_to(hi, p, mpmath.ceil)
        check.worst_ulps = max(check.worst_ulps, float(abs(mpmath.mpf(k) - x) / ulp(x, p)))
        check.bound_ulps = max(check.bound_ulps, float(max(x - down, up - x) / ulp(x, p)))
        if not (k == k and down <= k <= up):
            check.fail(f"param[{i}]: kernel {k!r} is not a {storage} neighbour of "
                       f"[{mpmath.nstr(lo, 12)}, {mpmath.nstr(hi, 12)}]")
        a, b = _round_to(lo, p, mpmath.floor), _round_to(lo, p, mpmath.ceil)
        if a < lo and b > hi:
            stats.add(lo, hi, a, b, k)


def _round_to(x: mpmath.mpf, p: Any, direction: Any) -> mpmath.mpf:
    """x rounded to ``p``'s numbers in ``direction`` (mpmath.floor or mpmath.ceil)."""
    step = ulp(x, p)
    return direction(x / step) * step


def _stored(value: Any) -> StoredState | None:
    """A quantized state as a `StoredState` (read from an adapter's layout if need be), or
    ``None`` for a state kept in floating point."""
    if isinstance(value, StoredState):
        return value
    return StoredState.from_layout(value) if hasattr(value, "code_map") else None


def check_quantized_step(rule: str, hyper: Mapping[str, Any] | None,
                         before: Mapping[str, Any], after: Mapping[str, Any],
                         grads: Sequence[float], *, param_dtype: str = "float32",
                         param_rounding: str = "nearest", alpha: float = 1e-9,
                         dps: int = 30, rounding: Rounding | None = None) -> QuantizedReport:
    """Check one step of a low-bit optimizer on one parameter tensor (module docstring).

    Args:
        rule: the optproof rule the kernel claims (``"adamw"``, ``"adam"``, …).
        hyper: its hyperparameters, torch keyword names.
        before: what the kernel read: ``{"param": [floats], "step": t − 1, key: state}``
            for each state key of the rule (``exp_avg``, ``exp_avg_sq``), a state being a
            `StoredState` (or an audit adapter's ``QuantizedState`` layout, read by
            `StoredState.from_layout`) or, when kept in float32, a list of floats.
        after: the same after the step (``step`` optional).
        grads: the gradient of this step, flat.
        param_dtype: the parameter's storage dtype; the step is computed in float32.
        param_rounding: how a float32 result is stored in a lower ``param_dtype``:
            ``"nearest"`` or ``"stochastic"``.
        alpha: the false-alarm probability of each tail of the stochastic-rounding test.
        dps: the reference's working precision (decimal digits).
        rounding: the library's precision model of its hyperparameters and per-step scalars
            (`Rounding`; default torch.optim's, float64 scalars), as in `bounded_run`.

    Returns:
        A `QuantizedReport`: per output the elements checked and failed, the parameter's
        worst error and bound in ULPs, the fraction of codes equal to the nearest code of
        the exact new state, and the stochastic-rounding tests.
    """
    if param_rounding not in ("nearest", "stochastic"):
        raise ValueError(f"param_rounding must be 'nearest' or 'stochastic', got {param_rounding!r}")
    if param_rounding == "stochastic" and param_dtype == "float32":
        raise ValueError("param_rounding='stochastic' needs a param_dtype below float32")
    for name, part in (("before", before), ("after", after)):
        if "param" not in part:
            raise ValueError(f"{name} must hold 'param' (a list of floats)")
    n = len(before["param"])
    if len(grads) != n or len(after["param"]) != n:
        raise ValueError(f"grads and after['param'] must have {n} elements like before['param']")
    keys = [k for k in {**before, **after} if k not in ("param", "step")]
    state: dict[str, Any] = {"step": int(before.get("step", 0))}
    errors: dict[str, list] = {}
    with mpmath.workdps(dps):
        for key in (k for k in keys if k in before):  # absent: the rule's initial state
            value = _stored(before[key])
            if value is not None:
                if len(value.codes) != n:
                    raise ValueError(f"before[{key!r}] has {len(value.codes)} codes, param {n}")
                exact = value.dequantized()
                state[key] = exact
                errors[key] = [_F32.u * abs(x) + _F32.eta for x in exact]
            else:
                state[key] = list(before[key])
        if param_dtype != "float32" and param_rounding == "nearest":
            run, dtype = mixed_bounded_run, param_dtype  # float32 step, one rounding to store
        else:
            run, dtype = bounded_run, "float32"  # stochastic: the float32 interval, then bracketed
        record = run(rule, hyper, before["param"], [grads], dtype, dps=dps, state=state,
                     state_errors=errors, rounding=rounding)[0]
        report = QuantizedReport()
        if "step" in after and int(after["step"]) != record["step"]:
            report.checks["step"] = Check(checked=1)
            report.checks["step"].fail(f"step {after['step']}, expected {record['step']}")
        if param_rounding == "stochastic":
            _check_stochastic_param(report, after["param"], record["param"], param_dtype, alpha)
        else:
            _check_float(report.checks.setdefault("param", Check()), "param", after["param"],
                         record["param"], precision(param_dtype))
        for key in keys:
            if key not in after or key not in record:
                continue
            stored = _stored(after[key])
            if stored is not None:
                stats = report.stochastic.setdefault(key, stochastic_test(alpha)) \
                    if stored.quantizer.rounding == "stochastic" else None
                _check_quantized(report, key, record[key], stored, stats)
            else:
                _check_float(report.checks.setdefault(key, Check()), key, after[key], record[key], _F32)
        return report
