"""The audit as plain data (``optproof audit --json``): every number a JSON number, ``inf``
as the string ``"inf"``; the schema is the `AuditResult`'s fields."""

from __future__ import annotations

import math
from typing import Any

from .auditor import AuditResult
from .compare import Divergence, HypothesisResult

__all__ = ["to_dict", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1


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
        "verdict": result.verdict, "exit_code": result.exit_code,
        "best_match": {"name": result.best, "kind": result.best_kind},
        "diagnosis": result.diagnosis,
        "conventions": [{"axis": a, "detected": d, "evidence": e} for a, d, e in result.conventions],
        "first_divergence": _div(result.first_divergence),
        "variants": {n: _hyp(r) for n, r in result.variants.items()},
        "probes": {n: _hyp(r) for n, r in result.probes.items()},
        "experiments": [{"name": e.name, "config": e.config, "passed": e.passed,
                         "detail": e.detail} for e in result.experiments],
        "findings": result.findings,
        "configurations": configs,
        "elapsed_s": round(result.elapsed, 3),
    }
