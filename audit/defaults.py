"""The defaults run: the target driven with its *own* defaults, and those defaults measured.

The configurations of an audit set every hyperparameter, so they say nothing about what a
user gets from ``Adam()`` or ``optax.adamw(1e-3)``. This run constructs the target with no
keyword but the user's ``--arg`` s (and a learning rate only where the constructor requires
one: optax's transformations), steps it on `GRADS`, and then:

* **direction** — element 0 starts at θ = 1 with g = +0.5: a minimiser's first step lowers
  θ. One that raises it *ascends the objective* (``optax.adadelta()``: its default
  ``learning_rate=None`` skips ``scale_by_learning_rate``, the step that negates the update).
* **values** — the hyperparameters of the expected variant are fitted to the observed
  trajectory (Levenberg–Marquardt on the reference's steps, `optproof.reference.run`,
  in coordinates that keep each one in its domain: log x, or log(1 − x) on [0, 1)). A value
  is reported only when the fit reproduces the run and the run constrains it (moving it by
  10 % changes a step by more than the fit's residual); otherwise it is "not identified".
  Nothing is read from the signature.

The gradients are designed to expose each hyperparameter: a constant gradient (γ, and the
bias corrections through the steps), sign flips (β₁, momentum), gradients of 10⁻⁷ and 10⁻⁹
against ε, and a zero gradient on θ ≠ 0 (decoupled decay, which alone moves it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .adapters.base import Adapter

__all__ = ["DefaultsRun", "defaults_run", "PARAMS", "GRADS"]

#: one tensor; element 0 is the direction check (θ = 1, g = +0.5)
PARAMS = (1.0, 0.5, -0.75, 2.0, 1.5, -1.0)
_PATTERN = ((0.5, 0.5), (1e-1, -1e-1), (1e-7, 1e-7), (0.0, 0.0), (1e-9, -1e-9), (0.3, -0.1))
STEPS = 6
GRADS = tuple(tuple(a if k % 2 == 0 else b for a, b in _PATTERN) for k in range(STEPS))
#: the learning rate given where the constructor requires one (optax)
REQUIRED_LR = 1e-3
_MISSING = re.compile(r"missing (?:1 required positional|a required) argument: '(\w+)'")


@dataclass
class DefaultsRun:
    """What the defaults run found: ``measured`` {keyword: value} for the hyperparameters the
    run identified, ``unidentified`` those it did not constrain, ``given`` what had to be
    passed, ``ascends`` the direction finding (or ``None``), ``note`` why nothing was fitted."""

    measured: dict[str, float] = field(default_factory=dict)
    unidentified: list[str] = field(default_factory=list)
    given: dict[str, Any] = field(default_factory=dict)
    ascends: str | None = None
    note: str = ""

    def describe(self) -> str:
        parts = [f"{k} = {_fmt(v)}" for k, v in self.measured.items()]
        if self.unidentified:
            parts.append("not identified by this run: " + ", ".join(self.unidentified))
        if self.given:
            parts.append("given (required): " + ", ".join(f"{k}={v!r}" for k, v in self.given.items()))
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _open(adapter: Adapter, dtype: str) -> tuple[Any, dict[str, Any]]:
    """A session on `PARAMS` with the target's own defaults (``adapter.args`` only),
    and what had to be given."""
    params = [np.asarray(PARAMS, dtype=np.float64)]
    try:
        return adapter.open_defaults(params, dtype, {}), {}
    except TypeError as error:
        match = _MISSING.search(str(error))
        if not match:
            raise
        given = {match.group(1): REQUIRED_LR}
        return adapter.open_defaults(params, dtype, given), given


def defaults_run(adapter: Adapter, variant: str, flags: Mapping[str, bool] | None = None
                 ) -> DefaultsRun:
    """Drive ``adapter``'s target with its own defaults (in float64, so that the fit sees the
    hyperparameters rather than the parameters' rounding); fit ``variant``'s hyperparameters."""
    session, given = _open(adapter, "float64")
    trajectory = [list(session.params()[0])]
    for grads in GRADS:
        session.step([np.asarray(grads, dtype=np.float64)], None)
        trajectory.append(list(session.params()[0]))
    out = DefaultsRun(given=given)
    before, after = trajectory[0][0], trajectory[1][0]
    if after > before:
        out.ascends = (f"with its own defaults it ascends the objective: the first step moves "
                       f"θ {before:g} → {after:.5g} for g = +{GRADS[0][0]:g} (a minimiser lowers it)")
        out.note = "not fitted: the run ascends"
        return out
    from optproof.derivations import rule
    spec = rule(variant)
    implied = {k: v for k, v in (flags or {}).items() if k in spec.flags}
    # the switches a library leaves off by default (centered, amsgrad, nesterov …), then the
    # variant's own defaults (Keras's RMSprop variant is the centered form)
    for switches in ({f: False for f in spec.flags}, {}):
        _fit(out, spec, trajectory, given, adapter.reference_hyper(), {**switches, **implied})
        if not out.note:
            break
    return out


def _coordinates(spec, program, known: Mapping[str, Any]):
    """The fitted keywords with their domains: (key, keyword, index, kind, start), started
    at the variant's defaults or at what the adapter knows of the target (``known``)."""
    out = []
    for h in program.hypers:
        if h.keyword == "schedule_multiplier":
            continue
        default = known.get(h.key, known.get(h.keyword, spec.defaults[h.keyword]))
        start = default[h.index] if h.index is not None else default
        if h.domain.sup == 1 and h.domain.inf == 0:
            kind = "unit"  # β, α, ρ, μ: fitted as log(1 − x)
        else:
            kind = "zero-or-log" if h.domain.contains(0) else "log"
        out.append((h.key, h.keyword, h.index, kind, float(start)))
    return out


def _to_z(kind: str, x: float) -> float:  # noqa: D103 (the coordinates of _coordinates)
    if kind == "unit":
        return math.log(max(1.0 - x, 1e-300))
    return math.log(x) if x > 0 else FLOOR - 1


def _from_z(kind: str, z: float) -> float:
    return 1.0 - math.exp(min(z, 0.0)) if kind == "unit" else math.exp(min(z, CEILING))


FLOOR = math.log(1e-14)  # below this a coefficient is reported as 0
CEILING = math.log(1e4)
TOLERANCE = 1e-5  # relative residual of a fit that reproduces the run (float64 θ rounds
#                   at ~1e-7 of the smallest movement, a 1e-9 step on θ ≈ 1)


def _fit(out: DefaultsRun, spec, trajectory: list[list[float]], given,
         known: Mapping[str, Any], flags: dict[str, bool]) -> None:
    from optproof.reference import run
    out.note, out.measured, out.unidentified = "", {}, []
    program = spec.program(**flags)
    coords = _coordinates(spec, program, known)
    observed = np.asarray(trajectory[1:], dtype=np.float64)
    moved = np.abs(observed - np.asarray(trajectory[0])).max(axis=0)
    scale = np.where(moved > 0, moved, 1e-12 * np.maximum(np.abs(trajectory[0]), 1.0))

    def hyper_of(z: np.ndarray) -> dict[str, Any]:
        hyper: dict[str, Any] = dict(flags)
        for (key, keyword, index, kind, _), zi in zip(coords, z):
            value = _from_z(kind, float(zi))
            if kind == "zero-or-log":
                value = 0.0 if zi <= FLOOR else value
            if index is None:
                hyper[keyword] = value
            else:
                items = list(hyper.get(keyword, spec.defaults[keyword]))
                items[index] = value
                hyper[keyword] = tuple(items)
        return hyper

    def residual(z: np.ndarray) -> np.ndarray:
        try:
            steps = run(spec, hyper_of(z), trajectory[0], GRADS, dps=20)
        except ValueError:
            return np.full(observed.size, 1e6)
        model = np.asarray([[float(x) for x in s["param"]] for s in steps], dtype=np.float64)
        r = ((observed - model) / scale).ravel()
        return np.where(np.isfinite(r), r, 1e6)

    # from the variant's documented defaults, then with its zero coefficients started at 10⁻³
    for off_zero in (0.0, 1e-3):
        z = np.asarray([_to_z(kind, start or off_zero) for *_, kind, start in coords])
        upper = np.asarray([0.0 if kind == "unit" else CEILING for *_, kind, _ in coords])
        start = z.copy()
        for _ in range(3):  # a coordinate stuck at a bound restarts from its start value
            z, r, jac = _levenberg_marquardt(residual, z, upper)
            cost = float(np.sqrt(np.mean(r ** 2)))
            stuck = (z <= FLOOR - 1) & (start > FLOOR - 1)
            if cost <= TOLERANCE or not stuck.any():
                break
            z = np.where(stuck, start, z)
        if cost <= TOLERANCE:
            break
    if cost > TOLERANCE:
        out.note = (f"not measured: {spec.name} with fitted hyperparameters does not reproduce "
                    f"the run (relative residual {cost:.2g})")
        return
    for j, ((key, keyword, index, kind, _), zi, column) in enumerate(zip(coords, z, jac.T)):
        if key == "lr" and given:
            continue  # the learning rate was given, not a default
        if kind == "zero-or-log" and zi <= FLOOR:  # 0: would 10⁻⁴ show?
            moved = z.copy()
            moved[j] = math.log(1e-4)
            change = float(np.max(np.abs(residual(moved) - r)))
        else:  # moving the value by 10 % (Δz ≈ 0.1) must change a step beyond the residual
            change = 0.1 * float(np.max(np.abs(column)))
        if change <= max(10 * cost, 1e-9):
            out.unidentified.append(key)
            continue
        value = hyper_of(z)[keyword]
        out.measured[key] = float(value[index] if index is not None else value)


def _levenberg_marquardt(residual, z: np.ndarray, upper: np.ndarray, iterations: int = 25):
    """Minimise ‖residual(z)‖² over FLOOR − 1 ≤ z ≤ ``upper`` (finite-difference Jacobian,
    adaptive damping); returns the point, its residual and the Jacobian there."""
    r = residual(z)
    damping = 1e-3
    jac = np.zeros((r.size, z.size))
    for _ in range(iterations):
        for j in range(z.size):
            dz = np.zeros_like(z)
            dz[j] = 1e-6
            jac[:, j] = (residual(z + dz) - r) / 1e-6
        normal = jac.T @ jac
        gradient = jac.T @ r
        improved = False
        while damping < 1e12:
            step = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-12), -gradient)
            candidate = np.clip(z + step, FLOOR - 1, upper)
            rc = residual(candidate)
            if rc @ rc < r @ r:
                z, r, damping, improved = candidate, rc, damping / 10, True
                break
            damping *= 10
        if not improved or float(np.sqrt(np.mean(r ** 2))) < 1e-12:
            break
    for j in range(z.size):
        dz = np.zeros_like(z)
        dz[j] = 1e-6
        jac[:, j] = (residual(z + dz) - r) / 1e-6
    return z, r, jac
