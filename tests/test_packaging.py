"""The distribution ships every package of the repository (an editable install hides a gap)."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {name: ROOT / folder for name, folder in config["package-dir"].items()}
    on_disk = set()
    for name, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            on_disk.add(".".join((name, *relative)))
    assert on_disk == set(config["packages"])


def _torch_requirement() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch,) = [d for d in dependencies if d.startswith("torch")]
    return torch


def test_the_declared_torch_range_is_the_one_the_tests_verify():
    """The suite checks bitwise equality with the installed torch.optim: the declared range is
    one minor version, the installed torch lies in it, and the README and torch_impl name it."""
    import torch
    from packaging.requirements import Requirement
    from packaging.version import Version

    declared = _torch_requirement()
    requirement = Requirement(declared)
    installed = Version(torch.__version__).base_version  # 2.13.0+cpu → 2.13.0
    assert requirement.specifier.contains(installed), (str(requirement), torch.__version__)
    verified = Version(installed)
    minor = f"{verified.major}.{verified.minor}"
    assert not requirement.specifier.contains(f"{verified.major}.{verified.minor + 1}.0")
    assert not requirement.specifier.contains(f"{verified.major}.{verified.minor - 1}.0")
    readme = (ROOT / "README.md").read_text()
    assert f"`{declared}`" in readme and f"torch.optim **{minor}**" in readme
    import optproof.torch_impl
    assert f"torch.optim {minor} classes" in " ".join(optproof.torch_impl.__doc__.split())


def test_the_subpackages_import_from_the_tree_root_without_the_editable_finder():
    """With a non-editable install, Python run from the repository root imports the tree's
    ``optproof/`` folder (the current directory comes first on sys.path): its subpackages
    must resolve there too, to the tree's folders, without the editable install's finder."""
    import subprocess
    import sys

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {name: folder for name, folder in config["package-dir"].items() if "." in name}
    code = ("import importlib, sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
            "for name in sys.argv[1:]:\n"
            "    print(importlib.import_module(name).__file__)\n")
    done = subprocess.run([sys.executable, "-c", code, *mapped], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    files = [Path(line) for line in done.stdout.splitlines()]
    assert files == [ROOT / folder / "__init__.py" for folder in mapped.values()]
