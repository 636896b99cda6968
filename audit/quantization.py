"""Which state a low-bit optimizer quantizes, and how far its steps land from the exact rule.

The audit's configurations step tensors of at most 135 elements, and the libraries quantize
only larger ones (bitsandbytes from ``min_8bit_size`` = 4096 elements, torchao from 4096
elements that fill whole blocks). This experiment steps the target on tensors around those
thresholds — `SIZES` — and reads back, through the adapter's
[QuantizedState][optproof.audit.adapters.base.QuantizedState] reader, which entries each
keeps as codes and in which format (bits, block size, scale rule, code map).

On the largest quantized tensor it measures the error of θₜ against the *exact* expected
rule run from the same start with exact state (``optproof.reference.run``), in ULPs of the
audited dtype at the exact value, per step. The experiment sets λ = 0, where Adam and every
AdamW agree, so that the error is the quantization's and not a decay convention's (those
are the configurations' to separate). At step 1 the state read is zero, which every
map represents exactly, so the error is rounding only; from step 2 on the target reads
dequantized state and the error includes the quantization of mₜ₋₁ and vₜ₋₁. These numbers
are measurements, not a verdict: whether a step is right *given* the quantized state is the
quantized-state oracle's question (a derived bound from the map's spacing), and until it is
asked the audit does not call a quantized target conformant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np

from optproof.reference import precision, run, ulp

from .adapters.base import Adapter, QuantizedState
from .configs import _round

__all__ = ["SIZES", "Quantization", "quantization"]

#: one below and at bitsandbytes' and torchao's 4096-element threshold, and 4096 + 128: a
#: whole number of torchao's 4-bit blocks (128) but not of its 8-bit ones (256)
SIZES = (4095, 4096, 4224)
HYPER = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
STEPS = 3


@dataclass
class Quantization:
    """What the experiment found: per size, the quantized entries (``{key: format}``, empty
    for float state) and, on the largest quantized tensor, the error per step."""

    sizes: dict[int, dict[str, str]] = field(default_factory=dict)
    measured_on: int | None = None
    max_ulps: list[float] = field(default_factory=list)
    median_ulps: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def quantized(self) -> bool:
        return any(self.sizes.values())

    def threshold(self) -> str:
        kept = [n for n, e in self.sizes.items() if not e]
        coded = [n for n, e in self.sizes.items() if e]
        if not coded:
            return f"no state quantized at {', '.join(map(str, self.sizes))} elements"
        return (f"quantized at {', '.join(map(str, coded))} elements" +
                (f", float at {', '.join(map(str, kept))}" if kept else ""))

    def describe(self) -> str:
        if self.error:
            return self.error
        formats = sorted({f"{k}: {v}" for e in self.sizes.values() for k, v in e.items()})
        text = self.threshold() + ("; " + "; ".join(formats) if formats else "")
        if self.max_ulps:
            text += (f"; θ against exact, {self.measured_on} elements, max/median ULP per step: "
                     + ", ".join(f"{a:.3g}/{b:.3g}"
                                 for a, b in zip(self.max_ulps, self.median_ulps)))
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"sizes": {str(k): v for k, v in self.sizes.items()},
                "measured_on": self.measured_on, "max_ulps": self.max_ulps,
                "median_ulps": self.median_ulps, "error": self.error}


def describe_format(q: QuantizedState) -> str:
    """``8-bit codes, 256-entry map, block 256, absmax scale`` for one entry."""
    return (f"{q.bits}-bit codes, {len(q.code_map)}-entry map, block {q.block_size}, "
            f"{q.scale_rule} scale, {q.rounding}")


def quantization(adapter: Adapter, expected: str, defaults: Mapping[str, Any], dtype: str,
                 device: str, seed: int) -> Quantization | None:
    """Run the experiment (``None`` for a target whose adapter reads no quantized state)."""
    if getattr(adapter, "quantized", None) is None:
        return None
    rng = np.random.default_rng(seed)
    hyper = {**{k: v for k, v in defaults.items() if not isinstance(v, bool)}, **HYPER}
    found = Quantization()
    params = [_round(rng.uniform(-1, 1, n), dtype) for n in SIZES]
    grads = [[_round(rng.standard_normal(n), dtype) for n in SIZES] for _ in range(STEPS)]
    try:
        session = adapter.open(hyper, params, dtype, device, defaults)
        history = [session.params()]
        for k in range(STEPS):
            session.step(grads[k], hyper["lr"])
            history.append(session.params())
        entries = session.quantized_state() or [{} for _ in SIZES]
    except Exception as error:  # noqa: BLE001 (the target's failure is the finding)
        found.error = f"the quantization experiment raised {type(error).__name__}: {error}"
        return found
    found.sizes = {n: {k: describe_format(q) for k, q in e.items()} for n, e in zip(SIZES, entries)}
    coded = [i for i, e in enumerate(entries) if e]
    if coded:
        i = coded[-1]
        found.measured_on = SIZES[i]
        exact = run(expected, hyper, params[i].tolist(), [g[i].tolist() for g in grads], dps=30)
        p = precision(dtype)
        for k, record in enumerate(exact):
            target = history[k + 1][i]
            errs = [float(abs(mpmath.mpf(x) - e) / ulp(e, p))
                    for x, e in zip(target, record["param"])]
            found.max_ulps.append(round(max(errs), 3))
            found.median_ulps.append(round(float(np.median(errs)), 3))
    return found
