"""``optproof audit --plot FILE``: error per step per variant (matplotlib, imported lazily).

One panel per configuration; one line per hypothesis (the registered variants and the
best-matching probe): at each step the error of its worst element (the largest err/bound)
in ULPs of the audited dtype on a log axis, and the derived bound of the expected variant
at its worst element dashed. A variant's colour is the same in every panel. Install with
``pip install 'optproof[plot]'``.
"""

from __future__ import annotations

import math

from .auditor import AuditResult

__all__ = ["plot"]


def plot(result: AuditResult, path: str) -> None:
    """Write the figure to ``path`` (any format matplotlib knows by its extension)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise RuntimeError("--plot needs matplotlib: pip install 'optproof[plot]'") from error
    configs = [o.config.name for o in result.observations]
    cols = min(3, len(configs))
    rows = math.ceil(len(configs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    shown = dict(result.variants)
    if result.best in result.probes:
        shown[result.best] = result.probes[result.best]
    colours = {v: f"C{i % 10}" for i, v in enumerate(shown)}
    for ax, name in zip(axes.flat, configs):
        for variant, r in shown.items():
            c = r.configs.get(name)
            if not c or not c.steps:
                continue
            ys = [max(s.err_ulps, 1e-3) for s in c.steps]
            ax.plot([s.step for s in c.steps], ys, marker="o", label=variant,
                    color=colours[variant], linewidth=2.5 if variant == result.best else 1.2)
        c = result.expected_result.configs.get(name)
        if c and c.steps:
            ax.plot([s.step for s in c.steps], [max(s.bound_ulps, 1e-3) for s in c.steps],
                    "k--", linewidth=1, label=f"bound ({result.expected})")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(f"error (ULP of {result.dtype})")
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in list(axes.flat)[len(configs):]:
        ax.axis("off")
    legend = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="lower center",
               ncol=min(4, len(legend)), fontsize=8)
    fig.suptitle(f"optproof audit {result.target} ({result.dtype}): {result.verdict}, "
                 f"best match {result.best}")
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
