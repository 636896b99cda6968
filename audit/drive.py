"""Driving a target through the configurations and recording what it did.

For every configuration the target is constructed on fresh parameters (values
representable in the audited dtype) and stepped with the generated gradients, the
learning rate set before each step. Before and after every step the parameters (and, for a
torch-style target, its state under torch's keys) are read back as exact floats: those are
the one-step oracle's inputs and the values it judges. Every call into the target runs under
a deadline; an exception or a timeout ends that configuration and is recorded, never raised.

Two experiments need no reference at all:

* **isolation** — the "several tensors of one shape" configuration is run again with the
  first tensor alone: an optimizer whose state is per parameter gives that tensor the same
  trajectory; one that shares state (or a counter) between tensors does not.
* **checkpoint** (torch-style targets) — halfway through a run the optimizer's
  ``state_dict()`` is loaded into a new optimizer on copies of the parameters and both are
  stepped on: a state kept outside ``optimizer.state`` (or left out of ``state_dict``) makes
  the resumed run diverge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .adapters.base import Adapter, Unsupported
from .configs import Config, Problem, make_problem
from .timeout import TargetTimeout, deadline

__all__ = ["StepObs", "ConfigObs", "Experiment", "drive", "isolation", "checkpoint"]


@dataclass
class StepObs:
    """One step as the target took it: inputs and outputs as exact floats."""

    lr: float
    grads: list[list[float]]
    before_params: list[list[float]]
    before_state: list[dict[str, Any]] | None
    after_params: list[list[float]] | None = None
    after_state: list[dict[str, Any]] | None = None


@dataclass
class ConfigObs:
    """One configuration: its steps, or why it stopped (``error`` at ``error_step``,
    0 = construction) or was skipped (``skipped``: the target takes no such keyword)."""

    config: Config
    problem: Problem
    steps: list[StepObs] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    error_kind: str | None = None  # "raised" | "timeout"
    error_step: int | None = None
    dropped: list[str] = field(default_factory=list)
    state_dtypes: list[dict[str, str]] = field(default_factory=list)
    raw_state_keys: list[set[str]] = field(default_factory=list)
    quantized: list[list[str]] = field(default_factory=list)  # per tensor, keys held as codes

    @property
    def ran(self) -> bool:
        return self.skipped is None


@dataclass
class Experiment:
    """The outcome of an experiment that needs no reference (``measured``: a measurement
    that neither passes nor fails, such as which state a low-bit optimizer quantizes)."""

    name: str
    config: str
    passed: bool
    detail: str
    measured: bool = False


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


_warm = False
_warmup: float | None = None


def allow_warmup(seconds: float | None) -> None:
    """Let the calls before the process's first completed step take up to ``seconds``
    (``None``: the timeout of each call bounds them as it bounds every other call).

    Those calls may import and compile a lot (jax's first jit, a Keras optimizer's first
    ``apply``); ``optproof audit`` without ``--timeout`` allows them
    `optproof.audit.cli.WARMUP_TIMEOUT`, and an explicit timeout bounds them too."""
    global _warmup
    _warmup = seconds


def _import_what_torch_imports_on_first_use() -> None:
    """torch.optim imports ``torch._dynamo`` when the first optimizer is constructed (torch
    2.13: ``add_param_group`` is wrapped by ``torch._disable_dynamo``), several seconds on a
    busy machine: imported here, before any deadline, so that a timeout bounds the target's
    own work, never torch's import (an alarm inside it would also leave the module
    half-initialised)."""
    import torch._dynamo  # noqa: F401


def _call(fn: Callable, timeout: float | None):
    if not _warm and timeout and _warmup:
        timeout = max(timeout, _warmup)
    with deadline(timeout):
        out = fn()
    return out


def _warmed() -> None:
    global _warm
    _warm = True


def run_config(adapter: Adapter, config: Config, problem: Problem, defaults: Mapping[str, Any],
               dtype: str, device: str, timeout: float | None) -> ConfigObs:
    obs = ConfigObs(config, problem)
    if adapter.torch_style:
        _import_what_torch_imports_on_first_use()
    hyper = {**{k: v for k, v in defaults.items() if not isinstance(v, bool)},
             **config.constructor_hyper()}
    try:
        session = _call(lambda: adapter.open(hyper, problem.params, dtype, device, defaults), timeout)
    except Unsupported as why:
        obs.skipped = str(why)
        return obs
    except TargetTimeout as why:
        obs.error, obs.error_kind, obs.error_step = f"construction: {why}", "timeout", 0
        return obs
    except Exception as why:  # the target's own failure: reported, not raised
        obs.error, obs.error_kind, obs.error_step = f"construction raised {_describe(why)}", "raised", 0
        return obs
    obs.dropped = list(getattr(session, "dropped", []))
    for k, (grads, lr) in enumerate(zip(problem.grads, problem.lrs)):
        record = None
        try:
            record = StepObs(lr, [g.reshape(-1).tolist() for g in grads], session.params(),
                             session.state())
            _call(lambda: session.step(grads, lr), timeout)
            _warmed()
            record.after_params, record.after_state = session.params(), session.state()
            obs.steps.append(record)
        except TargetTimeout as why:
            obs.error, obs.error_kind, obs.error_step = f"step {k + 1}: {why}", "timeout", k + 1
            break
        except Exception as why:
            obs.error, obs.error_kind, obs.error_step = (f"step {k + 1} raised {_describe(why)}",
                                                         "raised", k + 1)
            break
    obs.state_dtypes = session.state_dtypes()
    obs.quantized = [sorted(entry) for entry in session.quantized_state() or []]
    if hasattr(session, "raw_state_keys"):
        obs.raw_state_keys = session.raw_state_keys()
    return obs


def drive(adapter: Adapter, configs: Sequence[Config], *, steps: int, seed: int, dtype: str,
          device: str, defaults: Mapping[str, Any], timeout: float | None,
          progress: Callable[[], None] | None = None) -> list[ConfigObs]:
    """Run every configuration; returns one `ConfigObs` each."""
    out = []
    for index, config in enumerate(configs):
        problem = make_problem(config, steps, seed, dtype, index)
        out.append(run_config(adapter, config, problem, defaults, dtype, device, timeout))
        if progress:
            progress()
    return out


def timed_out(observations: Sequence[ConfigObs]) -> bool:
    """Whether a configuration timed out (the rest are then not run: a target that hung
    once is not waited on again)."""
    return any(o.error_kind == "timeout" for o in observations)


def _close(a: Sequence[float], b: Sequence[float], dtype: str) -> bool:
    """Equal up to a few ULPs of the dtype (kernels that batch tensors differently may
    round differently, but never by more)."""
    from optproof.reference import precision
    u = float(precision(dtype).u)
    for x, y in zip(a, b):
        if x != x or y != y:
            if (x != x) != (y != y):
                return False
            continue
        if abs(x - y) > 8 * u * max(abs(x), abs(y)) + 1e-300:
            return False
    return len(a) == len(b)


def isolation(adapter: Adapter, obs: ConfigObs, defaults, dtype: str, device: str,
              timeout: float | None) -> Experiment | None:
    """Re-run ``obs``'s configuration with its first tensor alone and compare its path."""
    if not obs.ran or obs.error or not obs.steps or len(obs.problem.params) < 2:
        return None
    problem = Problem(obs.config, obs.problem.params[:1], [g[:1] for g in obs.problem.grads],
                      obs.problem.lrs, dtype)
    alone = run_config(adapter, obs.config, problem, defaults, dtype, device, timeout)
    name = "parameter independence"
    if alone.error or not alone.steps:
        return Experiment(name, obs.config.name, False,
                          f"the first tensor alone: {alone.error or alone.skipped}")
    for k, (joint, single) in enumerate(zip(obs.steps, alone.steps)):
        if not _close(joint.after_params[0], single.after_params[0], dtype):
            return Experiment(name, obs.config.name, False,
                              f"tensor 0 stepped alone differs from tensor 0 stepped with "
                              f"{len(obs.problem.params) - 1} others from step {k + 1} on "
                              f"(alone {single.after_params[0][0]!r}, together "
                              f"{joint.after_params[0][0]!r}): state or a counter is shared "
                              f"between parameter tensors")
    return Experiment(name, obs.config.name, True,
                      "each tensor's trajectory is independent of the other tensors")


def checkpoint(adapter: Adapter, config: Config, index: int, *, steps: int, seed: int,
               dtype: str, device: str, defaults, timeout: float | None,
               expected_keys: set[str]) -> Experiment | None:
    """Save with ``state_dict()`` halfway, load into a new optimizer, step both on."""
    if not adapter.torch_style or steps < 2:
        return None
    problem = make_problem(config, steps, seed, dtype, index)
    hyper = {**{k: v for k, v in defaults.items() if not isinstance(v, bool)},
             **config.constructor_hyper()}
    name = "checkpoint round trip"
    half = steps // 2
    try:
        with deadline(timeout):
            a = adapter.open(hyper, problem.params, dtype, device, defaults)
            for k in range(half):
                a.step(problem.grads[k], problem.lrs[k])
            saved = a.optimizer.state_dict()
            b = a.clone()
            changed = sorted({f"{k} ({da} → {db})"
                              for ta, tb in zip(a.state_dtypes(), b.state_dtypes())
                              for k, da in ta.items() if (db := tb.get(k, da)) != da})
            for k in range(half, steps):
                a.step(problem.grads[k], problem.lrs[k])
                b.step(problem.grads[k], problem.lrs[k])
    except Unsupported:
        return None
    except Exception as why:
        return Experiment(name, config.name, False, f"the round trip raised {_describe(why)}")
    saved_keys = set()
    for entry in saved.get("state", {}).values():
        saved_keys |= set(entry)
    missing = sorted(expected_keys - saved_keys)
    for pa, pb in zip(a.params(), b.params()):
        if not _close(pa, pb, dtype):
            if changed:
                why = ("load_state_dict() changed the dtype of the state "
                       + ", ".join(changed) + ": the resumed run computes in another precision")
            elif missing:
                why = f"state_dict() lacks {', '.join(missing)} (a state key not saved)"
            else:
                why = "some state lives outside optimizer.state (a state key not saved)"
            return Experiment(name, config.name, False,
                              f"resuming from state_dict() after step {half} diverges from the "
                              f"uninterrupted run: {why}")
    return Experiment(name, config.name, True,
                      f"resuming from state_dict() after step {half} continues identically")
