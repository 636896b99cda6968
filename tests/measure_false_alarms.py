"""Measure the auditor's false-alarm rate: faithful optimizers audited over many seeds.

    python tests/measure_false_alarms.py [SEEDS] [--dtype float32]

A false alarm is a verdict other than "conformant" for an optimizer that implements its rule
faithfully (an algebraic rearrangement or another code path). Prints one line per
(target, seed) that alarms and the rate per target.
"""

from __future__ import annotations

import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from optproof.audit.auditor import audit  # noqa: E402
from optproof.audit.target import load_target  # noqa: E402

TARGETS = [
    ("faulty_optimizers.HandAdam", "adam", {}),
    ("faulty_optimizers.CapturableFormAdamW", "adamw", {}),
    ("faulty_optimizers.HandSGD", "sgd", {}),
    ("torch.optim.Adam", None, {"foreach": True}),
    ("torch.optim.AdamW", None, {"foreach": True}),
    ("torch.optim.SGD", None, {"foreach": True}),
    ("torch.optim.RMSprop", None, {"foreach": True}),
    ("optproof.torch_impl.AdamW", None, {}),
    ("optproof.torch_impl.Adam", None, {"foreach": True}),
    ("optproof.torch_impl.SGD", None, {}),
    ("optproof.torch_impl.Adagrad", None, {}),
    ("optproof.torch_impl.Adadelta", None, {}),
    ("optproof.torch_impl.RMSprop", None, {}),
]


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 50
    dtype = sys.argv[sys.argv.index("--dtype") + 1] if "--dtype" in sys.argv else "float32"
    total = alarms = 0
    start = time.perf_counter()
    for path, rule, extra in TARGETS:
        mine = 0
        for seed in range(seeds):
            result = audit(load_target(path, extra=dict(extra)), rule=rule, seed=seed,
                           dtype=dtype, steps=5)
            total += 1
            if result.verdict != "conformant":
                mine += 1
                alarms += 1
                print(f"ALARM {path} {extra} seed {seed}: {' | '.join(result.diagnosis)[:300]}",
                      flush=True)
        print(f"{path} {extra or ''}: {mine}/{seeds} false alarms", flush=True)
    print(f"TOTAL {alarms}/{total} audits alarmed ({100 * alarms / total:.2f}%), "
          f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
