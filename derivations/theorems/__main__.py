"""``python -m optproof.derivations.theorems``: regenerate docs/theorems/*.md."""

from . import DOCS, render_docs

DOCS.mkdir(parents=True, exist_ok=True)
for name, text in render_docs().items():
    (DOCS / name).write_text(text, encoding="utf-8")
    print(DOCS / name)
