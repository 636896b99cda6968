"""``bench/gpu_checks.sh``, the one script of every CUDA check: it parses, and what it calls
exists (it runs for real only on a GPU machine; ``--dry-run`` collects its tests)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_checks.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_what_it_calls_exists():
    text = SCRIPT.read_text()
    assert "pytest.mark.cuda" in (ROOT / "tests" / "conftest.py").read_text()
    assert "-m cuda tests" in text
    assert "-k triton tests/test_fused.py" in text
    assert re.search(r"def test_triton\w+", (ROOT / "tests" / "test_fused.py").read_text())
    assert "bench/run.py --quick --device cuda" in text
    assert "copy_bandwidth" in (ROOT / "bench" / "run.py").read_text()
    limits = [int(v) for v in re.findall(r"^LIMIT_\w+=(\d+)$", text, re.M)]
    assert len(limits) == 3 and sum(limits) < 8 * 60  # the phases' limits: under 8 minutes
