"""The audit's evaluator (one step, any inputs, per-tensor step numbers) against the
reference's ``bounded_run``: same exact values, same bounds, over trajectories of several
rules. The audit reuses the reference's rounding model; this pins the two together."""

import random

import mpmath
import pytest

from optproof.audit.configs import Config
from optproof.audit.evaluate import Hypothesis, bounded_step, exact_inputs, prepare
from optproof.derivations import rule
from optproof.reference import bounded_run

CASES = [
    ("adamw", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("nadam", {"lr": 0.01, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.1}),
    ("adadelta", {"lr": 1.0}),
    ("adam:eps-hat", {"lr": 0.01}),
    ("sgd:sutskever", {"lr": 0.1, "momentum": 0.9}),
]


@pytest.mark.parametrize("name,hyper", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bounded_step_equals_bounded_run(name, hyper, dtype):
    rng = random.Random(1)
    n, steps = 4, 3
    params = [rng.uniform(-1, 1) for _ in range(n)]
    grads = [[rng.uniform(-1, 1) for _ in range(n)] for _ in range(steps)]
    ref = bounded_run(name, hyper, params, grads, dtype, dps=30)
    prep = prepare(Hypothesis(name, rule(name)), Config("x", "", dict(hyper)),
                   [hyper["lr"]] * steps, base_defaults=rule(name).defaults)
    carried = {"param": exact_inputs(params)}
    tiny = mpmath.mpf(10) ** -25
    for k in range(steps):
        out = bounded_step(prep, k, [{"t": k + 1, "grad": grads[k], **carried}], dtype)[0]
        carried = out
        for key, expected in ref[k].items():
            if key == "step":
                continue
            ours = out[key] if isinstance(out[key], list) else [out[key]]
            theirs = expected if isinstance(expected, list) else [expected]
            for (x1, e1), b in zip(theirs, ours):
                x2, e2 = b[0], b[1]
                assert abs(x1 - x2) <= abs(x1) * tiny, (key, k, x1, x2)
                assert (mpmath.isinf(e1) and mpmath.isinf(e2)) or \
                    abs(e1 - e2) <= abs(e1) * mpmath.mpf("1e-9") + tiny, (key, k, e1, e2)
