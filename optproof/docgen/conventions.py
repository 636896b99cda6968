"""The conventions matrix: which framework optimizer follows which variant, from real audits.

``python -m optproof.docgen.conventions --audit`` installs nothing: it lists every optimizer
of every installed framework of `FRAMEWORKS` (the one place a framework is added),
audits each one that follows a registered rule (the adapter's documented variant, or a
torch-style class named exactly like a torch.optim rule) at float32 and float64, with its
defaults and with the arguments that expose a convention (`ARGS`), and stores

* one audit's JSON per cell, ``docs/data/audits/<framework>/<target>-<dtype>[-<args>].json``
  (``optproof audit --json``'s document), and
* the matrix ``docs/data/conventions.json`` with the framework versions.

``optproof docs`` renders ``docs/conventions.md`` from the stored matrix only (cheap,
reproducible anywhere; ``optproof docs --audit`` reruns the audits first).
``python -m optproof.docgen.conventions --check`` reruns the audits of the installed
frameworks and fails when a claim (expected and matching variant, verdict, conventions,
measured defaults) differs from the stored matrix: the CI job that installs the extras runs
it. An optimizer with no registered rule is listed with the reason, never guessed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FRAMEWORKS", "ARGS", "DTYPES", "Framework", "collect", "conventions_page",
           "data_files", "compare", "not_audited", "DATA_PATH", "AUDITS_DIR", "main"]

#: where the committed audit results live, relative to the repository root
DATA_PATH = "docs/data/conventions.json"
AUDITS_DIR = "docs/data/audits"
DTYPES = ("float32", "float64")


def _exported(module: Any) -> Iterator[tuple[str, Any]]:
    for name in sorted(n for n in dir(module) if not n.startswith("_")):
        try:
            yield name, getattr(module, name)
        except Exception:  # noqa: BLE001 - a lazily loaded name that fails to import
            continue


def torch_classes(module: Any) -> list[str]:
    """The ``torch.optim.Optimizer`` subclasses a module exports."""
    import torch
    return [n for n, obj in _exported(module) if isinstance(obj, type)
            and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer]


def optax_aliases(module: Any) -> list[str]:
    """optax's optimizers: the functions (and partials: ``nadamw``) of ``optax._src.alias``."""
    def home(obj):
        return getattr(getattr(obj, "func", obj), "__module__", "")
    return [n for n, obj in _exported(module) if callable(obj) and home(obj) == "optax._src.alias"]


def keras_classes(module: Any) -> list[str]:
    """Keras's optimizers (``LossScaleOptimizer`` wraps another: not an optimizer rule)."""
    base = module.Optimizer
    return [n for n, obj in _exported(module) if isinstance(obj, type) and issubclass(obj, base)
            and obj is not base and n != "LossScaleOptimizer"]


@dataclass(frozen=True)
class Framework:
    """One framework: its name in the matrix, the distribution whose version is recorded, the
    module its optimizers are read from, and how to list them."""

    name: str
    distribution: str
    module: str
    optimizers: Callable[[Any], list[str]] = torch_classes

    def load(self) -> Any:
        if self.module.split(".")[0] == "timm":
            from optproof.audit.adapters.timm import import_optim
            return import_optim()
        if self.module.split(".")[0] == "keras":
            import os
            os.environ.setdefault("KERAS_BACKEND", "torch")
        return importlib.import_module(self.module)


FRAMEWORKS: tuple[Framework, ...] = (
    Framework("torch.optim", "torch", "torch.optim"),
    Framework("optax", "optax", "optax", optax_aliases),
    Framework("Keras", "keras", "keras.optimizers", keras_classes),
    Framework("timm", "timm", "timm.optim"),
    Framework("pytorch-optimizer", "pytorch_optimizer", "pytorch_optimizer"),
)

#: constructor arguments that expose a convention, audited besides each target's defaults
ARGS: dict[str, tuple[dict[str, Any], ...]] = {
    "torch.optim.Adam": ({"amsgrad": True},),
    "torch.optim.AdamW": ({"amsgrad": True},),
    "torch.optim.NAdam": ({"decoupled_weight_decay": True},),
    "optax.adam": ({"eps_root": 1e-6},),
    "optax.adamw": ({"eps_root": 1e-6},),
    "optax.amsgrad": ({"bias_correction_mu": False, "bias_correction_nu": False},),
    "optax.rmsprop": ({"initial_scale": 1.0}, {"eps_in_sqrt": False}),
    "optax.nadamw": ({"eps_root": 1e-6},),
    "timm.optim.RMSpropTF": ({"lr_in_momentum": False},),
    "pytorch_optimizer.SGDW": ({"weight_decouple": False},),
    "pytorch_optimizer.AdaDelta": ({"weight_decouple": True},),
}


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _rule_of(path: str) -> tuple[str | None, str]:
    """(the rule to audit ``path`` against, or ``None`` with the reason)."""
    from optproof.audit.families import TORCH_VARIANT
    from optproof.audit.target import TargetError, load_target
    try:
        target = load_target(path)
    except TargetError as error:
        return None, str(error)
    declared = target.adapter.expected()
    if declared:
        return declared, ""
    named = TORCH_VARIANT.get(target.name.lower())
    if named:
        return named, ""
    return None, f"no registered rule is named {target.name} (optproof audit --rule audits it against one)"


def _slug(args: Mapping[str, Any]) -> str:
    return "".join(f"-{k}={v}" for k, v in args.items())


def _row(path: str, result: Any) -> dict[str, Any]:
    """One matrix row from an ``AuditResult`` (`optproof.audit.auditor`)."""
    best = result.hypothesis(result.best) if result.best else None
    first = result.first_divergence
    defaults = result.defaults
    return {
        "target": path,
        "group": result.group,
        "expected": result.expected,
        "follows": result.best,
        "follows_kind": result.best_kind,
        "verdict": result.verdict,
        "worst_ulps": None if best is None else round(float(best.worst_ulps), 2),
        "worst_ratio": None if best is None else round(float(best.worst_ratio), 3),
        "first_divergence": None if first is None else first.describe(),
        "conventions": {e.axis: e.shown() for e in result.conventions},
        "defaults": None if defaults is None else defaults.describe(),
        "diagnosis": list(result.diagnosis),
        "precision_model": None if result.rounding is None else result.rounding.name,
        "elapsed_s": round(result.elapsed, 2),
    }


def collect(audit: Callable[..., Any] | None = None,
            frameworks: tuple[Framework, ...] = FRAMEWORKS, dtypes: tuple[str, ...] = DTYPES,
            progress: Callable[[str], None] | None = None, **settings: Any) -> dict[str, Any]:
    """Audit every optimizer of every installed framework; the matrix and each audit's JSON
    (under ``"audits"``: ``{path: document}``, written by `data_files`).

    ``audit(path, **settings)`` defaults to the audit's Python API. A framework that does not
    import, an optimizer with no registered rule, a re-export of another framework's class
    and an audit that refuses the target are listed with the reason."""
    from optproof.audit import audit as audit_api
    from optproof.audit.auditor import AuditUsageError
    from optproof.audit.serialize import to_dict
    audit = audit or audit_api
    versions: dict[str, str | None] = {}
    rows: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    documents: dict[str, Any] = {}
    seen: dict[int, str] = {}
    for fw in frameworks:
        versions[fw.name] = _version(fw.distribution)
        try:
            module = fw.load()
        except Exception as error:  # noqa: BLE001 - not installed, or fails to import
            others.append({"framework": fw.name, "target": fw.module, "verdict": "not importable",
                           "diagnosis": [f"{type(error).__name__}: {error}"]})
            continue
        for name in fw.optimizers(module):
            path = f"{fw.module}.{name}"
            obj = getattr(module, name)
            if id(obj) in seen:
                others.append({"framework": fw.name, "target": path, "verdict": "same object",
                               "diagnosis": [f"the same object as {seen[id(obj)]}"]})
                continue
            seen[id(obj)] = path
            rule, why = _rule_of(path)
            if rule is None:
                others.append({"framework": fw.name, "target": path, "verdict": "not audited",
                               "diagnosis": [why]})
                continue
            for dtype in dtypes:
                for args in ({}, *ARGS.get(path, ())):
                    if progress:
                        progress(f"{path} {dtype} {args or ''}")
                    base = {"framework": fw.name, "target": path, "dtype": dtype,
                            "args": dict(args)}
                    cpu = time.process_time()
                    try:
                        result = audit(path, dtype=dtype, extra=dict(args), **settings)
                    except AuditUsageError as error:
                        rows.append({**base, "verdict": "not audited", "diagnosis": [str(error)]})
                        continue
                    rel = f"{AUDITS_DIR}/{fw.name}/{name}-{dtype}{_slug(args)}.json"
                    documents[rel] = to_dict(result)
                    rows.append({**base, **_row(path, result),
                                 "cpu_s": round(time.process_time() - cpu, 2),
                                 "json": rel.removeprefix("docs/")})
    return {"optproof": _version("optproof"), "versions": versions,
            "settings": {k: settings[k] for k in sorted(settings)}, "rows": rows,
            "others": others, "audits": documents}


def data_files(data: Mapping[str, Any]) -> dict[str, str]:
    """The files of a `collect` result: the matrix and one JSON per audit."""
    matrix = {k: v for k, v in data.items() if k != "audits"}
    return {DATA_PATH: dump(matrix), **{rel: dump(doc) for rel, doc in data["audits"].items()}}


#: the claims ``--check`` compares (not errors in ULP, nor times)
CLAIMS = ("expected", "follows", "verdict", "conventions", "defaults", "precision_model")


def compare(stored: Mapping[str, Any], fresh: Mapping[str, Any]) -> list[str]:
    """The claims of ``fresh`` rows that differ from ``stored`` (same target, dtype, args);
    rows of frameworks not installed now are not compared."""
    def key(row):
        return row["target"], row.get("dtype"), json.dumps(row.get("args", {}), sort_keys=True)

    old = {key(r): r for r in stored.get("rows", [])}
    problems = []
    for row in fresh["rows"]:
        before = old.get(key(row))
        if before is None:
            problems.append(f"new: {row['target']} {row.get('dtype')} {row.get('args') or ''}")
            continue
        for claim in CLAIMS:
            if before.get(claim) != row.get(claim):
                problems.append(f"{row['target']} {row['dtype']} {row.get('args') or ''}: "
                                f"{claim} {before.get(claim)!r} → {row.get(claim)!r}")
    installed = {r["framework"] for r in fresh["rows"]}
    gone = [k for k, r in old.items() if r["framework"] in installed
            and k not in {key(r) for r in fresh["rows"]}]
    problems += [f"no longer audited: {t} {d}" for t, d, _ in gone]
    return problems


def timing(data: Mapping[str, Any], key: str = "elapsed_s") -> dict[str, tuple[int, float, float]]:
    """Per framework: (audits, median, worst) seconds of one audit (wall ``elapsed_s`` or
    the process's ``cpu_s``)."""
    out = {}
    for fw in dict.fromkeys(r["framework"] for r in data["rows"]):
        times = [r[key] for r in data["rows"] if r["framework"] == fw and key in r]
        if times:
            out[fw] = (len(times), statistics.median(times), max(times))
    return out


def _cell(value: Any) -> str:
    if value in (None, "", {}):
        return "—"
    return " ".join(str(value).split()).replace("|", "\\|")


def conventions_page(data: Mapping[str, Any] | None, rule_link: Callable[[str], str]) -> str:
    """``docs/conventions.md`` from the stored matrix (``None``: not audited yet)."""
    out = ["<!-- generated by `optproof docs` from docs/data/conventions.json; "
           "`python -m optproof.docgen.conventions --audit` reruns the audits -->", "",
           "# Conventions matrix", "",
           "Which framework optimizer follows which variant, as found by `optproof audit` "
           "driving each one and comparing every step with every variant of its rule "
           "([Audit your optimizer](guides/audit.md)), at float32 and float64, with the "
           "optimizer's defaults and with the constructor arguments that expose a convention "
           "(`--arg`). Generated from the stored audit results "
           f"`{DATA_PATH}`; each row links to its audit's JSON. "
           "`python -m optproof.docgen.conventions --audit` reruns the audits of every "
           "installed framework (it installs nothing) and rewrites those files.", ""]
    if not data:
        out += ["!!! warning \"Not audited yet\"", "",
                "    No audit results are stored yet: run "
                "`python -m optproof.docgen.conventions --audit`.", "",
                "Frameworks that will be audited: "
                + ", ".join(f"{f.name} (`{f.module}`)" for f in FRAMEWORKS) + "."]
        return "\n".join(out) + "\n"
    versions = data.get("versions", {})
    settings = data.get("settings") or {}
    out += ["Versions audited: " + ", ".join(
        f"{fw} {v}" if v else f"{fw} (not installed)" for fw, v in versions.items())
        + (f"; optproof {data['optproof']}" if data.get("optproof") else "")
        + (" — audit settings: " + ", ".join(f"{k}={v}" for k, v in settings.items())
           if settings else " — audit defaults") + ".", ""]
    times = timing(data)
    if times:
        out += ["Audits per framework (optimizers × settings), and the time of one audit: "
                + "; ".join(f"{fw}: {n} audits, median {med:.1f} s, worst {worst:.1f} s"
                            for fw, (n, med, worst) in times.items()) + ".", ""]
    out += ["*follows*: the variant (or named fault) that reproduces every step within the "
            "derived bound; *err / bound*: the largest ratio of an element's error to its "
            "bound for that variant (≤ 1 conforms); *own defaults*: the target's defaults as "
            "the defaults run measured them (fitted to the expected variant).", ""]
    audited = [r for r in data["rows"] if r.get("group")]
    for group in dict.fromkeys(r["group"] for r in audited):
        rows = [r for r in audited if r["group"] == group]
        axes = list(dict.fromkeys(a for r in rows for a in r.get("conventions", {})))
        head = ["target", "dtype", "arguments", "expected", "follows", "verdict", "err / bound",
                *axes, "own defaults", "audit"]
        out += [f"## {group}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            follows = r.get("follows")
            if follows and r.get("follows_kind") == "variant":
                follows = _link(rule_link, follows)
            elif follows:
                follows = f"`{follows}` ({r.get('follows_kind')})"
            args = ", ".join(f"{k}={v!r}" for k, v in r.get("args", {}).items())
            cells = [f"`{r['target']}` ({r['framework']})", r.get("dtype", "—"),
                     f"`{args}`" if args else "defaults", _link(rule_link, r["expected"]),
                     _cell(follows), _cell(r.get("verdict")), _cell(r.get("worst_ratio")),
                     *(_cell(r.get("conventions", {}).get(a)) for a in axes),
                     _cell(r.get("defaults")), f"[JSON]({r['json']})" if r.get("json") else "—"]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        notes = [(r["target"], r.get("dtype"), d) for r in rows for d in r.get("diagnosis", [])]
        if notes:
            out += ["Diagnoses:", ""] + [f"- `{t}` ({dt}): {_cell(d)}" for t, dt, d in notes] + [""]
    out += not_audited([*data["rows"], *data.get("others", [])])
    return "\n".join(out).rstrip("\n") + "\n"


def not_audited(rows: list[Mapping[str, Any]]) -> list[str]:
    """The section listing the rows without an audit (not importable, refused), and why."""
    others = [r for r in rows if not r.get("group")]
    if not others:
        return []
    return ["## Not audited", "", "| target | framework | why |", "|---|---|---|"] + [
        f"| `{r['target']}` | {r['framework']} | {_cell(r.get('verdict'))}: "
        f"{_cell('; '.join(r.get('diagnosis', [])))} |" for r in others]


def _link(rule_link: Callable[[str], str], name: str) -> str:
    try:
        return rule_link(name)
    except Exception:  # noqa: BLE001 (a name the registry does not know: plain text)
        return f"`{name}`"


def dump(data: Mapping[str, Any]) -> str:
    """The stored form of the audit data (stable key order, one trailing newline)."""
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"  # order kept: it is the page's order


def main(argv: list[str] | None = None) -> int:
    """``python -m optproof.docgen.conventions (--audit | --check)``."""
    parser = argparse.ArgumentParser(
        prog="python -m optproof.docgen.conventions",
        description="Audit every optimizer of every installed framework (installs nothing).")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--audit", action="store_true",
                      help="rerun the audits and write docs/data/ and docs/conventions.md")
    mode.add_argument("--check", action="store_true",
                      help="rerun the audits; exit 1 when a claim differs from docs/data/")
    args = parser.parse_args(argv)
    from . import repository_root, write
    root = repository_root()
    start = time.perf_counter()
    data = collect(progress=lambda what: print(f"  {what}", file=sys.stderr, flush=True))
    seconds = time.perf_counter() - start
    summary = "; ".join(f"{fw}: {n} audits, median {med:.1f} s, worst {worst:.1f} s"
                        for fw, (n, med, worst) in timing(data).items())
    if args.check:
        stored = json.loads((root / DATA_PATH).read_text())
        problems = compare(stored, data)
        print("\n".join(problems) if problems else "the stored matrix holds")
        print(f"conventions --check: {len(data['rows'])} audits in {seconds:.0f} s ({summary})")
        return 1 if problems else 0
    write(root, root, conventions=data)
    print(f"conventions --audit: {len(data['rows'])} audits in {seconds:.0f} s ({summary}); "
          f"written {DATA_PATH}, {AUDITS_DIR}/ and docs/conventions.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
