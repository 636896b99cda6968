"""Print the oracle's numbers per rule × class × path × dtype (not collected by pytest).

    python tests/report_oracle.py [-n N] [--check one_step|trajectory|both]
                                  [--only Adam,SGD] [--impl torch|optproof] [--dtype float32]
                                  [--device cpu] [--seed 0] [--json FILE]

For every case it draws N problems from `strategies.problems` (hypothesis, derandomised
with ``--seed``; nothing is shrunk and nothing is asserted), runs them through the kernel and
reports: elements checked, elements without a finite bound, the worst error in ULPs of the
exact value for the parameter and for the state, the median bound in ULPs (how tight the
bound is), the worst err/bound ratio and the number of violations (ratio > 1 or a NaN/Inf
where the exact value and its bound are finite). The worst violation of each case is printed
after the table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import oracle  # noqa: E402
from optproof.testing import strategies  # noqa: E402

STEPS = {"one_step": (1, 4), "trajectory": (5, 8)}


def measure(impl, entry, path, dtype, check, n, seed, device, layouts=strategies.LAYOUTS):
    reports, bound_ulps, errors, skipped = [], [], [], []

    @settings(max_examples=n, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(data=st.data())
    def body(data):
        problem = data.draw(strategies.problems(entry.name, dtype, steps=STEPS[check],
                                                layouts=layouts, **oracle.PROBLEM_SIZE[check]))
        try:
            report = oracle.run_problem(impl, entry, path, problem, check, device)
        except oracle.UnsupportedCase as exc:
            skipped.append(str(exc))
            return
        except Exception as exc:  # a crash is a finding, reported not raised
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        reports.append(report)
        bound_ulps.extend(report.bound_ulps)

    torch.manual_seed(seed)
    body()
    total = oracle.Report()
    for r in reports:
        total.merge(r)
    return total, bound_ulps, errors, skipped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="problems per case")
    parser.add_argument("--check", default="both", choices=["one_step", "trajectory", "both"])
    parser.add_argument("--only", default="", help="comma-separated class names")
    parser.add_argument("--impl", default="", help="torch or optproof (default both)")
    parser.add_argument("--path", default="", help="for-loop, foreach or fused (default all)")
    parser.add_argument("--dtype", default="", help="one dtype (default all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--contiguous", action="store_true",
                        help="contiguous tensors only (to separate layout findings)")
    parser.add_argument("--json", default="", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    names = [n for n in args.only.split(",") if n] or list(oracle.ENTRIES)
    checks = ["one_step", "trajectory"] if args.check == "both" else [args.check]
    rows, worst = [], []
    header = (f"{'rule':10} {'class':9} {'impl':8} {'path':8} {'dtype':8} {'check':10} "
              f"{'checked':>7} {'unbnd':>6} {'ulp(param)':>10} {'ulp(state)':>10} "
              f"{'bound ulp p50':>13} {'err/bound':>9} {'viol':>5} {'s':>5}")
    print(header)
    for name in names:
        entry = oracle.ENTRIES[name]
        for impl in ([args.impl] if args.impl else oracle.IMPLS):
            for path in oracle.paths(impl, entry):
                if args.path and path != args.path:
                    continue
                for dtype in strategies.DTYPES:
                    dname = strategies.DTYPE_NAMES[dtype]
                    if args.dtype and dname != args.dtype:
                        continue
                    for check in checks:
                        t0 = time.time()
                        total, bulps, errors, skipped = measure(
                            impl, entry, path, dtype, check, args.n, args.seed, args.device,
                            ("contiguous",) if args.contiguous else strategies.LAYOUTS)
                        dt = time.time() - t0
                        if skipped and not total.checked:
                            print(f"{entry.rule:10} {name:9} {impl:8} {path:8} {dname:8} "
                                  f"{check:10} skipped: {skipped[0][:90]}")
                            continue
                        state_ulps = max((v for k, v in total.worst_ulps.items()
                                          if k != "param"), default=0.0)
                        row = {
                            "rule": entry.rule, "class": name, "impl": impl, "path": path,
                            "dtype": dname, "check": check, "checked": total.checked,
                            "unbounded": total.unbounded,
                            "ulp_param": total.worst_ulps.get("param", 0.0),
                            "ulp_state": state_ulps,
                            "bound_ulp_p50": statistics.median(bulps) if bulps else math.nan,
                            "worst_ratio": total.worst_ratio,
                            "violations": len(total.violations), "errors": len(errors),
                            "seconds": dt,
                        }
                        rows.append(row)
                        print(f"{entry.rule:10} {name:9} {impl:8} {path:8} {dname:8} "
                              f"{check:10} {row['checked']:7d} {row['unbounded']:6d} "
                              f"{_g(row['ulp_param']):>10} {_g(row['ulp_state']):>10} "
                              f"{_g(row['bound_ulp_p50']):>13} {_g(row['worst_ratio']):>9} "
                              f"{row['violations']:5d} {dt:5.1f}"
                              + (f"  ERRORS {len(errors)}: {errors[0][:120]}" if errors else ""),
                              flush=True)
                        if total.violations:
                            w = max(total.violations, key=lambda e: e.ratio)
                            worst.append(f"[{name} {impl} {path} {dname} {check}] "
                                         + w.describe())
    if worst:
        print("\nworst violation per case:")
        for line in worst:
            print("  " + line)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def _g(x: float) -> str:
    return f"{x:.3g}"


if __name__ == "__main__":
    main()
