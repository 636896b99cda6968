"""How long ``optproof derive NAME --steps K`` takes, per theorem, as K grows.

    python bench/derive_steps.py [--budget S] [--names a,b] [--json FILE]

Each (theorem, K, command) runs in a fresh process, as the command would but without its
limit: ``derive NAME --steps K`` (``render``, which proves every claim symbolically) and
``derive --check NAME --steps K`` (``prove``: the proofs and the numeric checks), for
K = 1, 2, 3, 4, 6, 8, … until a run takes longer than ``--budget`` seconds (it is stopped
there) or K reaches ``--max-k``. The largest K that ran within the budget, per theorem, is what
``MAX_STEPS`` in ``optproof/cli.py`` allows; the table this prints is recorded in
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


#: one derivation in a fresh process: argv = theorem name, K, "render" or "prove"
_ONE = ("import sys\n"
        "from optproof.derivations.theorems import prove, render, theorem\n"
        "name, k, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
        "render(theorem(name), 'unicode', k) if what == 'render' else prove(theorem(name), k)")


def _seconds(name: str, k: int, what: str, budget: float) -> float | None:
    """Wall time of one derivation in a fresh process, None if over ``budget``
    (a derivation that fails raises)."""
    start = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-c", _ONE, name, str(k), what], check=True,
                       timeout=budget)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def main() -> None:
    from optproof.derivations.theorems import theorems

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--names", default="", help="comma-separated theorem names")
    parser.add_argument("--what", default="render,prove", help="render, prove or both")
    parser.add_argument("--max-k", type=int, default=40, help="stop at this K")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    chosen = [th for th in theorems() if th.uses_steps
              and (not args.names or th.name in args.names.split(","))]
    rows = []
    for th in chosen:
        for what in args.what.split(","):
            k = 1
            while True:
                took = _seconds(th.name, k, what, args.budget)
                rows.append({"theorem": th.name, "what": what, "k": k, "seconds": took})
                print(f"{th.name:32s} {what:6s} K={k:3d} "
                      f"{'over budget' if took is None else f'{took:7.1f} s'}", flush=True)
                if took is None or k >= args.max_k:
                    break
                k += 1 if k < 4 else 2
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
