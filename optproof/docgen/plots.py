"""The documentation's plots: data computed from optproof, drawn with matplotlib.

Each plot is two functions: ``data()`` computes the numbers to draw (fixed seeds, float64 or
mpmath, every float rounded to `DIGITS` significant digits so that last-bit differences
between machines do not show), and ``draw(data)`` turns exactly those numbers into a figure.
A plot's *fingerprint* is the SHA-256 of its data in canonical JSON; ``optproof docs`` writes
``docs/plots/<name>.png`` and a sidecar ``docs/plots/<name>.json`` holding the fingerprint and
the PNG's own SHA-256.

``optproof docs --check`` does not redraw: it recomputes the data (cheap), compares the
fingerprint with the sidecar's (the plot is stale if the rules, the kernels or the problem
changed) and the PNG's bytes with the sidecar's hash (nobody replaced the image by hand).
The PNG itself is byte-stable for one matplotlib version — Agg backend, matplotlib's default
style and bundled DejaVu font, no ``Software``/date metadata — so regenerating it on the same
versions gives the same bytes; a different matplotlib version may anti-alias differently,
which is why the check compares data rather than pixels.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PLOTS", "Plot", "fingerprint", "render_png", "DIGITS"]

#: significant digits kept of every plotted float (the fingerprint's resolution)
DIGITS = 9


def _r(x: Any) -> float:
    """``x`` rounded to `DIGITS` significant digits, as a Python float."""
    return float(f"{float(x):.{DIGITS}g}")


def fingerprint(data: Any) -> str:
    """SHA-256 of ``data`` as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Plot:
    """A plot: its file name, caption, data and drawing functions."""

    name: str
    title: str
    caption: str
    data: Callable[[], dict[str, Any]]
    draw: Callable[[dict[str, Any]], Any]  # returns a matplotlib Figure


# --------------------------------------------------------------------- L2 vs decoupled decay

#: f(θ) = ½ Σᵢ hᵢ (θᵢ − 1)²: four coordinates whose curvatures span three decades
_CURV = (10.0, 1.0, 0.1, 0.01)
_THETA0 = 2.0
_L2_STEPS = 400
_L2_HYPER = {"lr": 0.01, "weight_decay": 0.1}


def _l2_vs_decoupled() -> dict[str, Any]:
    """Adam + L2 (``torch_impl.Adam``) against AdamW (``torch_impl.AdamW``) in float64 on
    f(θ) = ½ Σ hᵢ (θᵢ − 1)², from θ₀ = 2; at every step also the *effective decay*: the part of the
    step due to weight decay, (θ without decay − θ with decay)/(γ·θₜ₋₁), taken from the same
    state (a copy of the optimizer stepped with λ = 0). AdamW's is λ for every coordinate;
    Adam + L2's is divided by each coordinate's √v̂."""
    import torch

    from optproof.torch_impl import Adam, AdamW

    h = torch.tensor(_CURV, dtype=torch.float64)
    out: dict[str, Any] = {"curvature": list(_CURV), "hyper": _L2_HYPER, "steps": _L2_STEPS}
    for name, cls in (("adam", Adam), ("adamw", AdamW)):
        theta = torch.full((len(_CURV),), _THETA0, dtype=torch.float64, requires_grad=True)
        opt = cls([theta], **_L2_HYPER)
        ghost_theta = theta.detach().clone().requires_grad_(True)
        ghost = cls([ghost_theta], **{**_L2_HYPER, "weight_decay": 0.0})
        path, decay = [[_r(x) for x in theta.tolist()]], []
        for _ in range(_L2_STEPS):
            prev = theta.detach().clone()
            grad = h * (prev - 1.0)
            # the counterfactual step without decay, from the same state
            with torch.no_grad():
                ghost_theta.copy_(prev)
            ghost.state[ghost_theta] = copy.deepcopy(opt.state[theta])
            ghost_theta.grad = grad.clone()
            ghost.step()
            theta.grad = grad.clone()
            opt.step()
            lr = _L2_HYPER["lr"]
            eff = (ghost_theta.detach() - theta.detach()) / (lr * prev)
            decay.append([_r(x) for x in eff.tolist()])
            path.append([_r(x) for x in theta.tolist()])
        out[name] = {"theta": path, "effective_decay": decay}
    return out


def _draw_l2(data: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    lam = data["hyper"]["weight_decay"]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    steps = range(len(data["adamw"]["theta"]))
    for i, h in enumerate(data["curvature"]):
        for name, style in (("adamw", "-"), ("adam", "--")):
            ax1.plot(steps, [row[i] for row in data[name]["theta"]], style, color=colors[i],
                     label=f"h = {h:g}" if name == "adamw" else None)
            ax2.plot(range(1, len(data[name]["effective_decay"]) + 1),
                     [row[i] / lam for row in data[name]["effective_decay"]], style,
                     color=colors[i])
    ax1.set(xlabel="step t", ylabel="θᵢ,ₜ",
            title="f(θ) = ½Σ hᵢ(θᵢ − 1)²: AdamW (solid), Adam + L2 (dashed)")
    ax1.legend(title="curvature", fontsize="small")
    ax2.set(yscale="log", xlabel="step t", ylabel="effective decay / λ",
            title="decay applied per unit lr, relative to λ")
    ax2.axhline(1.0, color="black", linewidth=0.6)
    ax2.set_ylim(1e-3, 10)
    ax2.annotate("AdamW (solid): exactly λ for every coordinate", (0.3, 0.85),
                 xycoords="axes fraction", fontsize="small")
    return fig


# --------------------------------------------------------------------- momentum forms

_MOM_STEPS = 36
_MOM_DROP = 12  # the learning rate drops tenfold from this step on
_MOM_HYPER = {"momentum": 0.9}


def _momentum_forms() -> dict[str, Any]:
    """torch's momentum (``sgd``: b ← μb + g, θ ← θ − γₜb) against Sutskever's
    (``sgd:sutskever``: m ← μm − γₜg, θ ← θ + m) from optproof's mpmath references, on
    f(θ) = ½θ² from θ₀ = 1 under a step schedule γₜ = 0.1, then 0.01 from step 12. Under a
    constant γ the two are the same (v = −γb); when γ drops, torch's whole buffer is rescaled
    at once while Sutskever's velocity keeps the old γ and fades."""
    from optproof.reference import run

    lrs = [0.1 if t < _MOM_DROP else 0.01 for t in range(1, _MOM_STEPS + 1)]
    out: dict[str, Any] = {"lr": lrs, "hyper": _MOM_HYPER}
    for name in ("sgd", "sgd:sutskever"):
        theta, state, path, velocity = 1.0, None, [1.0], []
        for k in range(_MOM_STEPS):
            record = run(name, {**_MOM_HYPER, "lr": lrs[k]}, [theta], [[theta]], dps=30,
                         state=state)[-1]
            theta = record["param"][0]
            state = {key: value for key, value in record.items() if key != "param"}
            buffer = record["momentum_buffer"][0]
            # the step the buffer stands for, in parameter units: −γₜb (torch) or m (Sutskever)
            velocity.append(_r(-lrs[k] * buffer if name == "sgd" else buffer))
            path.append(_r(theta))
        out[name] = {"theta": path, "velocity": velocity}
    return out


def _draw_momentum(data: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    steps = range(len(data["sgd"]["theta"]))
    for name, style, label in (("sgd", "o-", "torch: b ← μb + g, θ ← θ − γₜb"),
                               ("sgd:sutskever", "s--", "Sutskever: m ← μm − γₜg, θ ← θ + m")):
        ax1.plot(steps, data[name]["theta"], style, markersize=3, label=label)
        ax2.plot(range(1, len(steps)), data[name]["velocity"], style, markersize=3, label=label)
    drop = data["lr"].index(min(data["lr"])) + 1
    for ax in (ax1, ax2):
        ax.axvline(drop - 0.5, color="gray", linewidth=0.8, linestyle=":")
        ax.set_xlabel("step t")
    ax1.set(ylabel="θₜ", title=f"f(θ) = ½θ², μ = {data['hyper']['momentum']}, γ = 0.1 → 0.01 "
            f"at t = {drop}")
    ax1.legend(fontsize="small")
    ax2.set(ylabel="step taken θₜ − θₜ₋₁", title="equal until the schedule changes γ")
    return fig


# --------------------------------------------------------------------- one-step ULP errors

_ULP_RULES = {  # rule → (torch class name, hyperparameters)
    "sgd": ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    "adagrad": ("Adagrad", {"lr": 0.1, "weight_decay": 0.01}),
    "adadelta": ("Adadelta", {"lr": 1.0, "weight_decay": 0.01}),
    "rmsprop": ("RMSprop", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}),
    "adam": ("Adam", {"lr": 0.01, "weight_decay": 0.01}),
    "adamw": ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    "nadam": ("NAdam", {"lr": 0.01, "weight_decay": 0.01}),
}
_ULP_DTYPES = ("float64", "float32", "bfloat16", "float16")
_ULP_N = 24  # elements per tensor
_ULP_WARMUP = 2  # steps taken before the measured one


def _torch_hyper(hyper: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in hyper.items()}


def _ulp_errors() -> dict[str, Any]:
    """One-step errors in ULPs of torch.optim's and optproof.torch_impl's kernels (CPU,
    default for-loop path) for each rule and dtype: after two warm-up steps, snapshot the
    kernel's parameter and state, take step 3, and compare each element with
    `optproof.reference.bounded_run` started from the snapshot (the one-step oracle):
    error = |kernel − exact| / ulp(exact). Also the derived bound, in the same ULPs."""
    import mpmath
    import torch

    import optproof.torch_impl as ours
    from optproof.derivations import rule as get_rule
    from optproof.reference import bounded_run, precision, ulp

    out: dict[str, Any] = {"rules": list(_ULP_RULES), "dtypes": list(_ULP_DTYPES),
                           "n": _ULP_N, "warmup": _ULP_WARMUP, "torch": torch.__version__,
                           "errors": {}, "bounds": {}}
    for rule_name, (cls_name, hyper) in _ULP_RULES.items():
        program = get_rule(rule_name).program()
        for dtype_name in _ULP_DTYPES:
            dtype = getattr(torch, dtype_name)
            p = precision(dtype_name)
            gen = torch.Generator().manual_seed(20240611)
            start = torch.randn(_ULP_N, generator=gen, dtype=torch.float64)
            grads = [torch.randn(_ULP_N, generator=gen, dtype=torch.float64)
                     for _ in range(_ULP_WARMUP + 1)]
            for impl, module in (("torch.optim", torch.optim), ("optproof", ours)):
                theta = start.to(dtype).requires_grad_(True)
                opt = getattr(module, cls_name)([theta], **_torch_hyper(hyper))
                for grad in grads[:-1]:
                    theta.grad = grad.to(dtype)
                    opt.step()
                state = opt.state[theta]
                snap = {"step": _ULP_WARMUP}
                for s in program.states:
                    if s.key in state:
                        value = state[s.key]
                        snap[s.key] = (float(value) if s.per_step
                                       else value.double().flatten().tolist())
                params = theta.detach().double().tolist()
                grad = grads[-1].to(dtype)
                theta.grad = grad
                opt.step()
                kernel = theta.detach().double().tolist()
                record = bounded_run(rule_name, hyper, params, [grad.double().tolist()],
                                     dtype_name, dps=40, state=snap)[-1]
                errors, bounds = [], []
                for k, (exact, bound) in zip(kernel, record["param"]):
                    unit = ulp(exact, p)
                    errors.append(_r(abs(mpmath.mpf(k) - exact) / unit))
                    bounds.append(_r(bound / unit))
                out["errors"][f"{impl}|{rule_name}|{dtype_name}"] = errors
                out["bounds"][f"{impl}|{rule_name}|{dtype_name}"] = max(bounds)
    return out


def _draw_ulp(data: dict[str, Any]):
    import matplotlib.pyplot as plt
    import numpy as np

    rules, dtypes = data["rules"], data["dtypes"]
    fig, axes = plt.subplots(1, len(dtypes), figsize=(13, 4.2), layout="constrained",
                             sharey=True)
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, data["n"])
    impls = (("torch.optim", -0.2, "o"), ("optproof", 0.2, "^"))
    for ax, dtype in zip(axes, dtypes):
        for color, (impl, shift, marker) in zip(("C0", "C1"), impls):
            for x, rule_name in enumerate(rules):
                errors = data["errors"][f"{impl}|{rule_name}|{dtype}"]
                ax.scatter(x + shift + jitter[:len(errors)], errors, s=9, marker=marker,
                           color=color, alpha=0.7, linewidths=0,
                           label=impl if x == 0 else None)
                ax.plot([x + shift - 0.15, x + shift + 0.15],
                        [data["bounds"][f"{impl}|{rule_name}|{dtype}"]] * 2,
                        color="black", linewidth=1)
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xticks(range(len(rules)), rules, rotation=45, ha="right")
        ax.set_title(dtype)
        ax.grid(axis="y", linewidth=0.3)
    axes[0].set_ylabel("|kernel − exact| in ULPs of the dtype")
    axes[0].legend(fontsize="small", loc="upper left")
    fig.suptitle(f"One-step error of each element (CPU, torch {data['torch']}); "
                 "black bar: the derived bound (largest over the elements)", fontsize="medium")
    return fig


PLOTS: tuple[Plot, ...] = (
    Plot("l2-vs-decoupled", "L2 against decoupled weight decay",
         "Adam + L2 (`adam`, dashed) against AdamW (`adamw`, solid), optproof's kernels in "
         "float64, on f(θ) = ½Σ hᵢ(θᵢ − 1)² from θ = 2, with curvatures h = 10, 1, 0.1 and "
         "0.01 (lr 0.01, λ = 0.1). "
         "Right: the decay each step actually applies, per unit learning rate and relative to "
         "λ, measured as the difference to the same step taken without decay from the same "
         "state. AdamW decays every coordinate by exactly γλ and all four settle together; under "
         "Adam + L2 the decay term passes through the moments and is divided by √v̂ like the "
         "gradient, so the stiff coordinates are barely decayed while the flat ones are pulled "
         "to the minimum of the L2-regularised loss, θ = h/(h + λ).",
         _l2_vs_decoupled, _draw_l2),
    Plot("momentum-forms", "Momentum: torch's form against Sutskever's under a schedule",
         "optproof's 30-digit references of `sgd` (torch: the buffer b holds gradients, the "
         "learning rate multiplies it at every step) and `sgd:sutskever` (the velocity m holds "
         "learning-rate-scaled gradients) on f(θ) = ½θ², momentum 0.9. Under the constant "
         "learning rate of the first steps the two trajectories coincide (v = −γb, the theorem "
         "[`torch-momentum-equals-sutskever`](theorems/torch-momentum-equals-sutskever.md)); "
         "when the learning rate drops tenfold, torch's step shrinks at once while "
         "Sutskever's velocity still carries the old learning rate and fades at rate μ.",
         _momentum_forms, _draw_momentum),
    Plot("ulp-errors", "One-step errors of the kernels, in ULPs",
         "For each rule and dtype, 24 elements after two warm-up steps: the error of the third "
         "step of torch.optim's and optproof's CPU kernels against the exact step computed "
         "from the kernel's own state (the one-step oracle), in units in the last place of "
         "the dtype at the exact value; the black bar is the derived bound of "
         "`optproof.reference.bounded_run`. torch.optim's NAdam in float64 lands orders of "
         "magnitude outside its bound: it keeps `mu_product` and `step` as float32 tensors "
         "(`_get_scalar_dtype()`) even for float64 parameters, so the coefficients of its "
         "float64 step carry float32 rounding errors.",
         _ulp_errors, _draw_ulp),
)


def render_png(plot: Plot, data: dict[str, Any]) -> bytes:
    """The PNG bytes of ``plot`` drawn from ``data``: Agg backend, matplotlib's default style,
    no metadata (no ``Software`` text chunk, no date), so the bytes depend only on the data
    and the matplotlib version."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with plt.style.context("default"), matplotlib.rc_context({"svg.hashsalt": "optproof"}):
        fig = plot.draw(data)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
        plt.close(fig)
    return buffer.getvalue()
