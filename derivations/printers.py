"""Print a rule's program as LaTeX, Unicode or Markdown, from its symbolic expressions.

Nothing here holds a formula: every equation is SymPy's rendering of a `Line` of the
rule's `Program`. A rule's structural flags (``amsgrad``,
``maximize``, …) are shown as the lines that change when the flag is switched on.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.printing.pretty.pretty import PrettyPrinter
from sympy.printing.pretty.stringpict import prettyForm

from .program import Line, Program
from .spec import Spec

__all__ = ["FORMATS", "render", "latex_lines", "unicode_lines", "flag_changes"]

FORMATS = ("unicode", "latex", "markdown")


def latex_lines(lines: tuple[Line, ...] | list[Line], *, why: bool = True) -> str:
    """An ``aligned`` block, one ``target ← expr`` per line, reasons as ``\\text`` comments."""
    rows = []
    for line in lines:
        row = rf"{sp.latex(line.target)} &\leftarrow {sp.latex(line.expr)}"
        if why and line.why:
            row += rf" && \text{{{line.why}}}"
        rows.append(row)
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


class _Pretty(PrettyPrinter):
    """SymPy's Unicode printer, with ``Max`` written as the lower-case ``max`` of mathematics."""

    def _print_Max(self, e):  # noqa: N802 (SymPy's naming)
        return self._print_Function(e, func_name="max")


_pretty = _Pretty({"use_unicode": True, "wrap_line": False})


def unicode_lines(lines: tuple[Line, ...] | list[Line], *, why: bool = True) -> str:
    """Each line as SymPy's 2-D Unicode rendering of ``target ← expr``, reasons alongside."""
    blocks = []
    for line in lines:
        form = prettyForm(*_pretty._print(line.target).right(" ← ", _pretty._print(line.expr)))
        if why and line.why:
            form = prettyForm(*form.right(f"    ({line.why})"))
        blocks.append(form.render(wrap_line=False))
    return "\n".join(blocks)


def flag_changes(spec: Spec) -> dict[str, list[Line]]:
    """For each flag, the lines of the program with that flag flipped that the default lacks."""
    default = spec.program()
    changes = {}
    for flag in spec.flags:
        flipped = spec.program(**{flag: not spec.defaults[flag]})
        changes[flag] = [line for line in flipped.lines if line not in default.lines]
    return changes


def _hyper_rows(spec: Spec, program: Program) -> list[tuple[str, str, str, str, str]]:
    """(symbol LaTeX, symbol Unicode, keyword, domain, default) for each hyperparameter."""
    rows = []
    order = list(spec.defaults)
    for h in sorted(program.hypers, key=lambda h: (order.index(h.keyword), h.index or 0)):
        default = spec.defaults.get(h.keyword)
        if h.index is not None and default is not None:
            default = default[h.index]
        rows.append((sp.latex(h.symbol), sp.pretty(h.symbol, use_unicode=True), h.key,
                     sp.pretty(h.domain, use_unicode=True), repr(default)))
    return rows


def _flag_text(flag: str, spec: Spec) -> str:
    return f"{flag}={not spec.defaults[flag]}"


def _unicode(spec: Spec) -> str:
    program = spec.program()
    out = [f"{spec.name} — {spec.summary}", f"mirrors {spec.mirrors}", "",
           unicode_lines(program.lines)]
    for flag, lines in flag_changes(spec).items():
        if lines:
            out += ["", f"with {_flag_text(flag, spec)}:", unicode_lines(lines)]
    out += ["", "hyperparameters:"]
    out += [f"  {u} = {key} ∈ {dom} (default {d})" for _, u, key, dom, d in _hyper_rows(spec, program)]
    out += ["state: " + ", ".join(f"{s.key} ({s.meaning})" for s in program.states)]
    out += ["sources: " + "; ".join(spec.sources)]
    if spec.notes:
        out += ["note: " + spec.notes]
    return "\n".join(out)


def _latex(spec: Spec) -> str:
    out = [latex_lines(spec.program().lines)]
    for flag, lines in flag_changes(spec).items():
        if lines:
            out += [f"% with {_flag_text(flag, spec)}:", latex_lines(lines)]
    return "\n".join(out)


def _markdown(spec: Spec) -> str:
    program = spec.program()
    out = [f"## `{spec.name}`", "", spec.summary + ".", "", f"Mirrors `{spec.mirrors}`.", "",
           "$$", latex_lines(program.lines, why=False), "$$", ""]
    for flag, lines in flag_changes(spec).items():
        if lines:
            out += [f"With `{_flag_text(flag, spec)}`:", "", "$$",
                    latex_lines(lines, why=False), "$$", ""]
    out += ["| symbol | torch keyword | domain | default |", "|---|---|---|---|"]
    out += [f"| ${lx}$ | `{key}` | {dom} | `{d}` |" for lx, _, key, dom, d in _hyper_rows(spec, program)]
    out += ["", "| state key | symbol | meaning |", "|---|---|---|"]
    out += [f"| `{s.key}` | ${sp.latex(s.new)}$ | {s.meaning} |" for s in program.states]
    out += ["", "Sources:", ""] + [f"- {source}" for source in spec.sources]
    if spec.notes:
        out += ["", f"Note: {spec.notes}"]
    return "\n".join(out) + "\n"


_RENDERERS: dict[str, Callable[[Spec], str]] = {
    "unicode": _unicode, "latex": _latex, "markdown": _markdown,
}


def render(spec: Spec, fmt: str = "unicode") -> str:
    """The rule ``spec`` in format ``fmt`` (one of `FORMATS`)."""
    if fmt not in _RENDERERS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return _RENDERERS[fmt](spec)
