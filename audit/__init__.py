"""optproof.audit: drive any optimizer, compare it with every variant of its rule, classify.

``audit(target, rule=None, steps=5, dtype="float32", device="cpu", seed=0)`` returns an
:class:`~optproof.audit.auditor.AuditResult` (verdict, best-matching variant or named fault,
conventions with the configuration that exposed each, per-step errors in ULPs against the
derived bound, experiments); ``optproof audit`` prints it (``--json``, ``--plot``).

Modules, in the order an audit uses them:

* :mod:`.target` — import the target, choose its adapter (:mod:`.adapters`: torch-style,
  optax, Keras 3, timm, pytorch-optimizer);
* :mod:`.families` — the variants competing for a target, the rule a class name names;
* :mod:`.configs` — the configurations that expose each convention, generated problems;
* :mod:`.drive` — stepping the target under a deadline (:mod:`.timeout`), recording exact
  inputs and outputs; the isolation and checkpoint experiments;
* :mod:`.evaluate` — hypotheses and the bounded reference step (one-step and trajectory);
* :mod:`.compare` — every step against every hypothesis, first divergences;
* :mod:`.probes` — named faults as hypotheses; :mod:`.conventions` — conventions by axis;
* :mod:`.auditor` — the verdict and the diagnosis;
* :mod:`.report`, :mod:`.serialize`, :mod:`.plot` — rich tables, JSON, matplotlib;
* :mod:`.vectors` — golden test vectors; :mod:`.cli` — the subcommands.
"""

from __future__ import annotations

__all__ = ["audit", "AuditResult", "AuditUsageError", "vectors"]


def __getattr__(name: str):
    if name in ("audit", "AuditResult", "AuditUsageError"):
        from . import auditor
        return getattr(auditor, name)
    if name == "vectors":
        from .vectors import vectors
        return vectors
    raise AttributeError(f"module 'optproof.audit' has no attribute {name!r}")
