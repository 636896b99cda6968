"""Golden test vectors: ``optproof vectors RULE`` for anyone checking another framework.

For each audit configuration the rule can express (`configs`), the inputs — parameter
tensors, gradients per step, hyperparameters under torch.optim's names, the learning rate
of each step — and the reference outputs after every step (parameters and every state the
rule keeps, under torch's keys), computed by `optproof.reference.run` at ``dps``
significant digits from the exact inputs.

Every number is a decimal string: inputs are doubles written with ``repr`` (they read back
exactly), outputs are the reference rounded to ``dps`` digits. To check a framework, feed the
inputs, run the steps in float64 and compare each output with a tolerance of a few ULPs (or
use optproof's derived bounds: ``optproof.reference.bounded_run``).
"""

from __future__ import annotations

from typing import Any

import mpmath

from optproof.derivations import rule as get_rule

from .configs import configs_for, make_problem
from .evaluate import Hypothesis, prepare
from .families import TORCH_VARIANT, group_of

__all__ = ["vectors"]


def _s(x: Any) -> str:
    return repr(float(x)) if not isinstance(x, mpmath.mpf) else mpmath.nstr(x, mpmath.mp.dps)


def vectors(name: str, *, steps: int = 3, seed: int = 0, dps: int = 30) -> dict[str, Any]:
    """The vectors of rule ``name`` (raises ``ValueError`` for an unknown rule)."""
    from optproof.reference import run
    spec = get_rule(name)
    if dps < 20:
        raise ValueError(f"--dps must be at least 20, got {dps}")
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    group = group_of(spec.name)
    base = dict(get_rule(TORCH_VARIANT.get(spec.family, spec.name)).defaults) \
        if spec.family in TORCH_VARIANT else dict(spec.defaults)
    cases = []
    for index, config in enumerate(configs_for(group)):
        problem = make_problem(config, steps, seed, "float64", index)
        if prepare(Hypothesis(spec.name, spec), config, problem.lrs, base) is None:
            continue
        given = config.constructor_hyper()
        hyper: dict[str, Any] = {}
        for key, default in spec.defaults.items():
            value = given.get(key, base.get(key, default))
            if key == "schedule_multiplier":
                value = [lr / problem.lrs[0] for lr in problem.lrs]
            elif key == "lr":
                value = list(problem.lrs)
            hyper[key] = value
        for flag in spec.flags:
            hyper[flag] = bool(given.get(flag, spec.defaults[flag]))
        outputs: list[dict[str, list]] = [{} for _ in range(steps)]
        with mpmath.workdps(dps):
            for i, p in enumerate(problem.params):
                records = run(spec, hyper, p.reshape(-1).tolist(),
                              [g[i].reshape(-1).tolist() for g in problem.grads], dps=dps)
                for k, record in enumerate(records):
                    for key, value in record.items():
                        if key == "step":
                            continue
                        values = value if isinstance(value, list) else [value]
                        outputs[k].setdefault(key, []).append([_s(v) for v in values])
        cases.append({
            "name": config.name, "exposes": config.purpose,
            "hyper": {k: ([_s(x) for x in v] if isinstance(v, (list, tuple)) else
                          v if isinstance(v, bool) else _s(v)) for k, v in hyper.items()},
            "shapes": [list(s) for s in config.shapes],
            "params": [[_s(x) for x in p.reshape(-1)] for p in problem.params],
            "grads": [[[_s(x) for x in g.reshape(-1)] for g in step] for step in problem.grads],
            "expected": [{"step": k + 1, **outputs[k]} for k in range(steps)],
        })
    from optproof import __version__
    return {
        "rule": spec.name, "summary": spec.summary, "mirrors": spec.mirrors,
        "sources": list(spec.sources), "optproof": __version__, "dps": dps, "seed": seed,
        "steps": steps,
        "format": ("params[i] and grads[k][i] are tensor i flattened row-major (shapes[i]); "
                   "hyper uses torch.optim keyword names, a list giving one value per step; "
                   "expected[k] holds every output after step k + 1: 'param' and each state "
                   "under torch's key, per tensor (a per-tensor scalar as a list of one). "
                   "Inputs are doubles (repr, exact); outputs are the exact result to 'dps' "
                   "significant digits."),
        "cases": cases,
    }
