"""What a theorem is, how it is proved, checked numerically and printed.

A `Theorem` has a name, a one-paragraph statement, its sources and a derivation: a
function of the number of unrolled steps k that returns `Text`, `Equations`
(lines to display, e.g. an unrolled trajectory) and `Claim` blocks. The claims are the
proof obligations, built from the specs (``rule(name).program(...)`` closed forms and lines, or
the unroller), never retyped; the other side of a claim is the statement being proved.

Two proof procedures, one per kind of claim:

* **identity** ``lhs = rhs``: the difference is simplified to 0 under the symbols' domains —
  first structurally, then by ``expand``, ``cancel(together(·))`` and finally ``simplify``,
  after `under_domains` has replaced each bias-correction power βᵗ (t ≥ 1, 0 ≤ β < 1) by
  1 − c with c > 0. That replacement is a generalisation (c is independent of β), so an
  identity proved after it holds for every admissible β; it is what licenses
  √(v/(1 − βᵗ)) = √v/√(1 − βᵗ), which is false for 1 − βᵗ < 0.
* **inequivalence** ``lhs ≠ rhs``: an explicit witness point inside the domains where the
  difference evaluates exactly (SymPy, rationals and radicals) to a non-zero number.

Every claim is also checked numerically with mpmath at 50 digits: an identity at random points
of the domains, an inequivalence at its witness. A theorem about trajectories adds a
cross-check against `optproof.reference.run`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import mpmath
import sympy as sp
from sympy.printing.pretty.stringpict import prettyForm

from ..printers import _pretty, latex_lines, unicode_lines
from ..program import Line
from ..symbols import HYPERS, t
from ..unroll import domain_of

__all__ = ["Text", "Equations", "Claim", "Theorem", "ClaimResult", "Report", "Check",
           "under_domains", "prove_claim", "numeric_check", "prove", "render", "FORMATS"]

FORMATS = ("unicode", "latex", "markdown")
DPS = 50


# ------------------------------------------------------------------------------------ blocks

@dataclass(frozen=True)
class Text:
    """A paragraph of the derivation."""

    text: str


@dataclass(frozen=True)
class Equations:
    """Lines to display (``target ← expr``, or ``lhs = rhs`` with ``relation="="``)."""

    title: str
    lines: tuple[Line, ...]
    relation: str = "←"


@dataclass(frozen=True)
class Claim:
    """A proof obligation: ``lhs = rhs`` (``equal``), or ``lhs ≠ rhs`` shown at ``witness``.

    ``lhs``/``rhs`` come from the specs or the statement; ``names`` are how the two sides are
    called in the printout; ``conditions`` says in words which domain facts the proof uses.
    """

    label: str
    lhs: sp.Expr
    rhs: sp.Expr
    equal: bool = True
    witness: Mapping[sp.Symbol, sp.Expr] = field(default_factory=dict)
    names: tuple[str, str] = ("", "")
    conditions: str = ""
    show: bool = True  # print both sides (False for long closed forms: print the residual)
    domains: Mapping[sp.Symbol, sp.Set] = field(default_factory=dict)  # narrower than default

    @property
    def relation(self) -> str:
        return "=" if self.equal else "≠"


Block = Text | Equations | Claim


@dataclass(frozen=True)
class Check:
    """One numeric cross-check: what was compared, the largest discrepancy, and the verdict."""

    what: str
    discrepancy: float
    ok: bool


@dataclass(frozen=True)
class Theorem:
    """A named result.

    ``derive(k)`` returns the blocks of the derivation for k unrolled steps (theorems that
    unroll nothing ignore k); ``counterfeit(k)`` returns deliberately wrong claims of the same
    shape, which the same proof procedure must reject (the negative controls);
    ``crosscheck(rng, k)`` compares with `optproof.reference.run` trajectories.
    """

    name: str
    title: str
    statement: str
    sources: tuple[str, ...]
    derive: Callable[[int], list[Block]]
    counterfeit: Callable[[int], list[Claim]]
    crosscheck: Callable[[random.Random, int], list[Check]] | None = None
    default_steps: int = 3
    uses_steps: bool = True
    #: the largest k ``optproof derive`` accepts: the symbolic work grows steeply with k, and
    #: this k was measured to finish within a minute on a 2-core machine
    #: (``bench/derive_steps.py``, the table in ``bench/README.md``)
    max_steps: int = 3

    def claims(self, k: int | None = None) -> list[Claim]:
        return [b for b in self.derive(self.default_steps if k is None else k)
                if isinstance(b, Claim)]


# ------------------------------------------------------------------------------------ proving

def _unit_interval_hypers() -> dict[sp.Symbol, str]:
    return {h.symbol: h.key for h in HYPERS.values() if h.domain == sp.Interval.Ropen(0, 1)}


def under_domains(expr: sp.Expr) -> tuple[sp.Expr, dict[sp.Symbol, sp.Expr]]:
    """Replace each power βᵉ of a hyperparameter with domain [0, 1) and a positive integer
    exponent e ≥ 2 or e = t by 1 − c, c a fresh positive symbol (c = 1 − βᵉ ∈ (0, 1]).

    Returns the rewritten expression and the map c → 1 − βᵉ. Sound for proving identities: the
    rewritten identity has c free, so it holds in particular at c = 1 − βᵉ.
    """
    unit = _unit_interval_hypers()
    found: dict[sp.Expr, sp.Symbol] = {}

    def rewrite(e: sp.Pow) -> sp.Expr:
        base, exp = e.args
        if e not in found:
            found[e] = sp.Symbol(f"c_{{{sp.latex(base)}^{{{sp.latex(exp)}}}}}", positive=True)
        return 1 - found[e]

    def is_bc_power(e) -> bool:
        if not (isinstance(e, sp.Pow) and e.base in unit):
            return False
        exp = e.exp
        return bool(exp == t or (exp.is_integer and exp.is_positive and exp != 1)
                    or (exp.free_symbols == {t} and (exp - t).is_nonnegative))

    out = expr.replace(is_bc_power, rewrite)
    return out, {c: 1 - p for p, c in found.items()}


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of proving one claim."""

    claim: Claim
    ok: bool
    method: str
    residual: sp.Expr | None
    value: sp.Expr | None = None  # the residual at the witness (inequivalences)
    note: str = ""


_METHODS: tuple[tuple[str, Callable[[sp.Expr], sp.Expr]], ...] = (
    ("structurally", lambda e: e),
    ("expand", sp.expand),
    ("cancel(together)", lambda e: sp.cancel(sp.together(e))),
    ("simplify", sp.simplify),
)


def _probe(diff: sp.Expr, domains: Mapping[sp.Symbol, sp.Set]) -> bool:
    """Whether ``diff`` is clearly non-zero at a (seeded) random point of the domains: a
    quick, sound rejection before the expensive simplifications."""
    rng = random.Random(str(sorted(map(str, diff.free_symbols))))
    with mpmath.workdps(DPS):
        try:
            point = {s: _sample(s, rng, domains) for s in diff.free_symbols}
            value = abs(_evaluate(diff, point))
        except (ZeroDivisionError, TypeError, ValueError):
            return False
        return bool(value > mpmath.mpf(10) ** -(DPS // 2))


def _simplify_to_zero(diff: sp.Expr, domains: Mapping[sp.Symbol, sp.Set] = {}
                      ) -> tuple[bool, str, sp.Expr]:
    """Try the methods in order of cost, each first on the difference as it is and then after
    `under_domains` (which loses βᵉ = β·…·β, so it comes second). A difference that is
    numerically non-zero at a point of the domains is rejected before the costly methods."""
    rewritten, powers = under_domains(diff)
    current = {"": diff, " under the domains (1 − βᵗ > 0)": rewritten}
    if not powers:
        current.pop(" under the domains (1 − βᵗ > 0)")
    for n, (name, method) in enumerate(_METHODS):
        if n == 2 and _probe(diff, domains):
            return False, "non-zero at a point of the domains", current[""]
        for where in list(current):
            current[where] = method(current[where])
            if current[where] == 0:
                return True, name + where, sp.S.Zero
    return False, "none", current[""]


def admissible(symbol: sp.Symbol, value: sp.Expr, domains: Mapping[sp.Symbol, sp.Set]) -> bool:
    """Whether ``value`` lies in ``symbol``'s domain (``domains`` overrides the default)."""
    domain = domains.get(symbol) or domain_of(symbol)
    return bool(domain.contains(sp.sympify(value)) is sp.true)


def prove_claim(claim: Claim) -> ClaimResult:
    """Prove ``claim`` by the procedure of its kind (see the module docstring)."""
    diff = claim.lhs - claim.rhs
    if claim.equal:
        ok, method, residual = _simplify_to_zero(diff, claim.domains)
        return ClaimResult(claim, ok, f"lhs − rhs → 0 by {method}" if ok else
                           "lhs − rhs does not simplify to 0", residual)
    if not claim.witness:
        return ClaimResult(claim, False, "no witness given", None)
    outside = [s for s, v in claim.witness.items() if not admissible(s, v, claim.domains)]
    if outside:
        return ClaimResult(claim, False, f"witness outside the domain of {outside[0]}", None)
    missing = diff.free_symbols - set(claim.witness)
    if missing:
        return ClaimResult(claim, False, f"witness leaves {sorted(map(str, missing))} free", None)
    value = sp.nsimplify(sp.simplify(diff.xreplace(dict(claim.witness))))
    residual = sp.factor(sp.cancel(diff)) if sp.count_ops(diff) < 60 else None
    if value.is_zero is False and value.is_finite:
        return ClaimResult(claim, True, "lhs − rhs ≠ 0 at the witness", residual, value)
    return ClaimResult(claim, False, "lhs − rhs vanishes at the witness", residual, value)


# ------------------------------------------------------------------------------------ numbers

def _sample(symbol: sp.Symbol, rng: random.Random, domains: Mapping[sp.Symbol, sp.Set]):
    """A random point of the symbol's domain, away from the edges (mpmath number or int)."""
    domain = domains.get(symbol) or domain_of(symbol)
    if isinstance(domain, sp.FiniteSet):
        return mpmath.mpf(str(rng.choice(list(domain))))
    if symbol.is_integer:
        return rng.randint(1, 12)
    if isinstance(domain, sp.Interval):
        lo = float(domain.inf) if domain.inf.is_finite else -3.0
        hi = float(domain.sup) if domain.sup.is_finite else lo + 3.0
        if not domain.sup.is_finite and lo == -3.0:
            hi = 3.0
        return mpmath.mpf(lo + (hi - lo) * (0.05 + 0.9 * rng.random()))
    return mpmath.mpf(rng.uniform(-3, 3))


def _evaluate(expr: sp.Expr, point: Mapping[sp.Symbol, object]) -> mpmath.mpf:
    symbols = sorted(expr.free_symbols, key=str)
    fn = sp.lambdify(symbols, expr, modules="mpmath")
    return fn(*(point[s] for s in symbols))


def numeric_check(claim: Claim, rng: random.Random, points: int = 3) -> Check:
    """An identity at ``points`` random points of the domains, or an inequivalence at its
    witness, evaluated with mpmath at 50 digits."""
    with mpmath.workdps(DPS):
        symbols = sorted(claim.lhs.free_symbols | claim.rhs.free_symbols, key=str)
        if not claim.equal:
            point = {s: mpmath.mpf(sp.Rational(v).p) / sp.Rational(v).q
                     if sp.sympify(v).is_Rational else mpmath.mpf(sp.N(v, DPS))
                     for s, v in claim.witness.items()}
            try:
                gap = abs(_evaluate(claim.lhs, point) - _evaluate(claim.rhs, point))
            except (KeyError, ZeroDivisionError, TypeError):
                return Check(f"{claim.label}: at the witness", float("nan"), False)
            return Check(f"{claim.label}: at the witness", float(gap), bool(gap > mpmath.mpf(10) ** -30))
        worst = mpmath.mpf(0)
        for _ in range(points):
            point = {s: _sample(s, rng, claim.domains) for s in symbols}
            a, b = _evaluate(claim.lhs, point), _evaluate(claim.rhs, point)
            gap = abs(a - b) / (1 + abs(a) + abs(b))
            worst = max(worst, gap)
        return Check(f"{claim.label}: {points} random points", float(worst),
                     bool(worst < mpmath.mpf(10) ** -(DPS - 10)))


# ------------------------------------------------------------------------------------ report

@dataclass(frozen=True)
class Report:
    """A theorem proved: each claim's result, the numeric checks, and the time taken."""

    theorem: Theorem
    k: int
    results: tuple[ClaimResult, ...]
    checks: tuple[Check, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results) and all(c.ok for c in self.checks)

    @property
    def verdict(self) -> str:
        if self.ok:
            return "proved"
        if not all(r.ok for r in self.results):
            return "FAILED (symbolic)"
        return "FAILED (numeric)"


#: ``progress(what)``: told what a long derivation starts next
Progress = Callable[[str], None]


def _quiet(what: str) -> None:
    pass


def prove(theorem: Theorem, k: int | None = None, *, seed: int = 0,
          progress: Progress = _quiet) -> Report:
    """Prove every claim of ``theorem`` and run its numeric checks."""
    start = time.perf_counter()
    k = theorem.default_steps if k is None else k
    rng = random.Random(f"{theorem.name}:{seed}")
    progress(f"{theorem.name}: deriving (k = {k})")
    claims = theorem.claims(k)
    results = []
    for i, claim in enumerate(claims, start=1):
        progress(f"{theorem.name}: proving claim {i}/{len(claims)}")
        results.append(prove_claim(claim))
    progress(f"{theorem.name}: numeric checks")
    checks = [numeric_check(c, rng) for c in claims]
    if theorem.crosscheck is not None:
        checks += theorem.crosscheck(rng, k)
    return Report(theorem, k, tuple(results), tuple(checks), time.perf_counter() - start)


# ------------------------------------------------------------------------------------ printing

def _uni_relation(lhs: sp.Expr, relation: str, rhs: sp.Expr) -> str:
    form = prettyForm(*_pretty._print(lhs).right(f" {relation} ", _pretty._print(rhs)))
    return form.render(wrap_line=False)


def _claim_rows(claim: Claim, result: ClaimResult) -> list[tuple[sp.Expr, str, sp.Expr]]:
    rows = []
    if claim.show:
        rows.append((claim.lhs, claim.relation, claim.rhs))
    if claim.equal:
        rows.append((sp.Symbol("lhs − rhs"), "=",
                     result.residual if result.residual is not None else sp.nan))
    else:
        if result.residual is not None:
            rows.append((sp.Symbol("lhs − rhs"), "=", result.residual))
        if result.value is not None:
            at = ", ".join(f"{s} = {v}" for s, v in claim.witness.items())
            rows.append((sp.Symbol(f"(lhs − rhs)|[{at}]"), "=", result.value))
    return rows


def _claim_head(claim: Claim, result: ClaimResult) -> str:
    names = ""
    if any(claim.names):
        names = f" ({claim.names[0] or 'lhs'} {claim.relation} {claim.names[1] or 'rhs'})"
    verdict = "✔" if result.ok else "✘"
    text = f"{verdict} {claim.label}{names}: {result.method}"
    if claim.conditions:
        text += f"; uses {claim.conditions}"
    return text + "."


def _tex_symbolname(symbol: sp.Symbol) -> str:
    name = symbol.name
    if name == "lhs − rhs":
        return r"\mathrm{lhs} - \mathrm{rhs}"
    if name.startswith("(lhs − rhs)|["):
        inner = name[len("(lhs − rhs)|["):-1]
        return r"\left.(\mathrm{lhs} - \mathrm{rhs})\right|_{" + _tex_point(inner) + "}"
    return sp.latex(symbol)


def _tex_point(text: str) -> str:
    parts = []
    for item in text.split(", "):
        name, value = item.split(" = ")
        parts.append(f"{sp.latex(sp.Symbol(name))} = {sp.latex(sp.sympify(value))}")
    return ",\\ ".join(parts)


def _tex_row(lhs, relation, rhs) -> str:
    left = _tex_symbolname(lhs) if isinstance(lhs, sp.Symbol) else sp.latex(lhs)
    rel = {"=": "=", "≠": r"\neq", "←": r"\leftarrow"}[relation]
    return rf"{left} &{rel} {sp.latex(rhs)}"


def _aligned(rows: Sequence[str]) -> str:
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def _equation_rows(block: Equations) -> list[tuple[sp.Expr, str, sp.Expr]]:
    return [(line.target, block.relation, line.expr) for line in block.lines]


def render(theorem: Theorem, fmt: str = "unicode", k: int | None = None,
           results: Mapping[int, ClaimResult] | None = None,
           progress: Progress = _quiet) -> str:
    """The statement and the derivation of ``theorem`` for ``k`` steps in format ``fmt``;
    ``progress`` is told each stage (the derivation, each claim's proof)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    k = theorem.default_steps if k is None else k
    progress(f"{theorem.name}: deriving (k = {k})")
    blocks = theorem.derive(k)
    claims = sum(isinstance(b, Claim) for b in blocks)
    proved = 0
    steps = f" (k = {k})" if theorem.uses_steps else ""
    out: list[str] = []
    if fmt == "markdown":
        out += [f"# `{theorem.name}`{steps}", "", f"**{theorem.title}.**", "",
                theorem.statement, ""]
    elif fmt == "latex":
        out += [f"% {theorem.name}{steps}: {theorem.title}", f"% {theorem.statement}"]
    else:
        out += [f"{theorem.name}{steps} — {theorem.title}", "", theorem.statement, ""]
    for block in blocks:
        if isinstance(block, Text):
            out += [f"% {block.text}" if fmt == "latex" else block.text, ""]
            continue
        if isinstance(block, Equations):
            head = block.title
            rows = _equation_rows(block)
            with_why = block.relation == "←"
        else:
            proved += 1
            progress(f"{theorem.name}: proving claim {proved}/{claims}")
            result = prove_claim(block)
            head = _claim_head(block, result)
            rows = _claim_rows(block, result)
            with_why = False
        if fmt == "unicode":
            out.append(head + ":" if isinstance(block, Equations) else head)
            if with_why:
                out.append(unicode_lines(block.lines))
            else:
                out += [_uni_relation(*row) for row in rows]
            out.append("")
        else:
            body = (latex_lines(block.lines, why=fmt == "latex") if with_why
                    else _aligned([_tex_row(*row) for row in rows]))
            if fmt == "latex":
                out += [f"% {head}", body]
            else:
                out += [head + (":" if isinstance(block, Equations) else ""), "", "$$", body,
                        "$$", ""]
    if fmt == "latex":
        out.append("% sources: " + "; ".join(theorem.sources))
    elif fmt == "markdown":
        out += ["Sources:", ""] + [f"- {s}" for s in theorem.sources]
    else:
        out.append("sources: " + "; ".join(theorem.sources))
    return "\n".join(out).rstrip("\n") + "\n"
