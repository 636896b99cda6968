"""The fused CPU kernels' one-off compile says so, and where the cache lives.

torch's compile of the extension is replaced by a stand-in: what is checked is what optproof
prints around it, not the compiler.
"""

import torch.utils.cpp_extension

from optproof.torch_impl.fused import cpu


def _fake_compiler(monkeypatch, capsys):
    calls = []

    def load(**kwargs):
        calls.append((kwargs, capsys.readouterr().err))  # what was printed before the build
        return "module"

    monkeypatch.setattr(torch.utils.cpp_extension, "load", load)
    return calls


def test_a_compile_prints_one_line_naming_the_cache_folder(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    calls = _fake_compiler(monkeypatch, capsys)
    assert cpu.build() == "module"
    (kwargs, printed), = calls
    folder = tmp_path / cpu.module_name()
    assert kwargs["build_directory"] == str(folder)
    assert printed.count("\n") == 1 and "compiling the fused CPU kernels" in printed
    assert str(folder) in printed
    assert capsys.readouterr().out == ""


def test_a_cache_hit_is_silent(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    name = cpu.module_name()
    (tmp_path / name).mkdir()
    (tmp_path / name / f"{name}.so").touch()
    calls = _fake_compiler(monkeypatch, capsys)
    cpu.build()
    (kwargs, printed), = calls
    assert printed == "" and kwargs["build_directory"] == str(tmp_path / name)
