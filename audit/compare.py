"""Comparing what a target did with what a hypothesis says it should have done.

For each configuration a hypothesis applies to, one of two checks (``DESIGN.md``,
"Verification method"):

* **one-step oracle** — when the target exposes its state under the hypothesis's torch keys
  (every step, every tensor, the right number of values), each step is recomputed from the
  target's own parameters and state before it (exact inputs); the target's parameters and
  state after it must lie within the derived bound of the exact values, and its ``step``
  counter must read t.
* **trajectory** — otherwise (a framework that exposes no torch-style state, a state keyed
  or shaped differently, a hypothesis that chains one state through all tensors) the
  hypothesis runs from the first step's inputs and carries its bounds forward; the target's
  parameters at every step must lie within them.

An element violates when |target − exact| exceeds the bound, or when the target is NaN/±∞
where the exact value and its bound are finite. A per-tensor scalar state (``mu_product``)
may be stored in the parameters' dtype: its bound gains one rounding of that dtype. Errors
are reported in ULPs of the audited dtype at the exact value (`ulp`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath

from optproof.reference import precision, ulp
from optproof.reference.bounds import Bounded

from .drive import ConfigObs
from .evaluate import Hypothesis, Prepared, bounded_step, exact_inputs, prepare

__all__ = ["StepStat", "Divergence", "ConfigResult", "HypothesisResult", "compare"]


@dataclass
class StepStat:
    """One step of one configuration: the worst element (largest err/bound) — its error and
    bound — and the largest error of any element (``max_err_ulps``)."""

    step: int
    err_ulps: float = 0.0
    max_err_ulps: float = 0.0
    bound_ulps: float = 0.0
    ratio: float = 0.0
    checked: int = 0
    violations: int = 0


@dataclass
class Divergence:
    """The first element outside its bound."""

    config: str
    step: int
    tensor: int
    key: str
    index: int
    target: float
    exact: str
    err_ulps: float
    bound_ulps: float
    problem: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)

    def short(self) -> str:
        if self.problem:
            return f"{self.config}@{self.step}: non-finite" if "returned" in self.problem \
                else f"{self.config}@{self.step}: {self.key}"
        return (f"{self.config}@{self.step} {self.key}: {_fmt(self.err_ulps)} > "
                f"{_fmt(self.bound_ulps)} ULP")

    def describe(self) -> str:
        where = f"{self.key}[{self.index}] of tensor {self.tensor}"
        if self.problem:
            return f"config {self.config!r}, step {self.step}: {where}: {self.problem}"
        return (f"config {self.config!r}, step {self.step}: {where} = {self.target!r}, exact "
                f"{self.exact}, error {_fmt(self.err_ulps)} ULP > bound {_fmt(self.bound_ulps)} ULP")


def _fmt(x: float) -> str:
    return "inf" if x == float("inf") else f"{x:.3g}"


@dataclass
class ConfigResult:
    config: str
    mode: str  # "one-step" | "trajectory"
    steps: list[StepStat] = field(default_factory=list)
    first: Divergence | None = None

    @property
    def passed(self) -> bool:
        return self.first is None


@dataclass
class HypothesisResult:
    """A hypothesis against every configuration it applies to (and the target ran)."""

    hypothesis: Hypothesis
    configs: dict[str, ConfigResult] = field(default_factory=dict)
    not_applicable: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.hypothesis.name

    @property
    def matches(self) -> bool:
        return bool(self.configs) and all(c.passed for c in self.configs.values())

    @property
    def failed(self) -> list[str]:
        return [n for n, c in self.configs.items() if not c.passed]

    @property
    def worst_ulps(self) -> float:
        return max((s.max_err_ulps for c in self.configs.values() for s in c.steps), default=0.0)

    @property
    def worst_ratio(self) -> float:
        return max((s.ratio for c in self.configs.values() for s in c.steps), default=0.0)

    @property
    def first(self) -> Divergence | None:
        """The earliest divergence (smallest step; the first configuration on ties)."""
        firsts = [c.first for c in self.configs.values() if c.first is not None]
        return min(firsts, key=lambda d: d.step) if firsts else None


def _state_usable(obs: ConfigObs, prep: Prepared) -> bool:
    """Whether the target's state can be the one-step oracle's input for ``prep``."""
    if prep.hypothesis.shared_state or prep.hypothesis.state_dtype:
        return False
    if not obs.steps or obs.steps[0].before_state is None:
        return False
    sizes = [len(p) for p in obs.steps[0].before_params]
    for k, step in enumerate(obs.steps):
        states = [step.after_state] + ([step.before_state] if k > 0 else [])
        for state in states:
            if state is None:
                return False
            for entry, n in zip(state, sizes):
                for key in prep.kept:
                    value = entry.get(key)
                    want = 1 if key in prep.per_step else n
                    if value is None or len(value) != want:
                        return False
    return True


def _inputs(step, prep: Prepared, t_of, carried=None) -> list[dict[str, Any]]:
    tensors = []
    for i, (params, grads) in enumerate(zip(step.before_params, step.grads)):
        entry: dict[str, Any] = {"t": t_of(i), "param": exact_inputs(params), "grad": grads}
        if carried is None:
            state = (step.before_state or [{}] * len(step.before_params))[i]
            for key in prep.program_state_keys:
                if key in state:
                    entry[key] = exact_inputs(state[key])
        else:
            entry.update(carried[i])
        tensors.append(entry)
    return tensors


def _check(stat: StepStat, result: ConfigResult, obs: ConfigObs, step_index: int, tensor: int,
           key: str, target: Sequence[float], ref: Sequence[tuple], dtype: str,
           per_step: bool, inputs: Mapping[str, Any], held_dtype: str | None = None) -> None:
    p = precision(dtype)
    held = precision(held_dtype) if held_dtype and precision(held_dtype).bits < p.bits else p
    for i, (y, b) in enumerate(zip(target, ref)):
        x, e = b[0], b[1]
        if not mpmath.isfinite(x) or mpmath.isinf(e) or mpmath.isnan(e):
            continue  # nothing to guarantee
        if per_step:  # stored as a 0-d tensor of the parameters' dtype (or the probe's)
            e = e + held.u * abs(x) + held.eta
        stat.checked += 1
        finite = y == y and abs(y) != float("inf")
        err = abs(mpmath.mpf(y) - x) if finite else mpmath.inf
        unit = ulp(x, p)
        err_ulps = float(err / unit)
        bound_ulps = float(e / unit)
        ratio = (0.0 if err == 0 else float("inf")) if e == 0 else float(err / e)
        if ratio > stat.ratio or stat.checked == 1:
            stat.ratio, stat.bound_ulps, stat.err_ulps = ratio, bound_ulps, err_ulps
        stat.max_err_ulps = max(stat.max_err_ulps, err_ulps)
        if not finite or err > e:
            stat.violations += 1
            if result.first is None:
                problem = "" if finite else (f"the target returned {y!r} where the reference "
                                              f"is finite ({mpmath.nstr(x, 10)})")
                result.first = Divergence(obs.config.name, step_index + 1, tensor, key, i, y,
                                          mpmath.nstr(x, 17), err_ulps, bound_ulps, problem,
                                          {k: v for k, v in inputs.items()})


def compare(h: Hypothesis, observations: Sequence[ConfigObs], dtype: str,
            base_defaults: Mapping[str, Any] | None = None, *, full: bool = False
            ) -> HypothesisResult:
    """Check ``h`` against every configuration it applies to. A configuration stops at its
    first divergent step unless ``full`` (the per-step plot wants every step)."""
    result = HypothesisResult(h)
    for obs in observations:
        if not obs.ran or not obs.steps or any(s.after_params is None for s in obs.steps):
            continue
        prep = prepare(h, obs.config, obs.problem.lrs, base_defaults)
        if prep is None:
            result.not_applicable.append(obs.config.name)
            continue
        n = len(obs.steps[0].before_params)
        if h.shared_state and len({len(p) for p in obs.steps[0].before_params}) != 1:
            result.not_applicable.append(obs.config.name)
            continue
        one_step = _state_usable(obs, prep)
        config_result = ConfigResult(obs.config.name, "one-step" if one_step else "trajectory")
        carried = None
        for k, step in enumerate(obs.steps):
            if config_result.first is not None and not full:
                break

            def t_of(i, k=k):
                return h.step_map(k + 1, i, n) if h.step_map else k + 1
            if one_step:
                out = bounded_step(prep, k, _inputs(step, prep, t_of), dtype)
            else:
                if carried is None:
                    carried = [{"param": exact_inputs(p)} for p in step.before_params]
                    if step.before_state is not None:  # eagerly created state (Adagrad's sum)
                        for c, state in zip(carried, step.before_state):
                            for key in prep.program_state_keys:
                                if key in state and key not in prep.per_step and \
                                        len(state[key]) == len(c["param"]):
                                    c[key] = exact_inputs(state[key])
                tensors = _inputs(step, prep, t_of, carried)
                out = _run_tensors(prep, k, tensors, dtype)
                carried = [{key: v for key, v in o.items()} for o in out]
                if h.state_dtype:
                    carried = [_round_state(c, h.state_dtype) for c in carried]
            stat = StepStat(k + 1)
            for i, ref in enumerate(out):
                inputs = {"param": step.before_params[i][:4], "grad": step.grads[i][:4],
                          "lr": step.lr, "t": t_of(i)}
                _check(stat, config_result, obs, k, i, "param", step.after_params[i],
                       ref["param"], dtype, False, inputs)
                if h.shared_state or step.after_state is None:
                    continue
                state = step.after_state[i]
                for key in prep.kept:
                    if key not in state:
                        continue
                    per = key in prep.per_step
                    values = ref[key] if isinstance(ref[key], list) else [ref[key]]
                    if len(state[key]) != len(values):
                        continue
                    _check(stat, config_result, obs, k, i, key, state[key], values, dtype,
                           per, inputs, h.scalar_state_dtype)
                if "step" in state and not h.step_map and len(state["step"]) == 1 \
                        and state["step"][0] != k + 1:
                    stat.violations += 1
                    if config_result.first is None:
                        config_result.first = Divergence(
                            obs.config.name, k + 1, i, "step", 0, state["step"][0], str(k + 1),
                            float("inf"), 0.0, f"the step counter reads {state['step'][0]:g} "
                            f"after step {k + 1}")
            config_result.steps.append(stat)
        result.configs[obs.config.name] = config_result
    return result


def _run_tensors(prep: Prepared, k: int, tensors, dtype: str):
    """A trajectory step; a shared-state hypothesis threads one state through the tensors
    in order (tensor i starts from tensor i − 1's new state; tensor 0 from the last
    tensor's state of the previous step)."""
    if not prep.hypothesis.shared_state:
        return bounded_step(prep, k, tensors, dtype)
    out = []
    shared = prep.shared
    for tensor in tensors:
        entry = dict(tensor)
        for key in prep.program_state_keys:
            entry.pop(key, None)
            if shared is not None and key in shared:
                entry[key] = shared[key]
        (new,) = bounded_step(prep, k, [entry], dtype)
        shared = {key: new[key] for key in prep.program_state_keys if key in new}
        out.append(new)
    prep.shared = shared
    return out


def _round_state(carried: dict[str, Any], dtype: str) -> dict[str, Any]:
    """Round every state value to ``dtype`` (a kernel keeping its state in that format)."""
    import torch
    p = precision(dtype)
    out = {}
    for key, value in carried.items():
        if key == "param":
            out[key] = value
            continue
        pairs = value if isinstance(value, list) else [value]
        rounded = []
        for b in pairs:
            x, e = b[0], b[1]
            if not mpmath.isfinite(x):
                rounded.append(b)
                continue
            r = torch.tensor(float(x), dtype=torch.float64).to(getattr(torch, dtype)).item()
            rounded.append(Bounded(mpmath.mpf(r), e + abs(mpmath.mpf(r) - x) + p.u * abs(x),
                                   r >= 0 and b[2]))
        out[key] = rounded if isinstance(value, list) else rounded[0]
    return out
