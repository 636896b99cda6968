"""``optproof audit`` and ``optproof vectors``: the argument layer.

A bad option is a usage error — exit 2, one line naming the option, no traceback — found
before the audit runs, never a DEVIATION verdict or a traceback after it; ``--timeout``
bounds every call into the target, the first included.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import optproof.audit.auditor as auditor
from optproof.audit.cli import DEFAULT_TIMEOUT, WARMUP_TIMEOUT
from optproof.cli import main

TESTS = Path(__file__).resolve().parent


def _usage_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("optproof: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def no_audit(monkeypatch):
    """The audit itself must not run: the line is refused before it."""
    def ran(*args, **kwargs):
        raise AssertionError("the audit ran before the usage error")
    monkeypatch.setattr(auditor, "audit", ran)


@pytest.mark.parametrize("argv,named", [
    (["--timeout", "nan"], "--timeout"),
    (["--timeout", "inf"], "--timeout"),
    (["--timeout", "-inf"], "--timeout"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "-2"], "--timeout"),
    (["--seed", "-1"], "--seed"),
    (["--steps", "0"], "--steps"),
])
def test_bad_numbers_are_usage_errors(capsys, no_audit, argv, named):
    assert named in _usage_error(capsys, ["audit", "torch.optim.Adam", *argv])


@pytest.mark.parametrize("argv,named", [
    (["--seed", "-1"], "--seed"), (["--dps", "0"], "--dps"), (["--steps", "nan"], "--steps"),
])
def test_vectors_bad_numbers_are_usage_errors(capsys, argv, named):
    assert named in _usage_error(capsys, ["vectors", "adam", *argv])


def test_a_plot_into_a_missing_folder_is_refused_before_the_audit(capsys, no_audit, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "no" / "such" / "x.png"
    err = _usage_error(capsys, ["audit", "torch.optim.Adam", "--plot", str(path)])
    assert "--plot" in err and str(path.parent) in err


def test_a_plot_into_a_folder_name_is_refused_before_the_audit(capsys, no_audit, tmp_path):
    pytest.importorskip("matplotlib")
    err = _usage_error(capsys, ["audit", "torch.optim.Adam", "--plot", str(tmp_path)])
    assert "a folder, not a file name" in err


def test_a_plot_format_matplotlib_cannot_write_is_refused_before_the_audit(capsys, no_audit,
                                                                           tmp_path):
    pytest.importorskip("matplotlib")
    err = _usage_error(capsys, ["audit", "torch.optim.Adam", "--plot",
                                str(tmp_path / "x.notanext")])
    assert ".notanext" in err and ".png" in err and ".svg" in err


def test_the_device_meta_is_a_usage_error(capsys):
    err = _usage_error(capsys, ["audit", "torch.optim.Adam", "--steps", "1", "--device",
                                "meta"])
    assert "meta" in err


def test_the_timeout_given_bounds_the_first_step_too():
    """A step that never returns, at the first step of the process (where the warm-up
    allowance applies when no --timeout is given): with ``--timeout 2`` the audit reports the
    timeout and returns long before the warm-up allowance has passed."""
    assert WARMUP_TIMEOUT > DEFAULT_TIMEOUT > 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "optproof", "audit", "faulty_optimizers.AdamHangsAtOnce",
         "--rule", "adam", "--steps", "1", "--timeout", "2"],
        capture_output=True, text=True, env=env, timeout=WARMUP_TIMEOUT / 2)
    assert done.returncode == 1, done.stderr
    assert "timed out" in done.stdout and "step 1: no return within 2 s" in done.stdout


def test_a_short_timeout_bounds_the_target_not_torchs_first_imports():
    """torch.optim imports torch._dynamo when its first optimizer is constructed (seconds on
    a busy machine): a correct optimizer under a 1 s timeout, in a fresh process, conforms."""
    done = subprocess.run([sys.executable, "-m", "optproof", "audit", "torch.optim.SGD",
                           "--steps", "1", "--timeout", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


def test_help_says_what_the_timeout_bounds(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "bounds every call, the first included" in text
    assert f"{WARMUP_TIMEOUT:g} s" in text and f"{DEFAULT_TIMEOUT:g} s" in text


def test_a_target_that_is_not_an_optimizer_is_named_with_its_type(capsys):
    err = _usage_error(capsys, ["audit", "os.F_OK"])
    assert "'os.F_OK' is not an optimizer class or factory (its type is int)" in err
