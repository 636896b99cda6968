"""Every fenced code block of README.md and docs/**/*.md runs, so that a page cannot drift
from the code.

* ```` ```python ````: a block with ``>>>`` prompts is a doctest (its shown output is checked);
  any other block is executed in a fresh namespace, and every ``test_*`` function it defines
  is then called, as pytest would.
* ```` ```console ````: each ``$ optproof ...`` line is a command, run in a subprocess from the
  repository root (``python -m optproof``); the lines up to the next ``$`` are its output,
  compared after normalising what legitimately varies (trailing spaces, a duration
  ``(12.3 s)``); every command must exit 0.
* ```` ```bash ````: each line is such a command (without the ``$``).

A block that cannot run here (it installs packages, needs CUDA or an optional library, runs
minutes) is marked in the Markdown, visibly, on the line before it:
``<!-- not-run: the reason -->``. Such blocks are reported as skipped with their reason, and
`test_not_run_blocks_are_listed` counts them; a block in another language, or a command other
than ``optproof``, fails until it is marked.
"""

from __future__ import annotations

import doctest
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(?P<reason>.*?)-->\s*$")
DURATION = re.compile(r"\(\d+(?:\.\d+)? s\)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    not_run: str | None  # the marker's reason, None when the block runs

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with the not-run marker before each."""
    lines = page.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = NOT_RUN.match(prev)
        indent = len(match.group("indent"))
        text = "\n".join(line[indent:] for line in lines[i + 1:end])
        out.append(Block(page, i + 1, match.group("lang"), text,
                         marker.group("reason").strip() if marker else None))
        i = end + 1
    return out


BLOCKS = [block for page in PAGES for block in blocks_of(page)]
RUN = [b for b in BLOCKS if b.not_run is None]
NOT_RUN_BLOCKS = [b for b in BLOCKS if b.not_run is not None]


# --------------------------------------------------------------------------- python


def _run_python(block: Block) -> None:
    namespace = {"__name__": f"docs_block_{block.line}"}
    if any(line.lstrip().startswith(">>>") for line in block.text.splitlines()):
        test = doctest.DocTestParser().get_doctest(block.text, namespace, block.id,
                                                   str(block.page), block.line)
        report: list[str] = []
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test, out=report.append)
        assert runner.failures == 0, "".join(report)
        return
    exec(compile(block.text, block.id, "exec"), namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            value()


# --------------------------------------------------------------------------- commands


def _commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) in the order the block shows them."""
    if block.lang == "bash":
        return [(line, []) for line in block.text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    out: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
        elif line.strip():
            raise AssertionError(f"{block.id}: output before the first `$ ` command: {line!r}")
    return out


def _normalise(text: str) -> str:
    lines = [DURATION.sub("(… s)", line.rstrip()) for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


_RESULTS: dict[str, subprocess.CompletedProcess] = {}


def _run_command(command: str) -> subprocess.CompletedProcess:
    """Run one ``optproof ...`` command line once per session (pages repeat some)."""
    if command not in _RESULTS:
        argv = shlex.split(command, comments=True)
        assert argv and argv[0] == "optproof", (
            f"`{command}` is not an optproof command; mark its block "
            "<!-- not-run: reason --> if it cannot run in the test suite")
        _RESULTS[command] = subprocess.run([sys.executable, "-m", "optproof", *argv[1:]],
                                           cwd=ROOT, capture_output=True, text=True,
                                           timeout=600)
    return _RESULTS[command]


def _run_commands(block: Block) -> None:
    commands = _commands(block)
    assert commands, f"{block.id}: a {block.lang} block with no command"
    for command, shown in commands:
        result = _run_command(command)
        assert result.returncode == 0, (
            f"{block.id}: `{command}` exited {result.returncode}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        if any(line.strip() for line in shown):
            assert _normalise(result.stdout) == _normalise("\n".join(shown)), (
                f"{block.id}: `{command}` printed\n{result.stdout}\n{result.stderr}")


RUNNERS = {"python": _run_python, "console": _run_commands, "bash": _run_commands}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block(block: Block):
    if block.not_run is not None:
        pytest.skip(f"not-run: {block.not_run}")
    runner = RUNNERS.get(block.lang)
    assert runner is not None, (
        f"{block.id}: a ```{block.lang} block cannot run; use python, console or bash, or "
        "mark it <!-- not-run: reason -->")
    runner(block)


def test_not_run_blocks_are_listed(capsys):
    """Every block that does not run says why, and the count is printed with the list."""
    for block in NOT_RUN_BLOCKS:
        assert block.not_run, f"{block.id}: a not-run marker without a reason"
    markers = [(page, n + 1) for page in PAGES
               for n, line in enumerate(page.read_text().splitlines()) if NOT_RUN.match(line)]
    marked = {(b.page, b.line) for b in NOT_RUN_BLOCKS}
    for page, line in markers:  # a marker must sit right before the block it exempts
        assert any((page, k) in marked for k in range(line + 1, line + 3)), (
            f"{page.relative_to(ROOT)}:{line}: a not-run marker with no code block after it")
    with capsys.disabled():
        print(f"\n{len(RUN)} documentation code blocks run, {len(NOT_RUN_BLOCKS)} not run:")
        for block in NOT_RUN_BLOCKS:
            print(f"  {block.id} ({block.lang}): {block.not_run}")


def test_blocks_are_found():
    """The extractor sees the blocks the pages hold (a fence it missed would go unrun)."""
    fences = sum(1 for page in PAGES for line in page.read_text().splitlines()
                 if FENCE.match(line) and line.strip() != "```")
    assert fences == len(BLOCKS) > 0


TEST_NAME = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def test_named_tests_exist():
    """Every ``tests/file.py::test_name`` a page cites (the differences from torch.optim cite
    the test that shows each) names a test function that exists."""
    import ast

    cited = [(page, m.group(1), m.group(2)) for page in PAGES
             for m in TEST_NAME.finditer(page.read_text())]
    assert cited
    for page, path, name in cited:
        source = ROOT / path
        assert source.is_file(), f"{page.relative_to(ROOT)} cites {path}, which does not exist"
        names = {node.name for node in ast.walk(ast.parse(source.read_text()))
                 if isinstance(node, ast.FunctionDef)}
        assert name in names, f"{page.relative_to(ROOT)} cites {path}::{name}, not defined there"
