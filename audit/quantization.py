"""Which state a low-bit optimizer quantizes, and whether each step on codes is right.

The audit's configurations step tensors of at most 135 elements, and the libraries quantize
only larger ones (bitsandbytes from ``min_8bit_size`` = 4096 elements, torchao from 4096
elements that fill whole blocks). This experiment steps the target on tensors around those
thresholds — `SIZES` — and reads back, through the adapter's
[QuantizedState][optproof.audit.adapters.base.QuantizedState] reader, which entries each
keeps as codes and in which format (bits, block size, scale rule, code map, rounding).

On the largest quantized tensor every step is checked by the quantized-state oracle
(`optproof.reference.quantized.check_quantized_step`): from the codes and scales the target
read before the step, the gradient and the hyperparameters, θₜ must lie within the derived
float bound of the expected rule's exact step, each new block scale within the exact new
state's absmax interval, and each new code in the rounding cell of the exact new state under
the entry's own map (bounds derived in that module). The experiment sets λ = 0, where Adam
and every AdamW agree, so that what it checks is the quantized arithmetic and not a decay
convention (those are the configurations' to separate, with float state). It also measures
θ's error against the expected rule run from the same start with *exact* state
(``optproof.reference.run``), in ULPs of the audited dtype, per step: the accumulated cost
of quantizing the state, a measurement and no verdict.
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
class OracleStep:
    """One step checked by the quantized-state oracle on one tensor: per output (``param``,
    ``scale:<key>``, ``code:<key>``, ``<key>`` for float state) elements checked and failed,
    the worst error and bound in ULPs (``param`` and float state) and the fraction of codes
    that are the nearest code of the exact new state (codes); up to five failures described."""

    step: int
    checks: dict[str, dict[str, Any]]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(c["failed"] for c in self.checks.values())

    def failed(self) -> list[str]:
        """The checks that failed, named as the report names them (θ, scale of …, code of …)."""
        return [_name(k) for k, c in self.checks.items() if c["failed"]]


def _name(check: str) -> str:
    kind, _, key = check.partition(":")
    return {"param": "θ", "scale": f"scale of {key}", "code": f"code of {key}"}.get(
        kind, f"{check} (float state)")


@dataclass
class Quantization:
    """What the experiment found: per size, the quantized entries (``{key: format}``, empty
    for float state); on the largest quantized tensor, the oracle's check of every step
    (``oracle``; ``oracle_error`` says why it could not run) and θ's error per step against
    the rule run with exact state."""

    sizes: dict[int, dict[str, str]] = field(default_factory=dict)
    measured_on: int | None = None
    max_ulps: list[float] = field(default_factory=list)
    median_ulps: list[float] = field(default_factory=list)
    oracle: list[OracleStep] = field(default_factory=list)
    oracle_rule: str | None = None
    oracle_error: str | None = None
    error: str | None = None

    @property
    def quantized(self) -> bool:
        return any(self.sizes.values())

    @property
    def checked(self) -> bool:
        """The oracle ran on every step of the quantized tensor."""
        return bool(self.oracle) and self.oracle_error is None

    @property
    def passed(self) -> bool:
        return self.checked and all(s.passed for s in self.oracle)

    def formats(self) -> str:
        """The quantization the steps were checked under, per entry."""
        return "; ".join(sorted({f"{k}: {v}" for e in self.sizes.values() for k, v in e.items()}))

    def threshold(self) -> str:
        kept = [n for n, e in self.sizes.items() if not e]
        coded = [n for n, e in self.sizes.items() if e]
        if not coded:
            return f"no state quantized at {', '.join(map(str, self.sizes))} elements"
        return (f"quantized at {', '.join(map(str, coded))} elements" +
                (f", float at {', '.join(map(str, kept))}" if kept else ""))

    def verdict(self) -> str:
        """One line: what the oracle checked and found, or why it did not run."""
        if self.oracle_error:
            return f"quantized-state oracle not run: {self.oracle_error}"
        if not self.oracle:
            return "quantized-state oracle not run: no tensor was quantized"
        where = f"{len(self.oracle)} step(s) of the {self.measured_on}-element tensor"
        totals: dict[str, list[int]] = {}
        for s in self.oracle:
            for k, c in s.checks.items():
                t = totals.setdefault(k, [0, 0])
                t[0], t[1] = t[0] + c["checked"], t[1] + c["failed"]
        counts = ", ".join(f"{_name(k)} {t[0] - t[1]}/{t[0]}" for k, t in totals.items())
        param = [s.checks["param"] for s in self.oracle if "param" in s.checks]
        worst = (f"; θ worst {max(c['worst_ulps'] for c in param):.3g} ULP, bound up to "
                 f"{max(c['bound_ulps'] for c in param):.3g}") if param else ""
        if self.passed:
            return f"quantized-state oracle ({self.oracle_rule}): {where} pass (passed {counts}){worst}"
        bad = [f"step {s.step}: {', '.join(s.failed())} ({'; '.join(s.failures[:2])})"
               for s in self.oracle if not s.passed]
        return (f"quantized-state oracle ({self.oracle_rule}): {where}, failed {'; '.join(bad)} "
                f"(passed {counts}){worst}")

    def describe(self) -> str:
        if self.error:
            return self.error
        formats = self.formats()
        text = self.threshold() + ("; " + formats if formats else "")
        if self.quantized:
            text += "; " + self.verdict()
        if self.max_ulps:
            text += (f"; θ against exact state, {self.measured_on} elements, max/median ULP per "
                     "step: " + ", ".join(f"{a:.3g}/{b:.3g}"
                                          for a, b in zip(self.max_ulps, self.median_ulps)))
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"sizes": {str(k): v for k, v in self.sizes.items()},
                "measured_on": self.measured_on, "max_ulps": self.max_ulps,
                "median_ulps": self.median_ulps,
                "oracle": {"rule": self.oracle_rule, "error": self.oracle_error,
                           "checked": self.checked, "passed": self.passed,
                           "steps": [{"step": s.step, "passed": s.passed, "failed": s.failed(),
                                      "checks": s.checks, "failures": s.failures}
                                     for s in self.oracle]},
                "error": self.error}


def describe_format(q: QuantizedState) -> str:
    """``8-bit codes, 256-entry map, block 256, absmax scale, …`` for one entry."""
    return (f"{q.bits}-bit codes, {len(q.code_map)}-entry map, block {q.block_size}, "
            f"{q.scale_rule} scale, {q.rounding}")


def _checks(report) -> dict[str, dict[str, Any]]:
    """A `QuantizedReport`'s checks as plain numbers."""
    out = {}
    for key, c in report.checks.items():
        row = {"checked": c.checked, "failed": c.failed, "unbounded": c.unbounded}
        if key.startswith("code:"):
            row["nearest_fraction"] = round(c.nearest / c.checked, 6) if c.checked else None
        elif not key.startswith("scale:"):
            row["worst_ulps"], row["bound_ulps"] = round(c.worst_ulps, 4), round(c.bound_ulps, 4)
        out[key] = row
    return out


def _snapshot(session, i: int, params: list[float], steps: int) -> dict[str, Any]:
    """What tensor ``i`` holds: θ, the step count, quantized entries as layouts, float
    entries as lists (the oracle's ``before``/``after``)."""
    coded = (session.quantized_state() or [{}] * (i + 1))[i]
    floats = (session.state() or [{}] * (i + 1))[i]
    out: dict[str, Any] = {"param": params, "step": steps, **coded}
    out.update({k: v for k, v in floats.items() if k not in coded and k != "step"
                and isinstance(v, list)})
    return out


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
    snapshots: list[tuple[dict, dict]] = []
    try:
        session = adapter.open(hyper, params, dtype, device, defaults)
        entries = session.quantized_state() or [{} for _ in SIZES]
        history = [session.params()]
        for k in range(STEPS):
            i = max((j for j, e in enumerate(entries) if e), default=None)
            before = _snapshot(session, i, history[-1][i], k) if i is not None else None
            session.step(grads[k], hyper["lr"])
            history.append(session.params())
            entries = session.quantized_state() or [{} for _ in SIZES]
            i = max((j for j, e in enumerate(entries) if e), default=None)
            if i is not None:
                before = before or {"param": history[-2][i], "step": k}  # state still empty
                snapshots.append((before, _snapshot(session, i, history[-1][i], k + 1)))
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
        _oracle(found, adapter, expected, hyper, dtype, snapshots,
                [g[i].tolist() for g in grads])
    return found


def _oracle(found: Quantization, adapter: Adapter, expected: str, hyper: Mapping[str, Any],
            dtype: str, snapshots, grads: list[list[float]]) -> None:
    """Check every recorded step with the quantized-state oracle (module docstring)."""
    from optproof.reference.quantized import check_quantized_step
    found.oracle_rule = expected
    if dtype == "float64":
        found.oracle_error = ("the oracle models a float32 step (the libraries' kernels "
                              "compute in float32); float64 parameters are not checked")
        return
    if len(snapshots) != len(grads):
        found.oracle_error = ("the tensor was not quantized at every step: the oracle needs "
                              "the codes each step read")
        return
    param_rounding = "stochastic" if adapter.args.get("bf16_stochastic_round") and \
        dtype != "float32" else "nearest"
    try:
        for k, ((before, after), g) in enumerate(zip(snapshots, grads)):
            report = check_quantized_step(expected, hyper, before, after, g, param_dtype=dtype,
                                          param_rounding=param_rounding,
                                          rounding=adapter.rounding(dtype))
            found.oracle.append(OracleStep(k + 1, _checks(report),
                                           [e for c in report.checks.values() for e in c.examples][:5]))
    except (ValueError, KeyError) as error:  # a layout the oracle does not model
        found.oracle, found.oracle_error = [], f"{type(error).__name__}: {error}"
