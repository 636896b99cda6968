"""The conventions matrix: which framework optimizer follows which variant, from real audits.

Audits are slow and need the frameworks installed (optax, Keras, timm, pytorch-optimizer are
optional), so they are not rerun by ``optproof docs``: ``optproof docs --audit`` runs them
with `collect` and stores the results with the framework versions in
``docs/data/conventions.json`` (committed); ``optproof docs`` and ``--check`` render the page
``docs/conventions.md`` from that file only, so the check is cheap and reproducible anywhere.

`collect` is the integration point with ``optproof.audit``: it calls the audit's Python
API (``optproof.audit.audit``, found by `_audit_api`) once per importable target of
`TARGETS` and reduces each ``AuditResult`` to a row (`_row`); a target that does
not import, or that the audit cannot drive yet (no adapter for its framework), is listed with
the reason.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TARGETS", "Target", "collect", "installed", "conventions_page", "DATA_PATH"]

#: where the committed audit results live, relative to the repository root
DATA_PATH = "docs/data/conventions.json"


@dataclass(frozen=True)
class Target:
    """One framework optimizer: its framework, the import path ``optproof audit`` takes, and
    the distribution whose version is recorded."""

    framework: str
    path: str
    distribution: str


def _targets(framework: str, distribution: str, module: str, names: str) -> list[Target]:
    return [Target(framework, f"{module}.{n}", distribution) for n in names.split()]


TARGETS: tuple[Target, ...] = (
    *_targets("torch.optim", "torch", "torch.optim", "SGD Adagrad Adadelta RMSprop Adam AdamW NAdam"),
    *_targets("optax", "optax", "optax", "sgd adagrad adadelta rmsprop adam adamw nadam amsgrad"),
    *_targets("Keras", "keras", "keras.optimizers", "SGD Adagrad Adadelta RMSprop Adam AdamW Nadam"),
    *_targets("timm", "timm", "timm.optim", "SGDW AdamWLegacy RMSpropTF NAdamLegacy"),
    *_targets("pytorch-optimizer", "pytorch_optimizer", "pytorch_optimizer", "SGDW AdaDelta"),
)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import_error(target: Target) -> str | None:
    """Why ``target`` does not import here (``None`` when it does)."""
    module, _, name = target.path.rpartition(".")
    try:
        if not hasattr(importlib.import_module(module), name):
            return f"{module} has no {name}"
    except Exception as error:  # noqa: BLE001 (a framework that fails to import is reported)
        return f"{type(error).__name__}: {error}"
    return None


def installed(target: Target) -> bool:
    """Whether ``target`` imports here (its module imports and has the attribute)."""
    return _import_error(target) is None


def _audit_api() -> Callable[..., Any]:
    """The audit's Python entry point, ``optproof.audit.audit(target, ...)``."""
    for module in ("optproof.audit", "optproof.audit.auditor"):
        found = getattr(importlib.import_module(module), "audit", None)
        if callable(found):
            return found
    raise RuntimeError("optproof.audit has no Python API yet (expected optproof.audit.audit"
                       "(target, ...) returning an AuditResult); the conventions matrix needs it")


def _row(target: Target, result: Any) -> dict[str, Any]:
    """One matrix row from an ``AuditResult`` (`optproof.audit.auditor`)."""
    best = result.hypothesis(result.best) if result.best else None
    first = result.first_divergence
    return {
        "framework": target.framework,
        "target": target.path,
        "group": result.group,
        "expected": result.expected,
        "follows": result.best,
        "follows_kind": result.best_kind,
        "verdict": result.verdict,
        "worst_ulps": None if best is None else round(float(best.worst_ulps), 2),
        "worst_ratio": None if best is None else round(float(best.worst_ratio), 3),
        "first_divergence": None if first is None else first.describe(),
        "conventions": {axis: detected for axis, detected, _ in result.conventions},
        "diagnosis": list(result.diagnosis),
    }


def collect(audit: Callable[..., Any] | None = None, targets: tuple[Target, ...] = TARGETS,
            **settings: Any) -> dict[str, Any]:
    """Audit every target that imports here; the data of ``docs/data/conventions.json``.

    ``audit(path, **settings)`` defaults to the audit's Python API (``optproof.audit``); a
    target that does not import, or that the audit refuses or fails on, is recorded with the
    reason, not skipped.
    """
    audit = audit or _audit_api()
    versions: dict[str, str | None] = {}
    rows = []
    for target in targets:
        versions.setdefault(target.framework, _version(target.distribution))
        base = {"framework": target.framework, "target": target.path}
        why = _import_error(target)
        if why is not None:
            rows.append({**base, "verdict": "not importable", "diagnosis": [why]})
            continue
        try:
            rows.append(_row(target, audit(target.path, **settings)))
        except Exception as error:  # noqa: BLE001 (reported, as the audit itself would)
            rows.append({**base, "verdict": "not audited",
                         "diagnosis": [f"{type(error).__name__}: {error}"]})
    return {"optproof": _version("optproof"), "versions": versions,
            "settings": {k: settings[k] for k in sorted(settings)}, "rows": rows}


def _cell(value: Any) -> str:
    if value in (None, "", {}):
        return "—"
    return " ".join(str(value).split()).replace("|", "\\|")


def conventions_page(data: Mapping[str, Any] | None, rule_link: Callable[[str], str]) -> str:
    """``docs/conventions.md`` from the stored audit data (``None``: not audited yet)."""
    out = ["<!-- generated by `optproof docs` from docs/data/conventions.json; "
           "`optproof docs --audit` reruns the audits -->", "", "# Conventions matrix", "",
           "Which framework optimizer follows which variant, as found by `optproof audit` "
           "driving each one and comparing every step with every variant of its rule "
           "([Audit your optimizer](guides/audit.md)). Generated from the stored audit results "
           f"`{DATA_PATH}`; `optproof docs --audit` reruns the audits (with the frameworks "
           "installed) and rewrites that file.", ""]
    if not data:
        out += ["!!! warning \"Not audited yet\"", "",
                "    No audit results are stored yet: run `optproof docs --audit`.", ""]
        out += ["Targets that will be audited:", "", "| framework | target |", "|---|---|"]
        out += [f"| {t.framework} | `{t.path}` |" for t in TARGETS]
        return "\n".join(out) + "\n"
    versions = data.get("versions", {})
    settings = data.get("settings") or {}
    out += ["Versions audited: " + ", ".join(
        f"{fw} {v}" if v else f"{fw} (not installed)" for fw, v in versions.items())
        + (f"; optproof {data['optproof']}" if data.get("optproof") else "")
        + (" — audit settings: " + ", ".join(f"{k}={v}" for k, v in settings.items())
           if settings else " — audit defaults") + ".", "",
        "*follows*: the variant (or named fault) that reproduces every step within the derived "
        "bound; *worst error / bound*: the largest ratio of an element's error to its bound "
        "for that variant (≤ 1 conforms).", ""]
    audited = [r for r in data["rows"] if r.get("group")]
    for group in dict.fromkeys(r["group"] for r in audited):
        rows = [r for r in audited if r["group"] == group]
        axes = list(dict.fromkeys(a for r in rows for a in r.get("conventions", {})))
        head = ["target", "expected", "follows", "verdict", "worst error / bound", *axes]
        out += [f"## {group}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            follows = r.get("follows")
            if follows and r.get("follows_kind") == "variant":
                follows = _link(rule_link, follows)
            elif follows:
                follows = f"`{follows}` ({r.get('follows_kind')})"
            cells = [f"`{r['target']}` ({r['framework']})", _link(rule_link, r["expected"]),
                     _cell(follows), _cell(r.get("verdict")), _cell(r.get("worst_ratio")),
                     *(_cell(r.get("conventions", {}).get(a)) for a in axes)]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        notes = [(r["target"], d) for r in rows for d in r.get("diagnosis", [])]
        if notes:
            out += ["Diagnoses:", ""] + [f"- `{t}`: {_cell(d)}" for t, d in notes] + [""]
    others = [r for r in data["rows"] if not r.get("group")]
    if others:
        out += ["## Not audited", "", "| target | framework | why |", "|---|---|---|"]
        out += [f"| `{r['target']}` | {r['framework']} | {_cell(r.get('verdict'))}: "
                f"{_cell('; '.join(r.get('diagnosis', [])))} |" for r in others]
    return "\n".join(out).rstrip("\n") + "\n"


def _link(rule_link: Callable[[str], str], name: str) -> str:
    try:
        return rule_link(name)
    except Exception:  # noqa: BLE001 (a name the registry does not know: plain text)
        return f"`{name}`"


def dump(data: Mapping[str, Any]) -> str:
    """The stored form of the audit data (stable key order, one trailing newline)."""
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"  # order kept: it is the page's order
