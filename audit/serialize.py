"""The audit as plain data (``optproof audit --json``): every number a JSON number, ``inf``
as the string ``"inf"``; the schema is the `AuditResult`'s fields.

``conventions`` holds one entry per axis: ``measured`` (a configuration that exercised the
axis ran and separated its alternatives), ``detected`` (the convention, or ``"not
measured"``) and ``evidence`` (the runs that separated it, or why it is not measured:
"every weight-decay (λ ≠ 0) configuration was skipped: …"); ``precision_model`` the
framework's `Rounding` (``null``: torch.optim's float64 scalars). Schema 2 added both.
Schema 3 added ``quantization.oracle``: the quantized-state oracle's ``rule``, ``error``
(why it could not run, else ``null``), ``checked``, ``passed`` and per step ``passed``,
``failed`` (the checks that failed: θ, scale of …, code of …), ``checks`` (per output
``checked``, ``failed``, ``unbounded``; θ and float state ``worst_ulps``/``bound_ulps``;
codes ``nearest_fraction``) and ``failures`` (up to five, described).
"""

from __future__ import annotations

import math
from typing import Any

from .auditor import AuditResult
from .compare import Divergence, HypothesisResult

__all__ = ["to_dict", "SCHEMA_VERSION"]

SCHEMA_VERSION = 3


def _num(x: float) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def _div(d: Divergence | None) -> dict | None:
    if d is None:
        return None
    return {"config": d.config, "step": d.step, "tensor": d.tensor, "key": d.key,
            "index": d.index, "target": _num(d.target), "exact": d.exact,
            "err_ulps": _num(d.err_ulps), "bound_ulps": _num(d.bound_ulps),
            "problem": d.problem or None, "inputs": {k: _plain(v) for k, v in d.inputs.items()},
            "message": d.describe()}


def _plain(v: Any) -> Any:
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _hyp(r: HypothesisResult) -> dict:
    h = r.hypothesis
    return {
        "kind": h.kind, "fault": h.fault or None, "matches": r.matches,
        "worst_err_ulps": _num(r.worst_ulps), "worst_ratio": _num(r.worst_ratio),
        "failed": r.failed, "not_applicable": r.not_applicable,
        "first_divergence": _div(r.first),
        "configs": {name: {"mode": c.mode, "passed": c.passed, "first_divergence": _div(c.first),
                           "steps": [{"step": s.step, "err_ulps": _num(s.err_ulps),
                                      "max_err_ulps": _num(s.max_err_ulps),
                                      "bound_ulps": _num(s.bound_ulps), "ratio": _num(s.ratio),
                                      "checked": s.checked, "violations": s.violations}
                                     for s in c.steps]}
                    for name, c in r.configs.items()},
    }


def to_dict(result: AuditResult) -> dict:
    """The whole audit as JSON-ready data."""
    from optproof import __version__
    configs = []
    for obs in result.observations:
        status = ("skipped: " + obs.skipped) if obs.skipped else (obs.error or "ran")
        configs.append({"name": obs.config.name, "purpose": obs.config.purpose,
                        "settings": obs.config.describe(), "hyper": _plain(
                            {k: list(v) if isinstance(v, tuple) else v
                             for k, v in obs.config.constructor_hyper().items()}),
                        "lr_per_step": obs.problem.lrs, "status": status,
                        "steps_run": len(obs.steps), "dropped_keywords": obs.dropped})
    return {
        "schema": SCHEMA_VERSION, "optproof": __version__,
        "target": result.target, "framework": result.framework, "dtype": result.dtype,
        "device": result.device, "seed": result.seed, "steps": result.steps,
        "rule": {"expected": result.expected, "inference": result.inference,
                 "group": result.group},
        "precision_model": None if result.rounding is None else {
            "name": result.rounding.name, "hyper_dtype": result.rounding.hyper_dtype,
            "scalar_dtype": result.rounding.scalar_dtype, "power": result.rounding.power,
            "source": result.rounding.source},
        "verdict": result.verdict, "exit_code": result.exit_code,
        "best_match": {"name": result.best, "kind": result.best_kind},
        "diagnosis": result.diagnosis,
        "conventions": [{"axis": e.axis, "measured": e.measured, "detected": e.shown(),
                         "evidence": e.evidence} for e in result.conventions],
        "first_divergence": _div(result.first_divergence),
        "variants": {n: _hyp(r) for n, r in result.variants.items()},
        "probes": {n: _hyp(r) for n, r in result.probes.items()},
        "experiments": [{"name": e.name, "config": e.config, "passed": e.passed,
                         "measured": e.measured, "detail": e.detail}
                        for e in result.experiments],
        "quantization": result.quantization.to_dict() if result.quantization else None,
        "findings": result.findings,
        "defaults": None if result.defaults is None else {
            "measured": result.defaults.measured, "unidentified": result.defaults.unidentified,
            "given": _plain(result.defaults.given), "ascends": result.defaults.ascends,
            "note": result.defaults.note},
        "configurations": configs,
        "elapsed_s": round(result.elapsed, 3),
    }
