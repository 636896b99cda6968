"""The audit: drive a target, compare it with every variant of its rule, classify, explain.

Verdict (exit status of ``optproof audit``):

* **conformant** (0) — the expected variant (``--rule``, the adapter's declared variant, or
  the torch.optim variant the class name names) reproduces every step of every configuration
  the target ran, within the derived bound, and no experiment failed;
* **deviation** (1) — otherwise: the report says which registered variant reproduces the
  target instead (its conventions then differ from the expected ones on the named axes), or
  which probe (a named fault, `probes`) does, or that none does and which came closest;
  a target that raised, returned NaN where the reference is finite or timed out is a
  deviation with that message.

Usage errors (exit 2) — an unimportable target, an unknown rule, a rule the class name does
not name and ``--rule`` does not give — raise `AuditUsageError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from optproof.derivations import rule as get_rule

from . import drive as driving
from .compare import HypothesisResult, compare
from .configs import Config, configs_for
from .conventions import AXES, conventions_of, differences
from .evaluate import Hypothesis
from .families import TORCH_VARIANT, group_of, infer_rule, variants
from .probes import probes_for, structural_probes
from .target import Target, TargetError, load_target

__all__ = ["AuditUsageError", "AuditResult", "audit", "DTYPES"]

DTYPES = ("float32", "float64", "bfloat16", "float16")

#: the configuration whose run is saved and resumed by the checkpoint experiment
CHECKPOINT_CONFIG = {"adam": "amsgrad-decay", "sgd": "decay-schedule", "adagrad": "lr-decay",
                     "adadelta": "decay-schedule", "rmsprop": "maximize",
                     "nadam": "decay-schedule"}
PRECISION_ORDER = {"float64": 3, "float32": 2, "bfloat16": 1, "float16": 1}


class AuditUsageError(Exception):
    """A usage error: reported in one line, exit status 2."""


@dataclass
class AuditResult:
    """Everything an audit found (``report``, ``serialize`` and ``plot`` render it)."""

    target: str
    framework: str
    dtype: str
    device: str
    seed: int
    steps: int
    expected: str
    inference: str
    group: str
    configs: list[Config]
    observations: list[driving.ConfigObs]
    variants: dict[str, HypothesisResult]
    probes: dict[str, HypothesisResult] = field(default_factory=dict)
    experiments: list[driving.Experiment] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    verdict: str = "deviation"
    best: str | None = None
    best_kind: str = "variant"
    diagnosis: list[str] = field(default_factory=list)
    conventions: list[tuple[str, str, str]] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "conformant" else 1

    @property
    def expected_result(self) -> HypothesisResult:
        return self.variants[self.expected]

    def hypothesis(self, name: str | None) -> HypothesisResult | None:
        if name is None:
            return None
        return self.variants.get(name) or self.probes.get(name)

    @property
    def first_divergence(self):
        return self.expected_result.first


def _choose_rule(target: Target, rule: str | None) -> tuple[str, str]:
    if rule is not None:
        try:
            spec = get_rule(rule)
        except ValueError as error:
            raise AuditUsageError(str(error)) from None
        return spec.name, f"rule {spec.name!r} given with --rule"
    declared = target.adapter.expected()
    if declared:
        return declared, (f"rule inferred from {target.adapter.framework}'s "
                          f"{target.name}: {declared} (its documented convention)")
    inferred = infer_rule(target.class_names)
    if inferred is None:
        raise AuditUsageError(f"cannot infer the rule of {target.path!r} from its class name "
                              f"{target.name!r}; pass --rule (e.g. --rule adamw)")
    named = next(n for n in target.class_names if infer_rule([n]) == inferred)
    return inferred, (f"rule inferred from the class name {named!r}: {inferred} "
                      f"(torch.optim semantics; pass --rule to choose another)")


def audit(target: str | Target, *, rule: str | None = None, steps: int = 5, dtype: str = "float32",
          device: str = "cpu", seed: int = 0, timeout: float | None = 60.0,
          extra: Mapping[str, Any] | None = None, full: bool = False,
          progress: Callable[[str, int], None] | None = None) -> AuditResult:
    """Audit ``target`` (an import path or a loaded `Target`).

    ``extra`` are keywords added to every construction (``{"foreach": True}``);
    ``progress(description, total)`` is called before each unit of work; ``full`` evaluates
    every step of every configuration even after a hypothesis diverged (for the plot).
    """
    start = time.perf_counter()
    if dtype not in DTYPES:
        raise AuditUsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if steps < 1:
        raise AuditUsageError(f"--steps must be at least 1, got {steps}")
    if device != "cpu":
        import torch
        try:
            torch.empty(0, device=device)
        except Exception as error:  # noqa: BLE001
            raise AuditUsageError(f"device {device!r} is not available: {error}") from None
    if isinstance(target, str):
        try:
            target = load_target(target, extra=dict(extra or {}))
        except TargetError as error:
            raise AuditUsageError(str(error)) from None
    expected, inference = _choose_rule(target, rule)
    group = group_of(expected)
    configs = list(configs_for(group))
    specs = variants(group)
    family = get_rule(expected).family
    base = dict(get_rule(TORCH_VARIANT.get(family, expected)).defaults)
    hypotheses = [Hypothesis(s.name, s, conventions=conventions_of(s.name)) for s in specs]
    total = len(configs) + len(hypotheses) + 2

    def tick(what: str):
        if progress:
            progress(what, total)

    observations = []
    for index, config in enumerate(configs):
        tick(f"driving {config.name}")
        problem = driving.make_problem(config, steps, seed, dtype, index)
        if driving.timed_out(observations):
            obs = driving.ConfigObs(config, problem)
            obs.skipped = "not run: the target timed out in an earlier configuration"
            observations.append(obs)
            continue
        observations.append(driving.run_config(target.adapter, config, problem, base, dtype,
                                               device, timeout))
    ran = [o for o in observations if o.ran or o.skipped.startswith("not run")]
    if not ran:
        reasons = "; ".join(f"{o.config.name}: {o.skipped}" for o in observations)
        raise AuditUsageError(f"{target.path} could not be configured for rule {expected!r} "
                              f"({reasons})")
    results: dict[str, HypothesisResult] = {}
    for h in hypotheses:
        tick(f"comparing with {h.name}")
        results[h.name] = compare(h, observations, dtype, base, full=full)
    result = AuditResult(target.path, target.adapter.describe(), dtype, device, seed, steps,
                         expected, inference, group, configs, observations, results)
    tick("experiments")
    _experiments(result, target, base, timeout)
    _classify(result, dtype, base, full)
    result.elapsed = time.perf_counter() - start
    return result


def _experiments(result: AuditResult, target: Target, base, timeout) -> None:
    adapter = target.adapter
    for obs in result.observations:
        if obs.error:
            kind = "timed out" if obs.error_kind == "timeout" else "raised"
            result.findings.append(f"the target {kind} in configuration {obs.config.name!r} "
                                   f"({obs.error})")
    same = next((o for o in result.observations if o.config.name == "same-shapes"), None)
    if same is not None:
        experiment = driving.isolation(adapter, same, base, result.dtype, result.device, timeout)
        if experiment:
            result.experiments.append(experiment)
    if adapter.torch_style:
        # state kept in a lower precision than the parameters
        seen = set()
        for obs in result.observations:
            for dtypes in obs.state_dtypes:
                for key, dt in dtypes.items():
                    if key != "step" and PRECISION_ORDER.get(dt, 3) < PRECISION_ORDER.get(
                            result.dtype, 3) and key not in seen:
                        seen.add(key)
                        result.findings.append(f"state {key!r} is kept in {dt} for "
                                               f"{result.dtype} parameters (low-precision "
                                               f"internal state)")
        name = CHECKPOINT_CONFIG.get(result.group)
        index = next((i for i, c in enumerate(result.configs) if c.name == name), None)
        obs = result.observations[index] if index is not None else None
        if obs is not None and obs.ran and not obs.error:
            from .evaluate import prepare
            prep = prepare(Hypothesis(result.expected, get_rule(result.expected)), obs.config,
                           obs.problem.lrs, base)
            keys = set(prep.kept) if prep else set()
            experiment = driving.checkpoint(adapter, obs.config, index, steps=result.steps,
                                            seed=result.seed, dtype=result.dtype,
                                            device=result.device, defaults=base,
                                            timeout=timeout, expected_keys=keys)
            if experiment:
                result.experiments.append(experiment)


def _classify(result: AuditResult, dtype: str, base, full: bool = False) -> None:
    expected = result.expected_result
    failed_experiments = [e for e in result.experiments if not e.passed]
    structural = bool(result.findings) or bool(failed_experiments)
    failed = set(expected.failed)
    # a hypothesis explains the target when it reproduces every configuration it applies to
    # and applies to every configuration the expected variant fails
    matching = _explaining(result.variants.values(), failed)
    nonfinite = [c.first for c in expected.configs.values()
                 if c.first is not None and "returned" in c.first.problem]
    if expected.matches and not structural:
        result.verdict, result.best = "conformant", result.expected
    else:
        result.verdict = "deviation"
        if expected.matches:
            result.best = result.expected
        elif nonfinite:
            first = min(nonfinite, key=lambda d: d.step)
            result.best = result.expected
            result.diagnosis.append(f"returns NaN/Inf where the reference is finite: "
                                    f"{first.describe()}")
        elif matching:
            result.best = matching[0]
            result.diagnosis.append(_instead(result, matching[0]) + _uncovered(
                result.variants[matching[0]], failed))
        else:
            obs = result.observations
            for h in probes_for(result.expected) + structural_probes(result.expected, dtype):
                result.probes[h.name] = compare(h, obs, dtype, base, full=full)
            explaining = [result.probes[n] for n in _explaining(result.probes.values(), failed)]
            if explaining:
                best = explaining[0]
                result.best, result.best_kind = best.name, "probe"
                result.diagnosis.append(f"cause: {best.hypothesis.fault} (probe {best.name} "
                                        f"reproduces every step of {len(best.configs)} "
                                        f"configuration(s))" + _uncovered(best, failed))
            elif _rounding_level(expected):
                result.best = result.expected
                worst = max((c.first for c in expected.configs.values() if c.first),
                            key=lambda d: d.err_ulps)
                result.diagnosis.append(
                    f"rounding-level deviation: every element is within {ROUNDING_LEVEL:g} ULP "
                    f"of {result.expected}, but {len(expected.failed)} configuration(s) exceed "
                    f"the derived bound (worst first divergence {_fmt(worst.err_ulps)} ULP > "
                    f"{_fmt(worst.bound_ulps)} ULP): the target rounds more often than one "
                    f"evaluation of the rule (e.g. it adds two terms to θ in two roundings); "
                    f"no convention or known fault differs")
            else:
                candidates = list(result.variants.values()) + list(result.probes.values())
                closest = min((r for r in candidates if r.configs), key=lambda r: r.score(),
                              default=None)
                if closest is not None:
                    result.best, result.best_kind = closest.name, closest.hypothesis.kind
                    result.diagnosis.append(
                        f"no registered variant or known fault reproduces the target; closest: "
                        f"{closest.name} (fails {len(closest.failed)} of "
                        f"{len(closest.configs)} configurations)")
        for e in failed_experiments:
            result.diagnosis.append(f"{e.name} ({e.config}): {e.detail}")
        result.diagnosis.extend(result.findings)
        first = expected.first
        if first is not None:
            result.diagnosis.append(f"first divergence from {result.expected}: {first.describe()}")
    result.conventions = _conventions(result)


ROUNDING_LEVEL = 2.0


def _explaining(candidates, failed: set[str]) -> list[str]:
    """The hypotheses that explain the target, best first: each reproduces every
    configuration it applies to, and applies to at least half of those the expected variant
    fails (a form that cannot express a setting — Sutskever's has no dampening — still
    explains the rest); full coverage first, then the most configurations reproduced."""
    out = []
    for r in candidates:
        if not r.matches:
            continue
        covered = len(failed & set(r.configs))
        if failed and covered * 2 < len(failed):
            continue
        out.append((covered < len(failed), -len(r.configs), r.name))
    return [name for *_, name in sorted(out)]


def _uncovered(r: HypothesisResult, failed: set[str]) -> str:
    left = sorted(failed - set(r.configs))
    if not left:
        return ""
    return (f"; configuration(s) {', '.join(repr(n) for n in left)} also diverge but "
            f"{r.name} cannot express them")


def _fmt(x: float) -> str:
    return "inf" if x == float("inf") else f"{x:.3g}"


def _rounding_level(r: HypothesisResult) -> bool:
    """Every divergence below ``ROUNDING_LEVEL`` ULP (the target is as accurate as a
    slightly different evaluation order allows)."""
    firsts = [c.first for c in r.configs.values() if c.first is not None]
    if not firsts or any(d.problem for d in firsts):
        return False
    steps = [s for c in r.configs.values() for s in c.steps if s.violations]
    return all(d.err_ulps <= ROUNDING_LEVEL for d in firsts) and \
        all(s.max_err_ulps <= ROUNDING_LEVEL for s in steps)


def _instead(result: AuditResult, other: str) -> str:
    a, b = conventions_of(result.expected), conventions_of(other)
    axes = differences(a, b)
    what = "; ".join(f"{axis}: {b[axis]} instead of {a[axis]}" for axis in axes) or \
        "the same conventions table (the difference is in a detail the table does not name)"
    return f"behaves as {other} rather than {result.expected}: {what}"


def _conventions(result: AuditResult) -> list[tuple[str, str, str]]:
    """(axis, detected, evidence) for the best hypothesis."""
    best = result.hypothesis(result.best)
    if best is None:
        return []
    row = {**conventions_of(result.expected), **best.hypothesis.conventions} \
        if best.hypothesis.kind == "probe" else conventions_of(best.name)
    out = []
    for axis in [*AXES, *[a for a in row if a not in AXES]]:
        if axis not in row:
            continue
        rejected, unseparated = [], []
        for name, other in result.variants.items():
            if name == best.name:
                continue
            theirs = conventions_of(name)
            if axis not in theirs or theirs[axis] == row[axis]:
                continue
            if len(differences(row, theirs)) > 1 and any(
                    len(differences(row, conventions_of(n))) == 1 and axis in
                    differences(row, conventions_of(n)) for n in result.variants if n != best.name):
                continue  # a variant differing on this axis alone is the evidence
            if other.first is not None:
                f = other.first
                rejected.append(f"{name} rejected by {f.config!r} at step {f.step}")
            elif other.configs:
                unseparated.append(name)
        if rejected or unseparated:
            evidence = "; ".join(rejected)
            if unseparated:
                evidence += ("; " if evidence else "") + "not separated from " + ", ".join(unseparated)
        else:
            evidence = "no alternative among the registered variants"
        out.append((axis, row[axis], evidence))
    return out
