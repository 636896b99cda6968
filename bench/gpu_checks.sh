#!/usr/bin/env bash
# Every CUDA check of optproof in one run, under 8 minutes on one H100/H200:
#
#   1. the environment (nvidia-smi, torch, triton) and the fused CPU kernels built once
#      (the Triton tests compare with them);
#   2. `pytest -m cuda` (the oracle and torch conformance tests on the "cuda" device) and
#      the Triton kernel tests of tests/test_fused.py (on the GPU, not Triton's CPU
#      interpreter), under the `ci` hypothesis profile, in parallel shards: the oracle's
#      reference runs in mpmath on the host, one core per shard;
#   3. `bench/run.py --quick --device cuda`: every path against torch.optim as ratios, with
#      the device-to-device copy bandwidth and each kernel's fraction of it.
#
# Usage (from the repository root, with optproof installed in the Python on PATH):
#
#   bash bench/gpu_checks.sh            # on a machine with a CUDA device
#   bash bench/gpu_checks.sh --dry-run  # anywhere: checks the selection and the commands
#
# Outputs go to $OUT if it is set (the device tool's folder), else ./gpu-checks: env.txt,
# one junit XML and log per pytest shard, bench.json and bench.txt, and summary.txt (one
# line per phase: its exit status and seconds). Each phase has its own time limit
# (PHASE_LIMITS below; 455 s together) and the script exits non-zero if any phase failed or
# ran out of time. Without a CUDA device (or with --dry-run) nothing is built or measured:
# the pytest phase only collects its tests (it fails if it selects none) and the benchmark
# only parses its arguments.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-checks}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python}"
#: seconds per phase: environment + fused CPU build, tests, benchmark
LIMIT_BUILD=90
LIMIT_TESTS=210
LIMIT_BENCH=150
SHARDS="${SHARDS:-$(( $(nproc) < 12 ? $(nproc) : 12 ))}"

DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_checks: no CUDA device: dry run (nothing is measured)" >&2
    DRY_RUN=1
fi
export HYPOTHESIS_PROFILE=ci

: > "$OUT/summary.txt"
export OUT PYTHON SHARDS DRY_RUN
FAILED=0
phase() {  # phase NAME LIMIT FUNCTION: run under a time limit (the function's children
           # too: timeout signals its whole process group), record its status and seconds
    local name=$1 limit=$2 start rc
    start=$(date +%s)
    timeout --signal=INT --kill-after=10 "$limit" bash -c "$3"
    rc=$?
    echo "$name rc=$rc seconds=$(( $(date +%s) - start ))$([[ $rc == 124 ]] && echo ' (time limit)')" \
        | tee -a "$OUT/summary.txt"
    [[ $rc == 0 ]] || FAILED=1
}

# --- 1. environment and the fused CPU kernels -------------------------------------------
environment() {
    { nvidia-smi 2>&1 || echo "nvidia-smi: not available"
      "$PYTHON" -c "
import platform, torch
print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda,
      'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)
try:
    import triton
    print('triton', triton.__version__)
except ImportError as error:
    print('triton: not installed:', error)"
    } > "$OUT/env.txt"
    if (( DRY_RUN )); then
        "$PYTHON" -c "from optproof.torch_impl.fused import cpu; print(cpu.module_name())"
    else
        "$PYTHON" -c "from optproof.torch_impl.fused import cpu; assert cpu.load(), 'no fused CPU build'"
    fi
}

# --- 2. pytest -m cuda and the Triton kernel tests, in parallel shards ---------------------
tests() {
    { "$PYTHON" -m pytest -q -p no:cacheprovider --collect-only -m cuda tests
      "$PYTHON" -m pytest -q -p no:cacheprovider --collect-only -k triton tests/test_fused.py
    } | grep '::' > "$OUT/tests.txt"
    echo "gpu_checks: $(wc -l < "$OUT/tests.txt") tests, $SHARDS shards" >&2
    [[ -s "$OUT/tests.txt" ]] || { echo "gpu_checks: no test selected" >&2; return 1; }
    (( DRY_RUN )) && return 0
    local pids=() i rc=0
    for (( i = 0; i < SHARDS; i++ )); do
        awk -v n="$SHARDS" -v i="$i" 'NR % n == i' "$OUT/tests.txt" > "$OUT/shard-$i.txt"
        [[ -s "$OUT/shard-$i.txt" ]] || continue
        local ids=()
        mapfile -t ids < "$OUT/shard-$i.txt"  # one node id per line (some hold spaces)
        "$PYTHON" -m pytest -q -p no:cacheprovider -rfE --junitxml="$OUT/shard-$i.xml" \
            "${ids[@]}" > "$OUT/shard-$i.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || rc=1
    done
    tail -q -n 1 "$OUT"/shard-*.log >&2
    return $rc
}

# --- 3. the benchmark on CUDA, with the copy bandwidth --------------------------------------
bench() {
    if (( DRY_RUN )); then
        "$PYTHON" bench/run.py --help > /dev/null
        return
    fi
    "$PYTHON" bench/run.py --quick --device cuda --json "$OUT/bench.json" > "$OUT/bench.txt"
}

export -f environment tests bench
phase environment+fused-build "$LIMIT_BUILD" environment
phase tests "$LIMIT_TESTS" tests
phase bench "$LIMIT_BENCH" bench
(( DRY_RUN )) && echo "dry run: selection and commands checked, nothing measured" \
    | tee -a "$OUT/summary.txt"
exit $FAILED
