"""The command line, fuzzed: hypothesis-generated argument lists for every subcommand.

Subcommands are found by introspecting ``optproof.cli.build_parser()``, so the ones added
later are covered without touching this file. The contract (the CLI's docstring): a usage
error exits with status 2 and exactly one line ``optproof: error: …`` on standard error,
never a traceback; a valid line exits 0 or 1 (``--help``/``--version`` exit 0 and print the usage/the version).

Two layers:

* **parsing**, every subcommand: the command's ``run`` is replaced by a stub, so argument
  lists are parsed (options, choices, ``type=`` conversions, unknown and ambiguous options,
  odd text) but no command runs — a generated line such as ``docs`` would otherwise
  regenerate the checkout's documentation;
* **execution**, the subcommands in ``EXECUTE`` (read-only and quick): the real command runs,
  so errors found at run time (an unknown rule or theorem) are covered too; a line still
  running after ``TIME_LIMIT_S`` is a valid long job (``derive --steps 9``) and is stopped.

And: an unknown rule or theorem name suggests the closest names.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import signal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optproof import cli
from optproof.derivations import rules

#: subcommands that are read-only and quick to run: executed for real; the option strings
#: listed are left out of the generated lines (they run long jobs: every proof)
EXECUTE = {"show": (), "derive": ("--check",), "vectors": (), "audit": ("--plot",)}
TIME_LIMIT_S = 3


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


SUBCOMMANDS = _subcommands(cli.build_parser())


def _rule_names() -> list[str]:
    return [spec.name for spec in rules()]


def _theorem_names() -> list[str]:
    try:
        from optproof.derivations.theorems import theorems
    except ImportError:
        return []
    return [th.name for th in theorems()]


NAMES = _rule_names() + _theorem_names()


def tokens(sub: argparse.ArgumentParser, banned: tuple[str, ...] = ()) -> st.SearchStrategy:
    options = sorted(s for a in sub._actions for s in a.option_strings if s not in banned)
    choices = sorted({str(c) for a in sub._actions if a.choices for c in a.choices})
    odd = ["-", "--", "--bogus", "-x", "-1", "0", "1", "2", "=", "", " ", "--format=",
           "--fo", "-h", "a\nb", "ütf-8 ✓", "--list=1", "../x", "1e999", "nan"]
    pools = [st.sampled_from(options or ["--help"]), st.sampled_from(NAMES + odd),
             st.integers(-2, 4).map(str), st.text(max_size=10)]
    if choices:
        pools.append(st.sampled_from(choices))
    if options:  # --opt=value
        pools.append(st.builds(lambda o, v: f"{o}={v}", st.sampled_from(options),
                               st.sampled_from(choices + NAMES[:3] + ["x", "-1"])))
    return st.one_of(*pools)


class _TooLong(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: int):
    def stop(signum, frame):
        raise _TooLong

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def invoke(argv: list[str]) -> tuple[int | None, str, str]:
    """``(exit status, stdout, stderr)`` of ``optproof *argv``; status None when stopped
    after ``TIME_LIMIT_S``. Any exception other than SystemExit propagates (= a traceback)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            with _time_limit(TIME_LIMIT_S):
                status = cli.main(argv)
        except SystemExit as done:  # --help, --version
            status = done.code if isinstance(done.code, int) else (0 if done.code is None
                                                                   else 1)
        except _TooLong:
            status = None
    return status, out.getvalue(), err.getvalue()


def check_contract(argv: list[str], status, stdout: str, stderr: str) -> None:
    assert "Traceback" not in stderr, (argv, stderr)
    if status is None:
        return
    assert status in (0, 1, 2), (argv, status, stderr)
    if status == 2:
        assert stderr.startswith("optproof: error: "), (argv, stderr)
        assert stderr.count("\n") == 1 and stderr.endswith("\n"), (argv, stderr)


def _stub(monkeypatch, keep: tuple[str, ...] = ()) -> None:
    """Replace ``cli.build_parser`` by one whose subcommands parse but do not run, except
    those in ``keep``."""
    real = cli.build_parser

    def build():
        parser = real()
        for name, sub in _subcommands(parser).items():
            if name not in keep:
                sub.set_defaults(run=lambda args: 0)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)


@pytest.fixture
def stub_runs(monkeypatch):
    """``cli.build_parser`` whose subcommands parse but do not run."""
    _stub(monkeypatch)


@pytest.fixture
def stub_unexecuted(monkeypatch):
    """``cli.build_parser`` whose subcommands outside ``EXECUTE`` parse but do not run."""
    _stub(monkeypatch, keep=tuple(EXECUTE))


#: a CLI line is cheap: more examples than the profile's default (ci: 24)
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow], deadline=None,
                max_examples=max(settings.default.max_examples, 150))


def test_subcommands_are_found():
    assert {"show", "derive"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_parsing_fuzz(command, stub_runs, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    sub = SUBCOMMANDS[command]

    @FUZZ
    @given(st.lists(tokens(sub), max_size=6))
    @example(["--bogus", "a\nb"])  # unrecognized arguments are echoed: keep them on one line
    @example(["x", "y\r\nz"])
    def fuzz(rest):
        argv = [command, *rest]
        check_contract(argv, *invoke(argv))

    fuzz()


@given(st.lists(st.one_of(st.sampled_from(sorted(SUBCOMMANDS) + ["--version", "-h", "x"]),
                          st.text(max_size=8)), max_size=3))
@example(["docs", "-h"])  # help exits 0 and prints the usage: a valid line, not an error
@example(["-h"])
@FUZZ
def test_top_level_fuzz(stub_unexecuted, argv):
    # a subcommand in EXECUTE runs for real (short and read-only); the others only parse
    status, stdout, stderr = invoke(argv)
    check_contract(argv, status, stdout, stderr)
    if status == 0 and argv and argv[0] in ("-h", "--help", "--version"):
        expected = "optproof " if argv[0] == "--version" else "usage: optproof"
        assert stdout.startswith(expected), (argv, stdout)
    elif status == 0 and {"-h", "--help"} & set(argv):  # help of a subcommand, or a version
        assert stdout.startswith(("usage: optproof", "optproof ")), (argv, stdout)


@pytest.mark.parametrize("command", sorted(EXECUTE))
def test_execution_fuzz(command, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    if command not in SUBCOMMANDS:
        pytest.skip(f"no subcommand {command!r} (EXECUTE is out of date)")
    sub = SUBCOMMANDS[command]

    @FUZZ
    @given(st.lists(tokens(sub, banned=EXECUTE[command]), max_size=4))
    def fuzz(rest):
        if any(t.split("=")[0] in EXECUTE[command] for t in rest):
            return
        argv = [command, *rest]
        check_contract(argv, *invoke(argv))

    fuzz()


def _near_misses(name: str) -> list[str]:
    return [name[:-1], name[1:] if len(name) > 4 else name + "x", name + "z"]


def _name_commands() -> list[tuple[str, list[str]]]:
    """(subcommand, its valid names) for each executed subcommand whose positional takes a
    rule or theorem name."""
    found = []
    for command in EXECUTE:
        sub = SUBCOMMANDS.get(command)
        if sub is None:
            continue
        for action in sub._actions:
            if action.option_strings:
                continue
            words = f"{action.dest} {action.metavar or ''} {action.help or ''}".lower()
            if "theorem" in words:
                found.append((command, _theorem_names()))
            elif "rule" in words:
                found.append((command, _rule_names()))
    return found


@pytest.mark.parametrize("command,names", _name_commands(), ids=lambda x: x
                         if isinstance(x, str) else "")
def test_unknown_names_suggest_the_closest(command, names):
    assert names
    for name in names:
        for miss in _near_misses(name):
            if miss in names:
                continue
            status, _, err = invoke([command, miss])
            assert status == 2 and err.count("\n") == 1, (miss, err)
            closest = difflib.get_close_matches(miss, names, n=3, cutoff=0.0)
            assert "did you mean" in err and any(c in err for c in closest), (miss, err)
