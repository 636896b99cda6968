"""The guide "Is my 8-bit optimizer AdamW?", generated from audits of the low-bit and offload
optimizers (bitsandbytes, torchao, DeepSpeed's CPU Adam, heavyball).

As with the conventions matrix (`optproof.docgen.conventions`), the audits are slow and
need the libraries (and DeepSpeed's compiled op), so ``optproof docs`` renders the page from
the committed results ``docs/data/lowbit.json`` only; ``optproof docs --audit`` (or
``python -m optproof.docgen.lowbit``) reruns them with `collect`. Each row is an
``optproof.audit.audit`` result (the conventions matrix's row) plus the quantized-state
experiment and the library's own defaults, read from its signature.

`TARGETS` is the one list of these libraries' targets; the conventions matrix takes the
ones audited under their defaults (`matrix_rows`), and `main` stores their rows
in ``docs/data/conventions.json`` too, from the same audits.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TARGETS", "LowbitTarget", "collect", "guide_page", "matrix_rows", "DATA_PATH",
           "PAGE_PATH"]

DATA_PATH = "docs/data/lowbit.json"
PAGE_PATH = "docs/guides/lowbit.md"


@dataclass(frozen=True)
class LowbitTarget:
    """One audit: the framework, the import path, the distribution whose version is recorded,
    keywords added to every construction, and the audited dtype."""

    framework: str
    path: str
    distribution: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    dtype: str = "float32"

    @property
    def label(self) -> str:
        settings = [f"{k}={v!r}" for k, v in self.extra.items()]
        if self.dtype != "float32":
            settings.append(self.dtype)
        return f"{self.path}({', '.join(settings)})" if settings else self.path


def _targets(framework: str, distribution: str, module: str, names: str) -> list[LowbitTarget]:
    return [LowbitTarget(framework, f"{module}.{n}", distribution) for n in names.split()]


TARGETS: tuple[LowbitTarget, ...] = (
    *_targets("bitsandbytes", "bitsandbytes", "bitsandbytes.optim",
              "Adam AdamW Adam32bit AdamW32bit Adam8bit AdamW8bit PagedAdamW PagedAdamW8bit"),
    LowbitTarget("bitsandbytes", "bitsandbytes.optim.Adam", "bitsandbytes", {"optim_bits": 8}),
    *_targets("torchao", "torchao", "torchao.optim",
              "Adam8bit AdamW8bit Adam4bit AdamW4bit AdamFp8 AdamWFp8 _AdamW "
              "CPUOffloadOptimizer"),
    LowbitTarget("torchao", "torchao.optim._AdamW", "torchao", {"bf16_stochastic_round": True},
                 "bfloat16"),
    *_targets("DeepSpeed", "deepspeed", "deepspeed.ops.adam", "DeepSpeedCPUAdam"),
    LowbitTarget("DeepSpeed", "deepspeed.ops.adam.DeepSpeedCPUAdam", "deepspeed",
                 {"adamw_mode": False}),
    *_targets("heavyball", "heavyball", "heavyball", "AdamW NAdam"),
)


def matrix_rows() -> tuple[tuple[str, str, str], ...]:
    """(framework, path, distribution) of the targets audited under their own defaults: the
    conventions matrix's rows for these libraries."""
    return tuple((t.framework, t.path, t.distribution) for t in TARGETS
                 if not t.extra and t.dtype == "float32")


DEFAULT_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "adamw_mode", "optim_bits",
                "min_8bit_size", "block_size", "bf16_stochastic_round", "bias_correction",
                "decoupled_weight_decay")


def library_defaults(obj: Any) -> dict[str, Any]:
    """The constructor defaults the library declares (its signature) for the keywords that
    decide a convention or its size threshold."""
    try:
        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return {}
    out = {}
    for key in DEFAULT_KEYS:
        p = parameters.get(key)
        if p is not None and p.default is not inspect.Parameter.empty:
            value = p.default
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def collect(audit: Callable[..., Any] | None = None,
            targets: tuple[LowbitTarget, ...] = TARGETS, **settings: Any) -> dict[str, Any]:
    """Audit every target that imports here: the data of ``docs/data/lowbit.json``."""
    import importlib

    from .conventions import _row, _version

    if audit is None:
        from optproof.audit import audit
    versions: dict[str, str | None] = {}
    rows = []
    for target in targets:
        versions.setdefault(target.framework, _version(target.distribution))
        base = {"framework": target.framework, "target": target.label}
        module, _, name = target.path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except Exception as error:  # noqa: BLE001 - not installed, or fails to import
            rows.append({**base, "verdict": "not importable",
                         "diagnosis": [f"{type(error).__name__}: {error}"]})
            continue
        defaults = library_defaults(cls)
        try:
            result = audit(target.path, extra=dict(target.extra), dtype=target.dtype, **settings)
        except Exception as error:  # noqa: BLE001 (reported, as the audit itself would)
            rows.append({**base, "verdict": "not audited", "defaults": defaults,
                         "diagnosis": [f"{type(error).__name__}: {error}"]})
            continue
        row = {**_row(target.path, result), **base, "dtype": target.dtype, "defaults": defaults,
               "quantization": result.quantization.to_dict() if result.quantization else None,
               "experiments": [f"{e.name}: {e.detail}" for e in result.experiments]}
        rows.append(row)
    return {"optproof": _version("optproof"), "versions": versions,
            "settings": {k: settings[k] for k in sorted(settings)}, "rows": rows}


def _decay(row: Mapping[str, Any]) -> str:
    decay = row.get("conventions", {}).get("weight decay") or "not measured"
    return f"the closest's: {decay}" if (row.get("worst_ratio") or 0) > 1 else decay


def _quantized(row: Mapping[str, Any]) -> str:
    q = row.get("quantization")
    if not q:
        return "never (float state)"
    if q.get("error"):
        return q["error"]
    coded = {n: e for n, e in q["sizes"].items() if e}
    if not coded:
        return "not at " + "/".join(q["sizes"]) + " elements"
    formats = sorted({f"{k}: {v.split(',')[0]}" for e in coded.values() for k, v in e.items()})
    return f"at {'/'.join(coded)} of {'/'.join(q['sizes'])} elements ({'; '.join(formats)})"


def _ulps(row: Mapping[str, Any]) -> str:
    q = row.get("quantization") or {}
    if not q.get("median_ulps"):
        return "—"
    return ", ".join(f"{m:.3g}" for m in q["median_ulps"])


def guide_page(data: Mapping[str, Any] | None, rule_link: Callable[[str], str]) -> str:
    """``docs/guides/lowbit.md`` from the stored audit data (``None``: not audited yet)."""
    from .conventions import _cell, _link, not_audited

    out = [f"<!-- generated by `optproof docs` from {DATA_PATH}; `optproof docs --audit` or "
           "`python -m optproof.docgen.lowbit` reruns the audits -->", "",
           "# Is my 8-bit optimizer AdamW?", "",
           "The optimizers large models are fine-tuned with — bitsandbytes' 8-bit Adam, "
           "torchao's 8-bit, 4-bit and FP8 AdamW, DeepSpeed's CPU Adam (ZeRO-Offload), "
           "heavyball — audited by `optproof audit` on CPU: each is driven through the "
           "configurations that separate the conventions (decay coupling, its scaling and "
           "order, ε placement, bias correction), compared step by step with every variant of "
           "Adam, and stepped on tensors around its quantization threshold.", "",
           "How to read it:", "",
           "* **follows** is the variant (or named fault, a *probe*) that reproduces every step "
           "within the derived bound, on the audit's small tensors, whose state every library "
           "keeps in floating point; where none does, the closest and its worst error over "
           "its bound;",
           "* **verdict**: on larger tensors, whose state is quantized, every step is checked "
           "by the quantized-state oracle (`optproof.reference.quantized`): θ against the "
           "exact step from the dequantized state, each new scale and code against the exact "
           "new state under the library's own map, block size and rounding, within derived "
           "bounds. *conformant*: the float-state steps and every check pass; *deviation*: "
           "a configuration or a check fails (the audit names which); *unverified*: the "
           "oracle could not run, with the reason;",
           "* **θ error, quantized** is the median error of θ per step (steps 1, 2, 3) against "
           "the exact rule run with exact state, in ULPs of float32, on the largest quantized "
           "tensor: step 1 reads zero state (rounding only), later steps read dequantized "
           "state;",
           "* **default λ** is the library's own default `weight_decay`: an \"AdamW\" whose "
           "default λ is 0 does no decay unless told to.", ""]
    if not data:
        out += ["!!! warning \"Not audited yet\"", "",
                "    No audit results are stored yet: run `optproof docs --audit`.", ""]
        return "\n".join(out) + "\n"
    versions = data.get("versions", {})
    out += ["Versions audited: " + ", ".join(f"{fw} {v}" if v else f"{fw} (not installed)"
                                             for fw, v in versions.items())
            + (f"; optproof {data['optproof']}" if data.get("optproof") else "") + ".", ""]
    head = ["target", "claims", "follows", "verdict", "weight decay", "default λ",
            "state quantized", "θ error, quantized (median ULP per step)"]
    audited = [r for r in data["rows"] if r.get("group")]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in audited:
        follows = r.get("follows")
        follows = _link(rule_link, follows) if follows and r.get("follows_kind") == "variant" \
            else f"`{follows}` ({r.get('follows_kind')})" if follows else "—"
        if (r.get("worst_ratio") or 0) > 1:  # the closest hypothesis, not one that reproduces
            follows = f"none; closest {follows} (error/bound {r['worst_ratio']:.3g})"
        cells = [f"`{r['target']}`", _link(rule_link, r["expected"]), follows,
                 _cell(r.get("verdict")), _cell(_decay(r)),
                 _cell((r.get("defaults") or {}).get("weight_decay")), _cell(_quantized(r)),
                 _cell(_ulps(r))]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    notes = [(r["target"], d) for r in audited
             for d in ([f"judged under its precision model: {r['precision_model']}"]
                       if r.get("precision_model") else []) + r.get("diagnosis", [])]
    if notes:
        out += ["## What each audit found", ""] + [f"- `{t}`: {_cell(d)}" for t, d in notes] + [""]
    out += ["## Library defaults", "", "As each constructor declares them.", "",
            "| target | defaults |", "|---|---|"]
    out += [f"| `{r['target']}` | " + _cell(", ".join(f"{k}={v}" for k, v in
                                                       (r.get("defaults") or {}).items())) + " |"
            for r in data["rows"] if r.get("defaults")]
    out.append("")
    out += not_audited(data["rows"])
    return "\n".join(out).rstrip("\n") + "\n"


def merge_into_matrix(matrix: Mapping[str, Any] | None, data: Mapping[str, Any]) -> dict:
    """The conventions data with these libraries' default-settings rows (and versions) taken
    from ``data``, replacing any earlier ones; the other frameworks' rows kept as they are."""
    paths = {path for _, path, _ in matrix_rows()}
    rows = [r for r in data["rows"] if r["target"] in paths]
    out = dict(matrix or {"optproof": data.get("optproof"), "settings": {}, "rows": []})
    out["versions"] = {**(out.get("versions") or {}), **data.get("versions", {})}
    out["rows"] = [r for r in out.get("rows", []) if r["target"] not in paths] + [
        {k: v for k, v in r.items() if k not in ("defaults", "quantization", "experiments",
                                                   "dtype")} for r in rows]
    return out


def main() -> None:
    """Rerun the audits; rewrite ``docs/data/lowbit.json`` and these libraries' rows of
    ``docs/data/conventions.json`` (then run ``optproof docs``)."""
    import json

    from . import repository_root
    from .conventions import DATA_PATH as MATRIX_PATH, dump

    root = repository_root()
    data = collect()
    (root / DATA_PATH).write_text(dump(data))
    matrix_path = root / MATRIX_PATH
    matrix = json.loads(matrix_path.read_text()) if matrix_path.is_file() else None
    matrix_path.write_text(dump(merge_into_matrix(matrix, data)))
    print(f"wrote {root / DATA_PATH} and {matrix_path}")


if __name__ == "__main__":
    main()
