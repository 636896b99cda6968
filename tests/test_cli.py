"""The command line: ``optproof show``, its listing and its usage errors."""

import re
import subprocess
import sys

import pytest
from rich.cells import cell_len

from optproof.cli import main
from optproof.derivations import rules


def test_show_list_names_every_rule_and_its_source(capsys):
    assert main(["show", "--list"]) == 0
    out = capsys.readouterr().out
    for spec in rules():
        assert spec.name in out


@pytest.mark.parametrize("fmt,marker", [("unicode", "θₜ ←"), ("latex", r"\begin{aligned}"),
                                        ("markdown", "## `adamw`")])
def test_show_adamw_in_every_format(capsys, fmt, marker):
    assert main(["show", "adamw", "--format", fmt]) == 0
    assert marker in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["show", "adamx"], "did you mean adam"),
    (["show"], "show needs a RULE name or --list"),
    (["show", "adam", "--format", "html"], "invalid choice"),
    ([], "required: command"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2_with_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "optproof", "show", "adam"],
                          capture_output=True, text=True, check=True)
    assert "mirrors torch.optim.Adam" in done.stdout


def test_an_unrecognized_option_is_named(capsys):
    for argv in (["--bogus"], ["--bogus", "show", "adam"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--bogus" in err and err.count("\n") == 1, (argv, err)


@pytest.mark.parametrize("argv,named", [
    (["show", "--list", "adamw"], "RULE"),
    (["show", "--list", "--format", "latex"], "--format"),
    (["derive", "--check", "--list"], "--check"),
    (["derive", "--list", "adam-first-step"], "NAME"),
    (["derive", "--list", "--steps", "2"], "--steps"),
    (["derive", "--check", "adam-first-step", "--format", "latex"], "--format"),
    (["derive", "adam-first-step", "--steps", "2"], "--steps"),  # unrolls no steps
    (["derive", "--check", "adam-first-step", "--steps", "2"], "--steps"),
])
def test_an_option_that_would_be_ignored_is_a_usage_error(capsys, argv, named):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv", [["show", "--list"], ["derive", "--list"]])
def test_listings_are_plain_tab_separated_lines_when_piped(argv):
    done = subprocess.run([sys.executable, "-m", "optproof", *argv], capture_output=True,
                          text=True, check=True)
    lines = done.stdout.splitlines()
    names = [spec.name for spec in rules()] if argv[0] == "show" else _theorem_names()
    assert [line.split("\t")[0] for line in lines[1:]] == names
    assert all(line.count("\t") == 2 for line in lines)
    assert not set("┏┃│━") & set(done.stdout)


@pytest.mark.parametrize("argv", [["show", "--list"], ["derive", "--list"]])
def test_listings_fit_the_terminal(capsys, monkeypatch, argv):
    monkeypatch.setenv("COLUMNS", "90")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(argv) == 0
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # colours and styles
    assert "┃" in out and max(cell_len(line) for line in out.splitlines()) <= 90


def _theorem_names() -> list[str]:
    from optproof.derivations.theorems import theorems
    return [th.name for th in theorems()]
