"""The generated documentation is up to date, and the site builds with warnings as errors.

``optproof docs --check`` regenerates every page in memory and each plot's data (not its
pixels), and fails with a diff when a committed file is stale; the site build runs
``mkdocs build --strict`` (skipped when the docs extra is not installed, except in CI, where
.ci/run installs it and a missing tool is a failure).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from optproof.cli import main
from optproof.derivations import rules
from optproof.docgen.site import API, hidden_exports

ROOT = Path(__file__).resolve().parents[1]
DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mathjax")


def test_generated_docs_are_up_to_date(capsys):
    status = main(["docs", "--check"])
    out, err = capsys.readouterr()
    assert status == 0, f"{out}\n{err}"


def test_every_rule_has_its_page():
    for spec in rules():
        page = ROOT / "docs" / "rules" / f"{spec.family}.md"
        assert page.is_file(), spec.name
        assert f"## `{spec.name}`" in page.read_text(), spec.name
    assert (ROOT / "docs" / "rules" / "adamw.md").is_file()


def test_plots_exist():
    from optproof.docgen.plots import PLOTS

    for plot in PLOTS:
        png = ROOT / "docs" / "plots" / f"{plot.name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot.name


def test_check_refuses_out(capsys):
    assert main(["docs", "--check", "--out", "elsewhere"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def _missing_tools() -> list[str]:
    missing = []
    for module in DOCS_TOOLS:
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(module)
        except ModuleNotFoundError:
            missing.append(module)
    return missing


def test_site_builds_strictly(tmp_path):
    missing = _missing_tools()
    if missing:
        message = f"docs extra not installed ({', '.join(missing)}): pip install -e '.[docs]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    mkdocs = [sys.executable, "-m", "mkdocs"]
    site = tmp_path / "site"
    result = subprocess.run([*mkdocs, "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    page = (site / "rules" / "adamw.html").read_text()
    assert 'class="arithmatex"' in page and "\\begin{aligned}" in page
    assert (site / "assets" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000
    assert "tex-svg.js" in page and "cdn" not in page.lower()
    _check_api_pages(site)
    shutil.rmtree(site)


def _check_api_pages(site: Path) -> None:
    """Every name a documented module exports has its own section on its API page (the
    static loader misses lazy exports and a function named like its module, such as
    `optproof.audit.audit` and `optproof.reference.run`), and no Sphinx role shows as text."""
    audit = (site / "api" / "audit.html").read_text()
    assert 'id="optproof.audit.auditor.audit"' in audit
    assert 'id="optproof.audit.auditor.AuditResult"' in audit
    assert 'id="optproof.audit.auditor.AuditResult.verdict"' in audit  # with its fields
    for path, (_, modules) in API.items():
        html = (site / path.replace(".md", ".html")).read_text()
        ids = set(re.findall(r'id="(optproof\.[\w.]+)"', html))
        assert not SPHINX_ROLE.search(html), f"{path}: {SPHINX_ROLE.search(html).group()}"
        for module in modules:
            hidden = hidden_exports(module)
            for name in importlib.import_module(module).__all__:
                wanted = {f"{module}.{name}"} | {t for t in hidden if t.endswith(f".{name}")}
                assert wanted & ids, f"{path}: no section for {module}.{name}"


SPHINX_ROLE = re.compile(r":(?:py:)?(?:class|mod|func|meth|data|attr|exc|obj|const|math):`")
#: the folders of the package (pyproject's package-dir), the benchmarks and the tests
SOURCE_DIRS = ("optproof", "derivations", "reference", "torch_impl", "audit", "bench", "tests")


def test_docstrings_are_markdown():
    """Docstrings are Markdown (mkdocstrings, Google style), with none of reStructuredText's
    markup, which the site would show as literal text: no Sphinx role (:class:, :func:,
    :mod: and the like, before a name in backticks), no literal block announced by a
    trailing double colon, no simple table between borders of equals signs (outside a
    fenced block). Cross-references are plain backticks or mkdocstrings'
    [name][optproof.module.name]."""
    found = []
    for folder in SOURCE_DIRS:
        for source in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(source.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                     ast.AsyncFunctionDef)):
                    where = f"{source.relative_to(ROOT)}:{getattr(node, 'lineno', 1)}"
                    found += [f"{where}: {m}" for m in _rst_markup(ast.get_docstring(node) or "")]
    assert not found, "\n".join(found)


RST_BORDER = re.compile(r"^\s*=+(?:[ \t]+=+)+\s*$")
RST_LITERAL = re.compile(r"[^:\s]::\s*$")


def _rst_markup(doc: str) -> list[str]:
    out = [m.group() for m in SPHINX_ROLE.finditer(doc)]
    fenced = False
    for line in doc.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (RST_BORDER.match(line) or RST_LITERAL.search(line)):
            out.append(line.strip())
    return out
