"""The human report of an audit: rich tables on a console.

Sections: the verdict and how the rule was chosen; the variants (does each reproduce the
target, worst error in ULPs of the dtype, worst error/bound, first divergence); the
conventions measured, with the configuration that separated each, and those not measured
with the reason; the per-step error of the
best-matching hypothesis against its bound; the configurations and experiments.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .auditor import AuditResult
from .compare import HypothesisResult

__all__ = ["render"]


def _f(x: float) -> str:
    if x == float("inf"):
        return "inf"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def _per_step(r: HypothesisResult, steps: int) -> list[tuple[int, float, float, float, str]]:
    """Per step, the worst element over the configurations (largest err/bound)."""
    rows = []
    for k in range(1, steps + 1):
        worst = None
        for name, c in r.configs.items():
            for s in c.steps:
                if s.step == k and (worst is None or s.ratio > worst[3]):
                    worst = (k, s.err_ulps, s.bound_ulps, s.ratio, name)
        if worst:
            rows.append(worst)
    return rows


def render(result: AuditResult, console: Console | None = None) -> None:
    """Print the report of ``result``."""
    console = console or Console(width=max(Console().width, 150))
    ok = result.verdict == "conformant"
    style = "bold green" if ok else "bold yellow" if result.verdict == "unverified" else "bold red"
    console.print(Text(f"optproof audit {result.target}", style="bold"),
                  f"({result.framework}, {result.dtype}, {result.device}, seed {result.seed}, "
                  f"{result.steps} steps × {len(result.configs)} configurations, "
                  f"{result.elapsed:.1f} s)")
    console.print(result.inference)
    if result.rounding is not None:
        console.print(f"precision model: {result.rounding.name} ({result.rounding.source})")
    first = result.first_divergence
    if first is not None:
        config = next(c for c in result.configs if c.name == first.config)
        console.print(f"first divergence from {result.expected}: step {first.step} of "
                      f"configuration {first.config!r} ({config.purpose}: {config.describe()})")
    best = result.best or "-"
    kind = "" if result.best_kind == "variant" else f" ({result.best_kind})"
    console.print(Text(f"verdict: {result.verdict.upper()}", style=style),
                  f"— expected {result.expected}; best match {best}{kind}")
    for line in result.diagnosis:
        console.print(f"  • {line}")
    if result.defaults is not None:
        console.print(f"its own defaults, measured (defaults run, fitted to "
                      f"{result.expected}): {result.defaults.describe() or '-'}")

    table = Table(title="variants", title_justify="left")
    for col in ("variant", "reproduces", "configs passed", "worst err (ULP)", "worst err/bound",
                "first divergence (config@step: err > bound)"):
        table.add_column(col)
    for name, r in list(result.variants.items()) + [
            (n, r) for n, r in result.probes.items() if n == result.best]:
        mark = "[green]yes[/]" if r.matches else "[red]no[/]"
        passed = f"{len(r.configs) - len(r.failed)}/{len(r.configs)}"
        first = r.first.short() if r.first else "-"
        label = name + (" (expected)" if name == result.expected else "")
        table.add_row(label, mark, passed, _f(r.worst_ulps), _f(r.worst_ratio), first)
    console.print(table)

    if result.conventions:
        claimed = result.hypothesis(result.best)
        title = f"conventions detected ({best})" if claimed and claimed.matches else \
            "conventions: per axis, the explanation that reproduces every run exercising it"
        table = Table(title=title, title_justify="left")
        table.add_column("axis")
        table.add_column("detected")
        table.add_column("evidence (the configuration that separated it), or why not measured")
        for e in result.conventions:
            table.add_row(e.axis, e.shown() if e.measured else Text("not measured", "yellow"),
                          e.evidence)
        console.print(table)

    shown = result.hypothesis(result.best) or result.expected_result
    rows = _per_step(shown, result.steps)
    if rows:
        table = Table(title=f"error per step, {shown.name} (the element with the largest "
                            f"err/bound over the configurations; ULPs of {result.dtype})",
                      title_justify="left")
        for col in ("step", "err (ULP)", "bound (ULP)", "err/bound", "configuration"):
            table.add_column(col, justify="right" if col != "configuration" else "left")
        for k, err, bound, ratio, name in rows:
            style = "red" if ratio > 1 else ""
            table.add_row(str(k), _f(err), _f(bound), Text(_f(ratio), style=style), name)
        console.print(table)

    table = Table(title="configurations", title_justify="left")
    for col in ("configuration", "exposes", "settings", "status"):
        table.add_column(col)
    for obs in result.observations:
        mode = result.expected_result.configs.get(obs.config.name)
        status = ("skipped: " + obs.skipped if obs.skipped else obs.error or
                  f"ran ({mode.mode})" if mode else "ran")
        table.add_row(obs.config.name, obs.config.purpose, obs.config.describe(), status)
    console.print(table)
    if result.experiments:
        table = Table(title="experiments", title_justify="left")
        for col in ("experiment", "configuration", "result"):
            table.add_column(col)
        for e in result.experiments:
            outcome = "measured " if e.measured else \
                "[green]passed[/] " if e.passed else "[red]failed[/] "
            table.add_row(e.name, e.config, outcome + e.detail)
        console.print(table)
    q = result.quantization
    if q is not None and q.oracle:
        table = Table(title=f"quantized-state oracle ({q.oracle_rule}, the {q.measured_on}-element "
                            f"tensor; ULPs of {result.dtype})", title_justify="left")
        for col in ("step", "check", "checked", "failed", "worst err (ULP)", "bound (ULP)",
                    "nearest codes"):
            table.add_column(col, justify="left" if col == "check" else "right")
        for row in q.oracle:
            for key, c in row.checks.items():
                fraction = c.get("nearest_fraction")
                table.add_row(str(row.step), key, str(c["checked"]),
                              Text(str(c["failed"]), style="red" if c["failed"] else ""),
                              _f(c["worst_ulps"]) if "worst_ulps" in c else "-",
                              _f(c["bound_ulps"]) if "bound_ulps" in c else "-",
                              f"{fraction:.4f}" if fraction is not None else "-")
        console.print(table)
        for row in q.oracle:
            for line in row.failures:
                console.print(f"  step {row.step}: {line}")
