"""The audit: drive a target, compare it with every variant of its rule, classify, explain.

Verdict (exit status of ``optproof audit``):

* **conformant** (0) — the expected variant (``--rule``, the adapter's declared variant, or
  the torch.optim variant the class is or inherits) reproduces every step of every
  configuration the target ran, within the bound derived under the framework's precision
  model (`Rounding`: Keras and optax compute their per-step scalars in float32 at float32;
  the model is named in the report), and no experiment failed;
* **unverified** (1) — a low-bit optimizer whose quantized path could not be checked: the
  quantized-state oracle ([quantization][optproof.audit.quantization]) could not run (the
  report says why), or the configurations themselves ran on quantized state (no float
  variant can reproduce a step that reads dequantized state, so no convention is named)
  and the oracle found nothing wrong in the steps it checked;
* **deviation** (1) — otherwise: the report says which registered variant reproduces the
  target instead (its conventions then differ from the expected ones on the named axes), or
  which probe (a named fault, `probes`) does, or that none does — never naming a hypothesis
  that failed a configuration it ran — and, per convention axis, the value every hypothesis
  reproducing the runs that exercised it agrees on (`conventions.axis_evidence`);
  a target that raised, returned NaN where the reference is finite or timed out is a
  deviation with that message; so is a step on quantized state the oracle rejects, named by
  the check that failed (θ, the scale or the code of an entry) and the step and element.

Usage errors (exit 2) — an unimportable target, an unknown rule, a rule the class name does
not name and ``--rule`` does not give — raise `AuditUsageError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from optproof.derivations import rule as get_rule
from optproof.reference.bounds import Rounding

from . import drive as driving
from .compare import HypothesisResult, compare
from .configs import Config, configs_for
from .conventions import AXES, Evidence, axis_evidence, conventions_of, differences
from .defaults import DefaultsRun, defaults_run
from .evaluate import Hypothesis
from .families import IMPLIED, TORCH_CLASSES, TORCH_VARIANT, group_of, infer_rule, variants
from .probes import probes_for, structural_probes
from .quantization import Quantization, quantization
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
    conventions: list[Evidence] = field(default_factory=list)
    quantization: Quantization | None = None
    elapsed: float = 0.0
    rounding: Rounding | None = None  # the framework's precision model every hypothesis used
    defaults: DefaultsRun | None = None  # the target with its own defaults, measured
    hyper: dict[str, Any] = field(default_factory=dict)  # --arg values and built-in ones

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "conformant" else 1  # "unverified" claims nothing

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
        raise AuditUsageError(f"cannot infer the rule of {target.path!r}: neither "
                              f"{target.name!r} nor a class it inherits is one of torch.optim's "
                              f"{', '.join(TORCH_CLASSES)}; pass --rule RULE "
                              f"(optproof show --list)")
    named = next(n for n in target.class_names if infer_rule([n]) == inferred)
    return inferred, (f"rule inferred from the class name {named!r}: {inferred} "
                      f"(torch.optim semantics; pass --rule to choose another)")


def audit(target: str | Target, *, rule: str | None = None, steps: int = 5, dtype: str = "float32",
          device: str = "cpu", seed: int = 0, timeout: float | None = 60.0,
          warmup: float | None = None,
          extra: Mapping[str, Any] | None = None, full: bool = False,
          progress: Callable[[str, int], None] | None = None) -> AuditResult:
    """Audit ``target`` (an import path or a loaded `Target`).

    ``extra`` are keywords added to every construction (``{"foreach": True}``);
    ``progress(description, total)`` is called before each unit of work; ``full`` evaluates
    every step of every configuration even after a hypothesis diverged (for the plot).

    ``timeout`` bounds every call into the target (a construction, a step) in seconds
    (``None``: no bound); ``warmup``, if given, replaces it for the calls before the
    process's first completed step (imports, compilation: ``optproof audit`` without
    ``--timeout`` allows `optproof.audit.cli.WARMUP_TIMEOUT`).
    """
    start = time.perf_counter()
    if dtype not in DTYPES:
        raise AuditUsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if steps < 1:
        raise AuditUsageError(f"--steps must be at least 1, got {steps}")
    if timeout is not None and not 0 < timeout < math.inf:
        raise AuditUsageError(f"--timeout must be a positive number of seconds, got {timeout}")
    if seed < 0:
        raise AuditUsageError(f"--seed must be a non-negative integer, got {seed}")
    driving.allow_warmup(warmup)
    if device != "cpu":
        import torch
        try:
            torch.empty(0, device=device)
        except Exception as error:  # noqa: BLE001
            raise AuditUsageError(f"device {device!r} is not available: {error}") from None
        if torch.device(device).type == "meta":
            raise AuditUsageError("--device meta holds no values to compare; use a device "
                                  "with memory (cpu, cuda, …)")
    if isinstance(target, str):
        try:
            target = load_target(target, extra=dict(extra or {}))
        except TargetError as error:
            raise AuditUsageError(str(error)) from None
    expected, inference = _choose_rule(target, rule)
    group = group_of(expected)
    specs = variants(group)
    fixed = target.adapter.reference_hyper()  # --arg values and built-in hyperparameters
    configs = [c.with_hyper(fixed) for c in configs_for(group)]
    family = get_rule(expected).family
    base = {**_neutral(specs, fixed), **get_rule(TORCH_VARIANT.get(family, expected)).defaults}
    rounding = target.adapter.rounding(dtype)
    hypotheses = [Hypothesis(s.name, s, conventions=conventions_of(s.name, hyper=fixed),
                             rounding=rounding) for s in specs]
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
                         expected, inference, group, configs, observations, results,
                         rounding=rounding, hyper=fixed)
    tick("experiments")
    _experiments(result, target, base, timeout)
    result.defaults = _defaults(result, target, timeout)
    _classify(result, dtype, base, full)
    result.elapsed = time.perf_counter() - start
    return result


def _defaults(result: AuditResult, target: Target, timeout) -> DefaultsRun:
    """The defaults run (`optproof.audit.defaults`); a target that ascends is a finding."""
    from .timeout import deadline
    flags = {**IMPLIED.get(result.expected, {}), **getattr(target.adapter, "defaults_flags", {})}
    try:
        with deadline(timeout):
            run = defaults_run(target.adapter, result.expected, flags)
    except Exception as error:  # noqa: BLE001 - the target's own failure is reported
        return DefaultsRun(note=f"not run: {type(error).__name__}: {error}")
    if run.ascends:
        result.findings.append(run.ascends)
    return run


def _neutral(specs, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """For each keyword in ``fixed``, the default of the first variant that takes it
    (``initial_scale`` 0, ``eps_root`` 0): a variant that does not take the keyword then
    cannot express a configuration that sets it otherwise."""
    out = {}
    for key in fixed:
        name = key.partition("[")[0]
        default = next((s.defaults[name] for s in specs if name in s.defaults), None)
        if default is not None:
            out[name] = default
    return out


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
    found = quantization(adapter, result.expected, base, result.dtype, result.device, result.seed)
    if found is not None:
        result.quantization = found
        if found.error:
            result.findings.append(found.error)
        else:
            result.experiments.append(driving.Experiment(
                "quantized state", "tensors of " + "/".join(map(str, found.sizes)) + " elements",
                found.passed or not found.checked, found.describe(), measured=not found.checked))


def _quantized_configs(result: AuditResult) -> list[str]:
    return [o.config.name for o in result.observations if any(o.quantized)]


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
    coded = _quantized_configs(result)
    q = result.quantization if result.quantization and result.quantization.quantized else None
    if coded and not (q is not None and q.checked and not q.passed):
        result.verdict, result.best = "unverified", result.expected
        result.diagnosis.append(
            f"the state is quantized in configuration(s) {', '.join(coded)}: a float variant "
            f"cannot reproduce a step that reads dequantized state, so no convention is named; "
            + (q.verdict() if q else "no quantized-state oracle checked them"))
    elif expected.matches and not structural:
        result.verdict, result.best = "conformant", result.expected
        if q is not None and q.checked:
            result.diagnosis.append(
                f"every configuration ran with float state and conforms to {result.expected}; "
                f"the state is {q.threshold()}, checked under {q.formats()}: {q.verdict()}")
        elif q is not None:
            result.verdict = "unverified"
            result.diagnosis.append(
                f"every configuration ran with float state (tensors below the quantization "
                f"threshold) and conforms to {result.expected}; the state is {q.threshold()}: "
                f"{q.verdict()}")
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
            result.conventions = _conventions(result)
            result.diagnosis.append(_instead(result) + _uncovered(
                result.variants[matching[0]], failed))
        else:
            obs = result.observations
            for h in probes_for(result.expected) + structural_probes(result.expected, dtype):
                h = replace(h, rounding=result.rounding)
                result.probes[h.name] = compare(h, obs, dtype, base, full=full)
            explaining = [result.probes[n] for n in _explaining(result.probes.values(), failed)]
            both = None if explaining else _variant_and_probe(result, failed, dtype, base, full)
            if explaining:
                best = explaining[0]
                result.best, result.best_kind = best.name, "probe"
                result.diagnosis.append(f"cause: {best.hypothesis.fault} (probe {best.name} "
                                        f"reproduces every step of {len(best.configs)} "
                                        f"configuration(s))" + _uncovered(best, failed))
            elif both:
                variant, best = both
                result.best, result.best_kind = best.name, "probe"
                result.conventions = _conventions(result)
                passed = set(result.variants[variant].configs) - set(result.variants[variant].failed)
                result.diagnosis.append(
                    _instead(result, variant) + f"; and {best.hypothesis.fault} (probe "
                    f"{best.name} reproduces every step of {len(best.configs)} "
                    f"configuration(s))" + _uncovered(best, failed - passed))
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
                result.diagnosis.append(
                    "no registered variant or known fault reproduces the target: each fails "
                    "a configuration it was compared on (the conventions below are, per "
                    "axis, the explanation that reproduces every run exercising it, where "
                    "one does)")
        for e in failed_experiments:
            result.diagnosis.append(f"{e.name} ({e.config}): {e.detail}")
        if q is not None and q.passed:
            result.diagnosis.append(f"the state is {q.threshold()}, checked under {q.formats()}: "
                                    f"{q.verdict()}")
        result.diagnosis.extend(result.findings)
        first = expected.first
        if first is not None:
            result.diagnosis.append(f"first divergence from {result.expected}: {first.describe()}")
    result.conventions = [] if coded else _conventions(result)  # none measured on codes


ROUNDING_LEVEL = 2.0


def _variant_and_probe(result: AuditResult, failed: set[str], dtype: str, base, full: bool):
    """(variant, probe result) where a probe of another registered variant explains the
    target: two differences at once, a convention and a fault (bitsandbytes' Adam decays
    decoupled *and* ignores ``amsgrad``). The variants tried are those that fail fewest
    configurations (each of those, when several tie); ``None`` when none of their probes
    explains the target."""
    near = [r for r in result.variants.values()
            if r.name != result.expected and r.configs and len(r.failed) < len(failed)]
    fewest = min((len(r.failed) for r in near), default=None)
    for closest in (r for r in near if len(r.failed) == fewest):
        left = set(closest.failed)  # what the variant leaves for a probe of it to explain
        for h in probes_for(closest.name) + structural_probes(closest.name, dtype):
            probe = result.probes[h.name] = compare(h, result.observations, dtype, base,
                                                    full=full)
            if probe.matches and left <= set(probe.configs):
                return closest.name, probe
    return None


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


def _instead(result: AuditResult, other: str | None = None) -> str:
    """How the matching variant ``other`` (default ``result.best``) differs from the expected
    one, on the axes the audit measured (an unmeasured difference is named as such, with the
    reason)."""
    other = other or result.best
    a, b = (conventions_of(name, hyper=result.hyper) for name in (result.expected, other))
    evidence = {e.axis: e for e in result.conventions}
    parts = []
    for axis in differences(a, b):
        e = evidence.get(axis)
        if e is not None and e.measured:
            parts.append(f"{axis}: {b[axis]} instead of {a[axis]}")
        else:
            parts.append(f"{axis}: not measured ({e.evidence if e else 'no evidence'})")
    what = "; ".join(parts) or \
        "the same conventions table (the difference is in a detail the table does not name)"
    return f"behaves as {other} rather than {result.expected}: {what}"


def _conventions(result: AuditResult) -> list[Evidence]:
    """The evidence on every axis of the best hypothesis (or, when nothing reproduces the
    target, of every hypothesis compared: the closest passing explanation per axis)."""
    results = {**result.variants, **result.probes}
    expected = conventions_of(result.expected, hyper=result.hyper)
    # a probe is named after the variant it mutates (``adamw~amsgrad-ignored``)
    rows = {name: ({**(conventions_of(name.split("~")[0], hyper=result.hyper) or expected),
                    **r.hypothesis.conventions} if r.hypothesis.kind == "probe"
                   else r.hypothesis.conventions) for name, r in results.items()}
    best = result.hypothesis(result.best)
    claimed = best.name if best is not None and best.matches else None
    axes = rows[claimed] if claimed else {a: None for row in rows.values() for a in row}
    if not axes:
        return []
    return [axis_evidence(axis, rows, results, result.observations, claimed)
            for axis in [*[a for a in AXES if a in axes], *[a for a in axes if a not in AXES]]]
