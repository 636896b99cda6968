"""``optproof show``'s output is rendered from the specs' expressions, in every format."""

import pytest
import sympy as sp

from optproof.derivations import rules
from optproof.derivations.printers import FORMATS, flag_changes, render, unicode_lines


@pytest.mark.parametrize("spec", rules(), ids=lambda s: s.name)
def test_latex_shows_every_line_of_the_program(spec):
    text = render(spec, "latex")
    for line in spec.program().lines:
        assert f"{sp.latex(line.target)} &\\leftarrow {sp.latex(line.expr)}" in text
    for lines in flag_changes(spec).values():
        for line in lines:
            assert sp.latex(line.expr) in text


@pytest.mark.parametrize("spec", rules(), ids=lambda s: s.name)
def test_unicode_and_markdown_come_from_the_same_program(spec):
    program = spec.program()
    assert unicode_lines(program.lines) in render(spec, "unicode")
    markdown = render(spec, "markdown")
    for line in program.lines:
        assert sp.latex(line.expr) in markdown
    for h in program.hypers:
        assert f"`{h.key}`" in markdown
    for state in program.states:
        assert f"`{state.key}`" in markdown
    for source in spec.sources:
        assert source in markdown


def test_flag_changes_show_the_lines_a_flag_adds():
    from optproof.derivations import rule

    changes = flag_changes(rule("adam"))
    assert [str(line.target) for line in changes["maximize"]] == ["g_t"]
    assert "vtilde_t" in {str(line.target) for line in changes["amsgrad"]}


def test_unknown_format_is_rejected():
    from optproof.derivations import rule

    with pytest.raises(ValueError, match="format must be one of"):
        render(rule("adam"), "html")
    assert set(FORMATS) == {"unicode", "latex", "markdown"}
