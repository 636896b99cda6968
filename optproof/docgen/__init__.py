"""``optproof docs``: generate the documentation from the specs, theorems, audits and plots.

Everything the generator writes is committed, and ``optproof docs --check`` fails with a diff
when a committed file is stale:

| file | generated from |
|---|---|
| ``docs/index.md`` | the rule registry and ``optproof show adamw`` |
| ``docs/rules/<family>.md`` | each family's specs (`optproof.docgen.rules`) |
| ``docs/theorems/*.md`` | ``optproof.derivations.theorems.render_docs()`` |
| ``docs/conventions.md`` | stored audits ``docs/data/conventions.json`` (``--audit``) |
| ``docs/guides/lowbit.md`` | stored audits ``docs/data/lowbit.json`` (``--audit``; `optproof.docgen.lowbit`) |
| ``docs/plots.md``, ``plots/*`` | `optproof.docgen.plots` (PNG + data fingerprint) |
| ``docs/api/*.md`` | mkdocstrings directives for the public modules |
| ``mkdocs.yml`` | the navigation: every page above and the guides |
| ``README.md`` (one block) | the AdamW equations as ``optproof show adamw`` prints them |

Hand-written: ``docs/guides/*.md`` (but ``lowbit.md``) and ``docs/javascripts/mathjax.js``.

Text files are compared byte for byte. Plots are compared by data, not pixels: the check
recomputes each plot's data and compares its fingerprint with the sidecar JSON, and checks
that the committed PNG is the one the sidecar describes (see `optproof.docgen.plots`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["repository_root", "generate", "check", "write", "Generated", "OWNED_DIRS"]

#: folders whose every file is generated (a file there that is not generated is stale)
OWNED_DIRS = ("docs/rules", "docs/api", "docs/plots", "docs/theorems")


def repository_root() -> Path:
    """The checkout optproof is installed from (the folder holding its pyproject.toml)."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or 'name = "optproof"' not in pyproject.read_text():
        raise RuntimeError("optproof docs runs in a checkout of optproof (pip install -e .)")
    return root


@dataclass
class Generated:
    """The generated tree: text files, plot data, and (when drawn) the PNG bytes."""

    text: dict[str, str] = field(default_factory=dict)
    plot_data: dict[str, dict] = field(default_factory=dict)
    png: dict[str, bytes] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _timed(gen: Generated, what: str, fn: Callable):
    start = time.perf_counter()
    result = fn()
    gen.seconds[what] = gen.seconds.get(what, 0.0) + time.perf_counter() - start
    return result


def _stored(root: Path, rel: str):
    path = root / rel
    return json.loads(path.read_text()) if path.is_file() else None


def _readme(root: Path, block: str) -> str:
    from .site import README_BEGIN, README_END

    text = (root / "README.md").read_text()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise RuntimeError(f"README.md lacks the generated-block markers {README_BEGIN!r} … "
                           f"{README_END!r}")
    return text[:start] + block + text[end + len(README_END):]


def generate(root: Path | None = None, *, draw: bool = True,
             conventions_data: dict | None = None, lowbit_data: dict | None = None) -> Generated:
    """Generate every file (PNG bytes only when ``draw``) from the checkout at ``root``;
    the conventions page and the low-bit guide from ``conventions_data`` and ``lowbit_data``
    (default: the stored audits)."""
    from . import conventions, lowbit, plots, rules, site

    root = root or repository_root()
    gen = Generated()
    text = gen.text
    text.update(_timed(gen, "rules", rules.family_pages))
    text["docs/rules/index.md"] = _timed(gen, "rules", rules.rules_index)
    for key in list(text):
        if key.startswith("rules/"):
            text["docs/" + key] = text.pop(key)

    def theorem_pages():
        from optproof.derivations.theorems import render_docs
        return {f"docs/theorems/{name}": page for name, page in render_docs().items()}

    text.update(_timed(gen, "theorems", theorem_pages))

    def link(name: str, prefix: str = "rules/") -> str:
        try:
            return rules.rule_link(name, prefix)
        except StopIteration:
            return f"`{name}`"

    data = conventions_data if conventions_data is not None else _stored(root, conventions.DATA_PATH)
    text["docs/conventions.md"] = conventions.conventions_page(data, link)
    text[lowbit.PAGE_PATH] = lowbit.guide_page(
        lowbit_data if lowbit_data is not None else _stored(root, lowbit.DATA_PATH),
        lambda name: link(name, "../rules/"))
    text["docs/index.md"] = _timed(gen, "pages", site.index_page)
    text["docs/plots.md"] = site.plots_page()
    text.update({f"docs/{k}": v for k, v in site.api_pages().items()})
    text["mkdocs.yml"] = site.mkdocs_yml(root / "docs")
    text["README.md"] = _readme(root, _timed(gen, "pages", site.readme_block))
    for plot in plots.PLOTS:
        data = _timed(gen, f"plot data: {plot.name}", plot.data)
        gen.plot_data[plot.name] = data
        if draw:
            gen.png[plot.name] = _timed(gen, f"plot drawing: {plot.name}",
                                        lambda: plots.render_png(plot, data))
    return gen


def _sidecar(name: str, data: dict, png: bytes) -> str:
    import matplotlib

    from .plots import fingerprint

    return json.dumps({"plot": name, "data_sha256": fingerprint(data),
                       "png_sha256": hashlib.sha256(png).hexdigest(),
                       "drawn_with": f"matplotlib {matplotlib.__version__}"},
                      indent=1, sort_keys=True) + "\n"


def _stale_owned(root: Path, keep: set[str]) -> list[str]:
    out = []
    for folder in OWNED_DIRS:
        base = root / folder
        if base.is_dir():
            out += [p.relative_to(root).as_posix() for p in sorted(base.rglob("*"))
                    if p.is_file() and p.relative_to(root).as_posix() not in keep]
    return out


def _plot_files(name: str) -> tuple[str, str]:
    return f"docs/plots/{name}.png", f"docs/plots/{name}.json"


def write(out: Path | None = None, root: Path | None = None, *, audit: bool = False,
          conventions: dict | None = None) -> Generated:
    """Generate everything and write it under ``out`` (default: the checkout itself).

    With ``audit``, first rerun the framework audits and store them
    (`optproof.docgen.conventions.collect`); ``conventions`` is such a result already
    collected. Stored audits of an earlier run that this one did not produce are removed.
    """
    from . import lowbit
    from .conventions import AUDITS_DIR, collect, data_files, dump

    root = root or repository_root()
    out = out or root
    data = conventions if conventions is not None else collect() if audit else None
    low = lowbit.collect() if audit else None
    stored_low = low if low is not None else _stored(root, lowbit.DATA_PATH)
    if data is not None and stored_low is not None:
        # the low-bit libraries' matrix rows come from the guide's audits (`lowbit.collect`)
        data = lowbit.merge_into_matrix(data, stored_low)
    gen = generate(root, conventions_data=None if data is None else
                   {k: v for k, v in data.items() if k != "audits"}, lowbit_data=low)
    files: dict[str, bytes] = {k: v.encode() for k, v in gen.text.items()}
    if low is not None:
        files[lowbit.DATA_PATH] = dump(low).encode()
    if data is not None:
        files.update({k: v.encode() for k, v in data_files(data).items()})
        stored = out / AUDITS_DIR
        for old in sorted(stored.rglob("*.json")) if stored.is_dir() else ():
            if old.relative_to(out).as_posix() not in files:
                old.unlink()
    for name, data in gen.plot_data.items():
        png_path, json_path = _plot_files(name)
        files[png_path] = gen.png[name]
        files[json_path] = _sidecar(name, data, gen.png[name]).encode()
    for rel in _stale_owned(out, set(files)):
        (out / rel).unlink()
    for rel, content in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != content:
            path.write_bytes(content)
    return gen


def _diff(rel: str, old: str, new: str, limit: int = 60) -> list[str]:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"a/{rel}",
                                      f"b/{rel}", n=1, lineterm=""))
    if len(lines) > limit:
        lines = lines[:limit] + [f"… ({len(lines) - limit} more diff lines)"]
    return lines


def check(root: Path | None = None) -> tuple[list[str], Generated]:
    """Compare the committed generated files with a fresh generation (plots by data).

    Returns the problems (stale or missing files with their diffs, plot fingerprints that
    differ) — empty when everything is up to date — and the generation.
    """
    from .plots import fingerprint

    root = root or repository_root()
    gen = generate(root, draw=False)
    problems: list[str] = []
    for rel, new in gen.text.items():
        path = root / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
            continue
        old = path.read_text()
        if old != new:
            problems.append(f"stale: {rel}")
            problems += _diff(rel, old, new)
    keep = set(gen.text)
    for name, data in gen.plot_data.items():
        png_path, json_path = _plot_files(name)
        keep |= {png_path, json_path}
        sidecar, png = root / json_path, root / png_path
        if not sidecar.is_file() or not png.is_file():
            problems.append(f"missing: {png_path} or {json_path}")
            continue
        recorded = json.loads(sidecar.read_text())
        if recorded.get("data_sha256") != fingerprint(data):
            problems.append(f"stale: {png_path} (its data changed: fingerprint "
                            f"{fingerprint(data)[:16]} now, {str(recorded.get('data_sha256'))[:16]} "
                            "when drawn)")
        if recorded.get("png_sha256") != hashlib.sha256(png.read_bytes()).hexdigest():
            problems.append(f"stale: {png_path} (the image is not the one {json_path} records)")
    problems += [f"stale: {rel} (not generated any more)" for rel in _stale_owned(root, keep)]
    return problems, gen
