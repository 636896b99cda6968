"""MkDocs hooks of the optproof site (``hooks:`` in mkdocs.yml).

* **API sources.** The distribution maps folders at the repository root into the ``optproof``
  namespace (``optproof.derivations`` is ``derivations/``, see ``[tool.setuptools]
  package-dir`` in pyproject.toml). mkdocstrings' static loader (griffe) searches folders, so
  `on_config` builds ``build/api-src/optproof/`` — symbolic links laid out as the
  installed namespace — and mkdocs.yml points the Python handler there.
* **MathJax without network.** `on_files` adds MathJax 3's ``tex-svg.js`` (one
  self-contained file: SVG output needs no web fonts) from the ``django-static-mathjax``
  package (a plain copy of MathJax 3.2.2, installed by ``pip install -e '.[docs]'``) to the
  site as ``assets/mathjax/tex-svg.js``; nothing is fetched when the site is viewed.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

MATHJAX_TARGET = "assets/mathjax/tex-svg.js"


def _package_dirs(root: Path) -> dict[str, str]:
    """``[tool.setuptools] package-dir`` of pyproject.toml (module name → folder)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: ask the import system where the subpackages are
        mapping = {"optproof": "optproof"}
        for name in ("derivations", "reference", "torch_impl", "audit", "testing"):
            spec = importlib.util.find_spec(f"optproof.{name}")
            if spec and spec.submodule_search_locations:
                mapping[f"optproof.{name}"] = list(spec.submodule_search_locations)[0]
        return mapping
    config = tomllib.loads((root / "pyproject.toml").read_text())
    return dict(config["tool"]["setuptools"].get("package-dir", {}))


def build_api_sources(root: Path, out: Path) -> Path:
    """Lay the ``optproof`` namespace out under ``out`` as symbolic links into ``root``."""
    if out.exists():
        shutil.rmtree(out)
    mapping = _package_dirs(root)
    top = root / mapping.get("optproof", "optproof")
    package = out / "optproof"
    package.mkdir(parents=True)
    for entry in top.iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry.resolve())
    for name, folder in mapping.items():
        parts = name.split(".")
        if parts[0] != "optproof" or len(parts) == 1:
            continue
        link = out.joinpath(*parts)
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((root / folder).resolve())
    return out


@event_priority(100)  # before mkdocstrings' on_config, which keeps only existing paths
def on_config(config, **kwargs):
    root = Path(config.config_file_path).resolve().parent
    build_api_sources(root, root / "build" / "api-src")
    return config


def mathjax_source() -> Path:
    """The installed MathJax 3 ``tex-svg.js``."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise PluginError("MathJax is not installed: pip install -e '.[docs]' "
                          "(it brings django-static-mathjax, a copy of MathJax 3)")
    for location in spec.submodule_search_locations:
        path = Path(location) / "static" / "mathjax" / "es5" / "tex-svg.js"
        if path.is_file():
            return path
    raise PluginError("the installed mathjax package has no static/mathjax/es5/tex-svg.js")


def on_files(files: Files, config, **kwargs) -> Files:
    files.append(File.generated(config, MATHJAX_TARGET, abs_src_path=str(mathjax_source())))
    return files
