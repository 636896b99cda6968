"""The command line: ``optproof show``, its listing and its usage errors."""

import subprocess
import sys

import pytest

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
