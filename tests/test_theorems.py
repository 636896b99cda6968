"""The theorems: each is proved, each proof procedure rejects a wrong statement of the same shape
(negative controls), the unroller matches the reference on every rule, the committed Markdown
is current, and ``optproof derive`` behaves."""

import difflib
import random
import sys

import pytest
import sympy as sp

from optproof.cli import main
from optproof.derivations import rule, rules
from optproof.derivations.theorems import (DOCS, Claim, numeric_check, prove, prove_claim,
                                           render, render_docs, theorem, theorems)
from optproof.derivations.theorems.common import reference_check
from optproof.derivations.unroll import unroll

REQUIRED = ("sgd-l2-equals-decoupled", "momentum-l2-vs-decoupled",
            "torch-momentum-equals-sutskever", "adam-l2-vs-adamw", "bias-correction",
            "adam-eps-hat", "adamw-decay-scaling", "torch-rearrangements", "adamw-ema-timescale",
            "adam-first-step")
NAMES = [th.name for th in theorems()]


def test_every_required_theorem_exists():
    assert set(REQUIRED) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_theorem_is_proved_symbolically_and_numerically(name):
    report = prove(theorem(name))
    failures = [f"{r.claim.label}: {r.method}" for r in report.results if not r.ok]
    failures += [f"{c.what}: {c.discrepancy}" for c in report.checks if not c.ok]
    assert report.ok, failures
    assert report.results, "a theorem must have at least one claim"


@pytest.mark.parametrize("name", NAMES)
def test_negative_controls_are_rejected(name):
    th = theorem(name)
    wrong = th.counterfeit(max(th.default_steps, 2))
    assert wrong, f"{name} has no negative control"
    rng = random.Random(name)
    for claim in wrong:
        assert not prove_claim(claim).ok, f"accepted the wrong claim {claim.label!r}"
        assert not numeric_check(claim, rng).ok, f"numerics accepted {claim.label!r}"


@pytest.mark.parametrize("k", [1, 2, 4])
def test_momentum_expansions_hold_for_other_k(k):
    assert prove(theorem("momentum-l2-vs-decoupled"), k).ok


def test_blog_swap_is_what_the_negative_control_states():
    """The swapped expansion fails exactly because L2 accumulates λθ with μ^{k−i}: at k = 2,
    torch form, τ = 0, the difference of the steps is −γλμθ₀ (not 0)."""
    th = theorem("momentum-l2-vs-decoupled")
    claim = next(c for c in th.claims(2) if "difference" in c.label and "torch" in c.label)
    mu, tau = sp.Symbol("mu", positive=True), sp.Symbol("tau", nonnegative=True)
    gamma, lam = sp.Symbol("gamma", positive=True), sp.Symbol("lambda", nonnegative=True)
    theta0 = sp.Symbol("theta_0", real=True)
    assert sp.expand(claim.rhs.subs(tau, 0)) == -gamma * lam * mu * theta0


def test_witness_outside_the_domain_is_refused():
    beta = rule("adam").program().hypers[1].symbol  # β₁ ∈ [0, 1)
    claim = Claim("β ≠ 1/2", beta, sp.Rational(1, 2), equal=False, witness={beta: sp.Integer(2)})
    assert not prove_claim(claim).ok
    assert "outside the domain" in prove_claim(claim).method


@pytest.mark.parametrize("spec", [s.name for s in rules()])
def test_unroller_matches_the_reference_on_every_rule(spec):
    """θ₂ from the unrolled program equals reference.run's two steps (defaults, zero state)."""
    s = rule(spec)
    hyper = {"lr": 0.05} if "lr" in s.defaults else {}
    if "momentum" in s.defaults:
        hyper["momentum"] = 0.9
    u = unroll(s.program(), 2)
    check = reference_check(spec, u, s, hyper, random.Random(spec))
    assert check.ok, check


def test_unrolled_steps_name_each_intermediate():
    u = unroll(rule("adamw").program(), 2)
    names = [str(line.target) for line in u.lines()]
    assert names[:6] == ["m_1", "v_1", "mhat_1", "vhat_1", "u_1", "theta_1"]
    assert u.theta[2] == sp.Symbol("theta_2", real=True)


def test_docs_are_current():
    stale = []
    for name, text in render_docs().items():
        path = DOCS / name
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            stale.append("".join(difflib.unified_diff(
                current.splitlines(True), text.splitlines(True), f"committed/{name}",
                f"generated/{name}", n=1)))
    assert not stale, ("docs/theorems is stale; regenerate with "
                       "`python -m optproof.derivations.theorems`:\n" + "\n".join(stale)[:4000])


@pytest.mark.parametrize("fmt,marker", [("unicode", "θ₃ ="), ("latex", r"\begin{aligned}"),
                                        ("markdown", "# `momentum-l2-vs-decoupled` (k = 3)")])
def test_render_formats(fmt, marker):
    assert marker in render(theorem("momentum-l2-vs-decoupled"), fmt, 3)


def test_cli_derive_momentum_prints_both_expansions_and_difference(capsys):
    assert main(["derive", "momentum-l2-vs-decoupled", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "L2: θ_3 in terms of θ₀" in out and "decoupled: θ_3 in terms of θ₀" in out
    assert "Δ₃ =" in out and "✘" not in out


def test_cli_derive_list_and_check(capsys):
    assert main(["derive", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)
    assert main(["derive", "--check", "adam-first-step"]) == 0
    assert "proved" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["derive", "adam-l2-vs-adam"], "did you mean adam-l2-vs-adamw"),
    (["derive"], "derive needs a theorem NAME"),
    (["derive", "bias-correction", "--steps", "0"], "--steps must be a positive"),
    (["derive", "bias-correction", "--format", "html"], "invalid choice"),
])
def test_cli_derive_usage_errors(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_derive_refuses_more_steps_than_measured_to_finish(capsys):
    for th in theorems():
        if not th.uses_steps:
            continue
        assert th.default_steps <= th.max_steps
        assert main(["derive", th.name, "--steps", str(th.max_steps + 1)]) == 2
        err = capsys.readouterr().err
        assert f"at most {th.max_steps}" in err and err.count("\n") == 1, err


def test_render_and_prove_report_their_progress():
    th = theorem("adam-l2-vs-adamw")
    for run in (lambda seen: render(th, "unicode", 2, progress=seen.append),
                lambda seen: prove(th, 2, progress=seen.append)):
        seen: list[str] = []
        run(seen)
        claims = len(th.claims(2))
        assert seen[0] == f"{th.name}: deriving (k = 2)"
        assert [s for s in seen if "proving claim" in s] == [
            f"{th.name}: proving claim {i}/{claims}" for i in range(1, claims + 1)]


def test_cli_derive_shows_progress_on_a_terminal_only(capsys, monkeypatch):
    argv = ["derive", "adam-l2-vs-adamw", "--steps", "2"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # not a terminal: quiet
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(argv) == 0
    assert "adam-l2-vs-adamw: proving claim" in capsys.readouterr().err


def test_sgd_l2_equals_decoupled_proves_at_one_step():
    # its momentum cross-check runs two steps (the difference starts at step 2): the lr
    # schedule must cover them even at k = 1
    report = prove(theorem("sgd-l2-equals-decoupled"), 1)
    assert report.ok, report
