"""Measure the low-bit optimizers against the quantized-state oracle (when installed).

    python tests/measure_quantized.py

For bitsandbytes' CPU 8-bit AdamW8bit/Adam8bit and torchao's AdamW8bit/AdamW4bit/AdamWFp8,
over several sizes and steps, one line per checked step: the parameter's worst error and
bound in ULPs, failures per output, the fraction of codes that are the nearest code of the
exact new state, and (bitsandbytes) how many codes exact nearest rounding rejects where the
CPU table's resolution accepts them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from optproof.reference.quantized import Quantizer, check_quantized_step  # noqa: E402
from test_quantized import EXACT32, HYPER, _bnb_step, _torchao_step  # noqa: E402


def _line(name: str, report, seconds: float) -> str:
    parts = []
    for key, c in report.checks.items():
        text = f"{key} {c.failed}/{c.checked}"
        if key.startswith("code:") and c.checked:
            text += f" nearest {c.nearest / c.checked:.4f}"
        elif not key.startswith("scale:"):
            text += f" worst {c.worst_ulps:.3g} ulp (bound {c.bound_ulps:.3g})"
        parts.append(text)
    parts += [f"stochastic {k}: {s.describe()}" for k, s in report.stochastic.items()]
    return f"{name} [{seconds:.0f}s]: " + "; ".join(parts)


def _strict(state):
    """The same codes read under exact nearest rounding (no table resolution)."""
    if not hasattr(state, "quantizer"):
        return state
    return dataclasses.replace(state, quantizer=dataclasses.replace(state.quantizer, resolution=0.0))


def bitsandbytes() -> None:
    for cls_name in ("AdamW8bit", "Adam8bit"):
        for n, min_size in ((600, 0), (300, 4096), (4352, 4096)):
            for steps in (1, 3, 10):
                start = time.time()
                before, after, grads = _bnb_step(cls_name, n, HYPER, steps,
                                                 Quantizer.bitsandbytes_cpu, min_8bit_size=min_size)
                report = check_quantized_step("adamw", HYPER, before, after, grads)
                strict = check_quantized_step("adamw", HYPER,
                                              {k: _strict(v) for k, v in before.items()},
                                              {k: _strict(v) for k, v in after.items()}, grads)
                rejected = {k: c.failed for k, c in strict.checks.items() if k.startswith("code:")}
                print(_line(f"bitsandbytes {cls_name} n={n} min_8bit_size={min_size} step {steps}",
                            report, time.time() - start) + f"; exact-nearest rejects {rejected}",
                      flush=True)


def torchao() -> None:
    for cls_name in ("AdamW8bit", "AdamW4bit", "AdamWFp8"):
        for label, hyper in (("float32-exact hyper", EXACT32), ("lr 1e-2, betas 0.9/0.999", HYPER)):
            for steps in (1, 2, 5):
                start = time.time()
                before, after, grads = _torchao_step(cls_name, hyper, steps)
                report = check_quantized_step("adamw", hyper, before, after, grads)
                print(_line(f"torchao {cls_name} {label} step {steps}", report, time.time() - start),
                      flush=True)
    import torch
    start = time.time()
    before, after, grads = _torchao_step("AdamW8bit", EXACT32, 2, torch.bfloat16,
                                         bf16_stochastic_round=True)
    report = check_quantized_step("adamw", EXACT32, before, after, grads,
                                  param_dtype="bfloat16", param_rounding="stochastic")
    print(_line("torchao AdamW8bit bf16_stochastic_round step 2", report, time.time() - start))


if __name__ == "__main__":
    if importlib.util.find_spec("bitsandbytes"):
        bitsandbytes()
    if importlib.util.find_spec("torchao"):
        torchao()
