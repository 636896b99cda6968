"""bench/run.py end to end on a tiny problem: the records it writes and the tables it prints.

Only the shape and the internal consistency of the output are checked here; the timings are
the benchmark's business (never asserted in a test).
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"
KEYS = {"library", "rule", "impl", "dtype", "device", "numel", "tensors", "median_ms", "gbps"}


@pytest.fixture(scope="module")
def sgd_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--device", "cpu", "--rules", "sgd,rmsprop",
         "--sizes", "3x1000", "--dtypes", "float32", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_every_path_of_both_libraries_is_recorded(sgd_run):
    records, _ = sgd_run
    assert all(KEYS <= r.keys() for r in records)
    seen = {(r["rule"], r["library"], r["impl"]) for r in records}
    paths = {"for-loop", "foreach", "fused"}
    assert seen == ({("sgd", lib, p) for lib in ("torch", "optproof") for p in paths}
                    | {("rmsprop", "optproof", p) for p in paths}
                    | {("rmsprop", "torch", p) for p in paths - {"fused"}})
    assert {(r["numel"], r["tensors"], r["dtype"], r["device"]) for r in records} == {
        (1000, 3, "float32", "cpu")}


def test_records_are_consistent(sgd_run):
    records, _ = sgd_run
    # bytes one single pass must move per element, counted by hand: SGD with momentum and
    # RMSprop read θ, g and one state and write θ and the state: 5 float32 accesses
    assert {r["bytes_per_element"] for r in records} == {20}
    for r in records:
        assert r["gbps"] == pytest.approx(20 * 3000 / (r["median_ms"] * 1e-3) / 1e9)
        assert r["steps"] == len(r["times_ms"]) >= 3
        assert r["median_ms"] > 0 and math.isfinite(r["floor_ratio"]) and r["floor_ratio"] > 0
        assert r["stream_fraction"] == pytest.approx(r["gbps"] / r["stream_gbps"])
        assert r["faults_per_step"] >= 0
        lo, hi = r["ratio_ci"]
        assert lo <= r["ratio"] <= hi  # the interval of the median holds the median
    for rule in ("sgd", "rmsprop"):
        torch_ratios = [r["ratio"] for r in records if r["rule"] == rule and r["library"] == "torch"]
        assert 1.0 in torch_ratios  # torch's fastest path (by median), paired with itself
    fused = [r for r in records if r["rule"] == "sgd" and r["impl"] == "fused"]
    assert all(r["ratio_torch_fused"] is not None for r in fused)
    for r in records:  # optproof's for-loop and foreach, each against torch's same path
        same = r["library"] == "optproof" and r["impl"] in ("for-loop", "foreach")
        assert (r["ratio_same_path"] is not None) == same
        if same:
            torch_same = next(t for t in records if t["library"] == "torch"
                              and (t["rule"], t["impl"]) == (r["rule"], r["impl"]))
            assert r["ratio_same_path"] == pytest.approx(statistics.median(
                a / b for a, b in zip(r["times_ms"], torch_same["times_ms"])))
            lo, hi = r["ratio_same_path_ci"]
            assert lo <= r["ratio_same_path"] <= hi


def test_tables_are_printed_with_the_targets(sgd_run):
    _, stdout = sgd_run
    assert "optproof.torch_impl vs torch.optim" in stdout
    assert "float32 CPU targets" in stdout
    assert "≤ 1.00" in stdout and "≤ 0.33" in stdout
    assert "for-loop and foreach: optproof / torch's same path" in stdout


def test_the_records_name_the_kernel_build(sgd_run):
    records, _ = sgd_run
    assert {r["meta"]["fused_cpu_vector_path"] for r in records} <= {
        "avx512-bf16", "avx512", "avx2", "none", None}  # None: no C++ kernel could be built


@pytest.mark.parametrize("argv,message", [
    (["--dtypes", "float32,float8"], "dtypes must be a comma-separated list of float32, bfloat16, float16"),
    (["--rules", "adam,lamb"], "rules must be a comma-separated list of sgd,"),
    (["--sizes", "10x0"], "sizes must be comma-separated TENSORSxNUMEL with positive integers"),
    (["--sizes", "1e6"], "sizes must be comma-separated TENSORSxNUMEL with positive integers"),
    (["--clock", "cpu"], "--clock cpu needs --device cpu"),
])
def test_bad_arguments_are_named_with_their_valid_values(argv, message):
    proc = subprocess.run([sys.executable, str(BENCH), *argv], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_anchors_step_beside_adam(tmp_path):
    """DeepSpeed's CPU Adam and bitsandbytes' CPU paths join the adam/adamw cells when
    installed; every record then carries its ratio to DeepSpeed's fastest path."""
    pytest.importorskip("deepspeed")
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--device", "cpu", "--rules", "adamw,sgd",
         "--sizes", "2x300", "--dtypes", "bfloat16", "--json", str(out)],
        capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    records = json.loads(out.read_text())
    anchors = {(r["library"], r["impl"]) for r in records if r["rule"] == "adamw"} - {
        (lib, p) for lib in ("torch", "optproof") for p in ("for-loop", "foreach", "fused")}
    assert anchors == {("deepspeed", "cpu-adam"), ("deepspeed", "cpu-adam-16bit-state"),
                       ("bitsandbytes", "32bit"), ("bitsandbytes", "8bit")}
    assert all(r["ratio_deepspeed"] is None for r in records if r["rule"] == "sgd")
    adamw = [r for r in records if r["rule"] == "adamw"]
    fastest = min((r for r in adamw if r["library"] == "deepspeed"), key=lambda r: r["median_ms"])
    assert fastest["ratio_deepspeed"] == 1.0  # paired with itself
    for r in adamw:
        lo, hi = r["ratio_deepspeed_ci"]
        assert lo <= r["ratio_deepspeed"] <= hi
    assert "against DeepSpeedCPUAdam" in proc.stdout
