"""One documentation page per rule family, generated from the specs.

A *family* is the torch rule (the spec whose name is the family name, e.g. ``adam``) and the
variants that follow another framework's or a paper's convention (``adam:eps-hat``,
``adam:amsgrad-reddi``). Its page ``docs/rules/<family>.md`` holds, for every spec of the
family, the update as LaTeX, the lines each structural flag changes, the hyperparameters with
their domains and torch keyword names, the state keys and the sources; for every variant also
the lines of its program that differ from the family's rule, computed by diffing the two
programs line by line (nothing here is typed in).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import sympy as sp

from optproof.derivations import Spec, rules
from optproof.derivations.printers import flag_changes, latex_lines
from optproof.derivations.program import Line

__all__ = ["families", "family_title", "anchor", "rule_link", "family_pages", "rules_index"]

#: a family page also compares its rule with the rule it is usually confused with
RELATED = {"adamw": "adam", "sgdw": "sgd"}


def families() -> dict[str, list[Spec]]:
    """Family name → its specs, the family's own rule first, in registration order."""
    out: dict[str, list[Spec]] = {}
    for spec in rules():
        out.setdefault(spec.family, []).append(spec)
    for name, specs in out.items():
        specs.sort(key=lambda s: s.name != name)
    return out


def family_title(specs: Sequence[Spec]) -> str:
    """The class name the family's rule mirrors (``torch.optim.AdamW`` → ``AdamW``)."""
    return specs[0].mirrors.split("(")[0].strip().rsplit(".", 1)[-1]


def anchor(name: str) -> str:
    """The HTML id of a spec's section: ``adamw:paper`` → ``adamw-paper``."""
    return name.replace(":", "-")


def rule_link(name: str, prefix: str = "") -> str:
    """A Markdown link to a spec's section, relative to ``prefix`` (e.g. ``rules/``)."""
    spec = next(s for s in rules() if s.name == name)
    target = f"{prefix}{spec.family}.md"
    return f"[`{name}`]({target}#{anchor(name)})" if name != spec.family else f"[`{name}`]({target})"


def _rows(lines: Sequence[Line]) -> list[str]:
    """Each line as one row of an ``aligned`` block (the printers' own LaTeX)."""
    return [latex_lines([line], why=False).splitlines()[1] for line in lines]


def _aligned(rows: Sequence[str]) -> list[str]:
    return ["$$", "\\begin{aligned}", " \\\\\n".join(rows), "\\end{aligned}", "$$", ""]


def _hyper_table(spec: Spec) -> list[str]:
    program = spec.program()
    order = list(spec.defaults)
    out = ["| symbol | torch keyword | domain | default | meaning |", "|---|---|---|---|---|"]
    for h in sorted(program.hypers, key=lambda h: (order.index(h.keyword), h.index or 0)):
        default = spec.defaults.get(h.keyword)
        if h.index is not None and default is not None:
            default = default[h.index]
        domain = sp.pretty(h.domain, use_unicode=True)
        out.append(f"| ${sp.latex(h.symbol)}$ | `{h.key}` | {domain} | `{default!r}` | "
                   f"{h.meaning} |")
    flags = [f for f in spec.flags]
    if flags:
        out += ["", "Structural flags (keywords that change the program): "
                + ", ".join(f"`{f}` (default `{spec.defaults[f]}`)" for f in flags) + "."]
    return out + [""]


def _state_table(spec: Spec) -> list[str]:
    program = spec.program()
    out = ["| torch state key | symbol | initial value | meaning |", "|---|---|---|---|"]
    for s in program.states:
        kept = "" if s.exists == sp.true else f" (kept only when ${sp.latex(s.exists)}$)"
        scope = " (one value per tensor)" if s.per_step else ""
        out.append(f"| `{s.key}` | ${sp.latex(s.new)}$ | ${sp.latex(s.init)}$ | "
                   f"{s.meaning}{scope}{kept} |")
    return out + [""]


def _diff(base: Spec, other: Spec) -> list[str]:
    """The lines of ``other``'s program that differ from ``base``'s, as display math."""
    a, b = _rows(base.program().lines), _rows(other.program().lines)
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if op in ("replace", "delete"):
            out += [f"`{base.name}` has (lines {i1 + 1}–{i2} of {len(a)}):" if i2 - i1 > 1
                    else f"`{base.name}` has (line {i1 + 1} of {len(a)}):", ""]
            out += _aligned(a[i1:i2])
        if op in ("replace", "insert"):
            lead = "where" if op == "replace" else f"after line {i1} of `{base.name}`,"
            out += [f"{lead} `{other.name}` has:", ""]
            out += _aligned(b[j1:j2])
        if op == "delete":
            out += [f"which `{other.name}` does not have.", ""]
    if not out:
        out = [f"The programs of `{base.name}` and `{other.name}` are the same line for line "
               "(only the defaults or the keywords differ).", ""]
    out += _default_diff(base, other)
    return out


def _default_diff(base: Spec, other: Spec) -> list[str]:
    items = []
    for key in other.defaults:
        if key not in base.defaults:
            items.append(f"`{key}` (default `{other.defaults[key]!r}`) is a keyword of "
                         f"`{other.name}` only")
        elif other.defaults[key] != base.defaults[key]:
            items.append(f"default `{key}`: `{base.defaults[key]!r}` in `{base.name}`, "
                         f"`{other.defaults[key]!r}` in `{other.name}`")
    items += [f"`{key}` is a keyword of `{base.name}` only" for key in base.defaults
              if key not in other.defaults]
    return (["Keywords and defaults:", ""] + [f"- {item}" for item in items] + [""]) if items else []


def _spec_section(spec: Spec, base: Spec | None) -> list[str]:
    program = spec.program()
    role = "" if base is None else " — variant"
    out = [f"## `{spec.name}`{role} {{#{anchor(spec.name)}}}", "",
           f"{spec.summary}. Mirrors `{spec.mirrors}`.", ""]
    if base is not None:
        out += [f"### How it differs from `{base.name}`", ""] + _diff(base, spec)
    out += ["### Update", "", "One step, lines executed in order (θₜ₋₁ the parameter entering "
            "the step, gₜ its gradient, t = 1, 2, … the step count):", ""]
    out += _aligned(_rows(program.lines))
    for flag, lines in flag_changes(spec).items():
        if lines:
            out += [f"With `{flag}={not spec.defaults[flag]}` these lines replace or join "
                    "the ones above:", ""] + _aligned(_rows(lines))
    out += ["### Hyperparameters", ""] + _hyper_table(spec)
    out += ["### State", ""] + _state_table(spec)
    out += ["### Sources", ""] + [f"- {source}" for source in spec.sources] + [""]
    if spec.notes:
        out += ["!!! note", "", f"    {spec.notes}", ""]
    return out


def family_pages() -> dict[str, str]:
    """``rules/<family>.md`` → page text, for every family."""
    fams = families()
    pages = {}
    for family, specs in fams.items():
        base = specs[0]
        title = family_title(specs)
        out = ["<!-- generated by `optproof docs` from the specs in optproof.derivations; "
               "edit the specs or optproof/docgen, not this file -->", "", f"# {title}", ""]
        if len(specs) > 1:
            out += ["| rule | convention | mirrors |", "|---|---|---|"]
            out += [f"| [`{s.name}`](#{anchor(s.name)}) | {s.summary} | `{s.mirrors}` |"
                    for s in specs]
            out += [""]
        for i, spec in enumerate(specs):
            out += _spec_section(spec, None if i == 0 else base)
        related = RELATED.get(family)
        if related in fams:
            other = fams[related][0]
            out += [f"## `{base.name}` compared with `{other.name}` {{#vs-{anchor(other.name)}}}",
                    "", f"The lines where [`{other.name}`]({related}.md) and `{base.name}` "
                    "differ:", ""] + _diff(other, base)
        pages[f"rules/{family}.md"] = "\n".join(out).rstrip("\n") + "\n"
    return pages


def rules_index() -> str:
    """``rules/index.md``: every rule and variant, with its family page."""
    out = ["<!-- generated by `optproof docs` from the specs; edit them, not this file -->", "",
           "# Rules", "",
           "Every update rule and every framework variant, each generated from its spec "
           "(`optproof show --list` prints the same list). A family page shows the torch "
           "rule first and, for each variant, the lines that differ from it.", "",
           "| rule | convention | mirrors | sources |", "|---|---|---|---|"]
    for spec in rules():
        out.append(f"| {rule_link(spec.name)} | {spec.summary} | `{spec.mirrors}` | "
                   f"{'; '.join(spec.sources)} |")
    return "\n".join(out) + "\n"
