"""optproof.audit: drive any optimizer, compare it with every variant of its rule, classify.

``audit(target, rule=None, steps=5, dtype="float32", device="cpu", seed=0)`` returns an
`AuditResult` (verdict, best-matching variant or named fault,
conventions with the configuration that exposed each, per-step errors in ULPs against the
derived bound, experiments); ``optproof audit`` prints it (``--json``, ``--plot``).

Modules, in the order an audit uses them:

* `target` — import the target, choose its adapter (`adapters`: torch-style,
  optax, Keras 3, timm, pytorch-optimizer);
* `families` — the variants competing for a target, the rule a class name names;
* `configs` — the configurations that expose each convention, generated problems;
* `drive` — stepping the target under a deadline (`timeout`), recording exact
  inputs and outputs; the isolation and checkpoint experiments;
* `evaluate` — hypotheses and the bounded reference step (one-step and trajectory);
* `compare` — every step against every hypothesis, first divergences;
* `probes` — named faults as hypotheses; `conventions` — conventions by axis;
* `auditor` — the verdict and the diagnosis;
* `report`, `serialize`, `plot` — rich tables, JSON, matplotlib;
* `golden` — golden test vectors (`vectors`); `cli` — the subcommands.
"""

from __future__ import annotations

__all__ = ["audit", "AuditResult", "AuditUsageError", "vectors"]


def __getattr__(name: str):
    if name in ("audit", "AuditResult", "AuditUsageError"):
        from . import auditor
        return getattr(auditor, name)
    if name == "vectors":
        from .golden import vectors
        return vectors
    raise AttributeError(f"module 'optproof.audit' has no attribute {name!r}")
