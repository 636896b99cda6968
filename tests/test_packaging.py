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
