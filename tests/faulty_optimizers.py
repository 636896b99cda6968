"""A library of faulty optimizers (and faithful rewrites) for testing the auditor.

Each faulty class is a realistic, distinct fault of a hand-written or ported optimizer, with
torch.optim's constructor signature so that ``optproof audit`` can drive it; ``FAULTS`` maps
its name to the rule it claims, the dtype that exposes it and the words the audit must use to
name it. The faithful classes are algebraic rearrangements of correct rules (torch's
capturable form, other operation orders) that the audit must pass; ``FAITHFUL`` lists them.

Sources of the faults: ``CONVENTIONS.md`` ("Known implementation findings"), the tutorial Adam
with one m and v for all parameters, torch issues #38853 (decay scaling), #78807 (AMSGrad).
"""

from __future__ import annotations

import math
import time

import torch
from torch.optim import Optimizer

__all__ = ["FAULTS", "FAITHFUL"]


class _Adam(Optimizer):
    """A plain hand-written Adam/AdamW (for-loop, float64 Python scalars), the base of the
    Adam faults. ``decoupled`` selects θ ← θ(1 − γλ); subclasses override one piece."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def init_state(self, p):
        return {"step": 0, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p),
                "max_exp_avg_sq": torch.zeros_like(p)}

    def decay(self, p, g, lr, wd):
        if wd == 0:
            return g
        if self.decoupled:
            p.mul_(1 - lr * wd)
            return g
        return g.add(p, alpha=wd)

    def corrections(self, state, b1, b2):
        t = state["step"]
        return 1 - b1 ** t, 1 - b2 ** t

    def moments(self, state, g, b1, b2, amsgrad):
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        if amsgrad:
            torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            return m, state["max_exp_avg_sq"]
        return m, v

    def direction(self, m, v, bc1, bc2, eps):
        return (m / bc1) / ((v / bc2).sqrt() + eps)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state.update(self.init_state(p))
                state["step"] += 1
                g = self.decay(p, g, group["lr"], group["weight_decay"])
                m, v = self.moments(state, g, b1, b2, group["amsgrad"])
                bc1, bc2 = self.corrections(state, b1, b2)
                p.sub_(group["lr"] * self.direction(m, v, bc1, bc2, group["eps"]))


class _AdamW(_Adam):
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


# ----------------------------------------------------------------------------- faults


class AdamEpsInside(_Adam):
    """ε inside the square root: m̂/√(v̂ + ε)."""

    def direction(self, m, v, bc1, bc2, eps):
        return (m / bc1) / (v / bc2 + eps).sqrt()


class AdamNoFirstCorrection(_Adam):
    """The first-moment bias correction forgotten: m/(√v̂ + ε)."""

    def direction(self, m, v, bc1, bc2, eps):
        return m / ((v / bc2).sqrt() + eps)


class AdamWWithL2(_AdamW):
    """"AdamW" that adds λθ to the gradient (L2) — the decoupling forgotten."""

    decoupled = False


class AdamWDecayNotScaled(_AdamW):
    """Decoupled decay not multiplied by the learning rate: θ ← θ(1 − λ)."""

    def decay(self, p, g, lr, wd):
        p.mul_(1 - wd)
        return g


class AdamWDecayAfterStep(_AdamW):
    """The decoupled decay applied after the Adam step: θ ← (θ − γu)(1 − γλ) (bitsandbytes'
    CUDA kernels; its CPU back end decays first)."""

    def decay(self, p, g, lr, wd):
        return g

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        for group in self.param_groups:
            factor = 1 - group["lr"] * group["weight_decay"]
            for p in group["params"]:
                if p.grad is not None and group["weight_decay"] != 0:
                    p.mul_(factor)


class AdamWAmsgradIgnored(_AdamW):
    """Accepts ``amsgrad`` and ignores it (bitsandbytes 0.50's Adam and AdamW take the keyword
    and never pass it on)."""

    def moments(self, state, g, b1, b2, amsgrad):
        return super().moments(state, g, b1, b2, False)


class AdamDecoupledAmsgradIgnored(AdamWAmsgradIgnored):
    """An "Adam" that decays decoupled and ignores ``amsgrad``: two differences at once
    (bitsandbytes 0.50's Adam)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


class AdamWAmsgradMaxOfCorrected(_AdamW):
    """AMSGrad's maximum taken over the bias-corrected v̂ instead of the raw v."""

    def moments(self, state, g, b1, b2, amsgrad):
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        if amsgrad:
            vhat = v / (1 - b2 ** state["step"])
            torch.maximum(state["max_exp_avg_sq"], vhat, out=state["max_exp_avg_sq"])
            return m, state["max_exp_avg_sq"]
        return m, v

    def direction(self, m, v, bc1, bc2, eps):
        if v is not None and getattr(self, "_amsgrad_now", False):
            return (m / bc1) / (v.sqrt() + eps)
        return super().direction(m, v, bc1, bc2, eps)

    @torch.no_grad()
    def step(self, closure=None):
        self._amsgrad_now = any(g["amsgrad"] for g in self.param_groups)
        return super().step(closure)


class AdamMaximizeIgnored(_Adam):
    """Accepts ``maximize`` and ignores it."""

    @torch.no_grad()
    def step(self, closure=None):
        saved = [g["maximize"] for g in self.param_groups]
        for g in self.param_groups:
            g["maximize"] = False
        try:
            super().step(closure)
        finally:
            for g, s in zip(self.param_groups, saved):
                g["maximize"] = s


class AdamStepPerParameter(_Adam):
    """Per-parameter moments, but the bias corrections read one counter on the optimizer,
    advanced for every parameter tensor it updates (``state['step']`` itself is right)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._t = 0

    def corrections(self, state, b1, b2):
        self._t += 1
        return 1 - b1 ** self._t, 1 - b2 ** self._t


class TutorialAdam(Optimizer):
    """The widely copied tutorial Adam: one m and one v shared by every parameter tensor
    (Python attributes, not per-parameter state) and β₁ᵗ, β₂ᵗ multiplied once per parameter.
    Parameters of different shapes make it raise a broadcasting error."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.m, self.v, self.b1t, self.b2t = 0.0, 0.0, 1.0, 1.0

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                g = p.grad + group["weight_decay"] * p
                self.m = b1 * self.m + (1 - b1) * g
                self.v = b2 * self.v + (1 - b2) * g * g
                self.b1t *= b1
                self.b2t *= b2
                mhat = self.m / (1 - self.b1t)
                vhat = self.v / (1 - self.b2t)
                p.sub_(group["lr"] * mhat / (vhat.sqrt() + group["eps"]))


class AdamStateNotSaved(_Adam):
    """The second moment kept in a dict on the optimizer instead of ``self.state``: it works
    until a checkpoint is resumed, then starts again from zero."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sq: dict = {}

    def init_state(self, p):
        state = super().init_state(p)
        self._sq[p] = state.pop("exp_avg_sq")
        return state

    def moments(self, state, g, b1, b2, amsgrad):
        p = next(q for q, s in self.state.items() if s is state)
        state["exp_avg_sq"] = self._sq.setdefault(p, torch.zeros_like(g))
        try:
            return super().moments(state, g, b1, b2, amsgrad)
        finally:
            del state["exp_avg_sq"]


class AdamFloat32State(_Adam):
    """Moments kept in float32 whatever the parameters' dtype (a "memory saving")."""

    def init_state(self, p):
        state = super().init_state(p)
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            state[k] = state[k].float()
        return state

    def moments(self, state, g, b1, b2, amsgrad):
        m, v = super().moments(state, g.float(), b1, b2, amsgrad)
        return m.to(g.dtype), v.to(g.dtype)


class _SGD(Optimizer):
    """Hand-written torch SGD; subclasses override one piece."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def buffer(self, state, g, mu, tau):
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = g.clone()
        else:
            buf.mul_(mu).add_(g, alpha=1 - tau)
        return buf

    def look(self, g, buf, old, mu):
        return g + mu * buf

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            mu, tau = group["momentum"], group["dampening"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                if mu:
                    state = self.state[p]
                    old = state.get("momentum_buffer")
                    old = None if old is None else old.clone()
                    buf = self.buffer(state, g, mu, tau)
                    g = self.look(g, buf, old, mu) if group["nesterov"] else buf
                p.add_(g, alpha=-group["lr"])


class SGDDampenedStart(_SGD):
    """Dampening applied at the first step too: b₁ = (1 − τ)g₁."""

    def buffer(self, state, g, mu, tau):
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = torch.zeros_like(g)
        buf.mul_(mu).add_(g, alpha=1 - tau)
        return buf


class SGDStaleNesterov(_SGD):
    """Nesterov's look-ahead with the buffer before this step's update: g + μbₜ₋₁."""

    def look(self, g, buf, old, mu):
        return g + mu * (old if old is not None else torch.zeros_like(g))


class SGDLrInVelocity(_SGD):
    """Sutskever's velocity v = μv − γg inside an SGD that claims torch semantics (the buffer
    then holds −γ·b; equal to torch at constant lr only)."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            mu, lr = group["momentum"], group["lr"]
            for p in group["params"]:
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                if not mu:
                    p.add_(g, alpha=-lr)
                    continue
                state = self.state[p]
                v = state.setdefault("momentum_buffer", torch.zeros_like(p))
                v.mul_(mu).add_(g, alpha=-lr)
                p.add_(mu * v - lr * g if group["nesterov"] else v)


class RMSpropEpsInside(Optimizer):
    """RMSprop with ε inside the root √(v + ε) in a class claiming torch semantics."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            a, eps, mu = group["alpha"], group["eps"], group["momentum"]
            for p in group["params"]:
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["square_avg"] = torch.zeros_like(p)
                    if group["centered"]:
                        state["grad_avg"] = torch.zeros_like(p)
                    if mu:
                        state["momentum_buffer"] = torch.zeros_like(p)
                state["step"] += 1
                v = state["square_avg"].mul_(a).addcmul_(g, g, value=1 - a)
                if group["centered"]:
                    gbar = state["grad_avg"].mul_(a).add_(g, alpha=1 - a)
                    d = (v - gbar * gbar + eps).sqrt()
                else:
                    d = (v + eps).sqrt()
                if mu:
                    buf = state["momentum_buffer"].mul_(mu).addcdiv_(g, d)
                    p.add_(buf, alpha=-group["lr"])
                else:
                    p.addcdiv_(g, d, value=-group["lr"])


class AdagradLrDecayOffByOne(Optimizer):
    """Adagrad with γₜ = γ/(1 + tκ) (torch: 1 + (t − 1)κ)."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"] = torch.tensor(0.0)
                self.state[p]["sum"] = torch.full_like(p, initial_accumulator_value)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                state["step"] += 1
                t = state["step"].item()
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                clr = group["lr"] / (1 + t * group["lr_decay"])
                state["sum"].addcmul_(g, g, value=1)
                p.addcdiv_(g, state["sum"].sqrt().add_(group["eps"]), value=-clr)


class AdamNaNLater(_Adam):
    """Returns NaN from the third step on (a division by a vanishing denominator)."""

    def direction(self, m, v, bc1, bc2, eps):
        out = super().direction(m, v, bc1, bc2, eps)
        return out * math.nan if bc1 > 0.25 else out


class AdamHangs(_Adam):
    """Never returns from its second step."""

    @torch.no_grad()
    def step(self, closure=None):
        if any(s.get("step", 0) >= 1 for s in self.state.values()):
            while True:
                time.sleep(0.01)
        return super().step(closure)


class AdamHangsAtOnce(_Adam):
    """Never returns from its first step (the warm-up allowance would apply to it)."""

    @torch.no_grad()
    def step(self, closure=None):
        while True:
            time.sleep(0.01)


class AdamRaises(_Adam):
    """Raises in its second step."""

    @torch.no_grad()
    def step(self, closure=None):
        if any(s.get("step", 0) >= 1 for s in self.state.values()):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return super().step(closure)


#: name → (claimed rule, dtype exposing it, words the audit must use to name the fault)
FAULTS = {
    "AdamEpsInside": ("adam", "float32", ["inside the square root"]),
    "AdamNoFirstCorrection": ("adam", "float32", ["first-moment bias correction"]),
    "AdamWWithL2": ("adamw", "float32", ["behaves as adam", "L2"]),
    "AdamWDecayNotScaled": ("adamw", "float32", ["adamw:fully-decoupled", "not scaled by the lr"]),
    "AdamWAmsgradMaxOfCorrected": ("adamw", "float32", ["AMSGrad maximum taken in the wrong place"]),
    "AdamMaximizeIgnored": ("adam", "float32", ["maximize ignored"]),
    "AdamWDecayAfterStep": ("adamw", "float32", ["behaves as adamw:decay-after", "after the update"]),
    "AdamWAmsgradIgnored": ("adamw", "float32", ["amsgrad ignored"]),
    "AdamDecoupledAmsgradIgnored": ("adam", "float32", ["behaves as adamw rather than adam",
                                                        "amsgrad ignored"]),
    "AdamStepPerParameter": ("adam", "float32", ["step counter advanced once per parameter"]),
    "TutorialAdam": ("adam", "float32", ["moments shared by all parameters",
                                         "advanced once per parameter"]),
    "AdamStateNotSaved": ("adam", "float32", ["a state key not saved"]),
    "AdamFloat32State": ("adam", "float64", ["float32"]),
    "SGDDampenedStart": ("sgd", "float32", ["dampening applied at the first step"]),
    "SGDStaleNesterov": ("sgd", "float32", ["wrong Nesterov form"]),
    "SGDLrInVelocity": ("sgd", "float32", ["behaves as sgd:sutskever", "γ inside the velocity"]),
    "RMSpropEpsInside": ("rmsprop", "float32", ["behaves as rmsprop:eps-inside", "inside the root"]),
    "AdagradLrDecayOffByOne": ("adagrad", "float32", ["off by one"]),
    "AdamNaNLater": ("adam", "float32", ["NaN", "where the reference is finite"]),
    "AdamRaises": ("adam", "float32", ["raised", "RuntimeError"]),
    "AdamHangs": ("adam", "float32", ["timed out"]),
}


# ----------------------------------------------------------------------------- faithful


class HandAdam(_Adam):
    """Adam in another operation order: m by lerp, step size γ/(1 − β₁ᵗ) folded first,
    denominator √v/√(1 − β₂ᵗ) + ε."""

    def moments(self, state, g, b1, b2, amsgrad):
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - b1)
        v.mul_(b2).add_(g * g * (1 - b2))
        if amsgrad:
            torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            return m, state["max_exp_avg_sq"]
        return m, v

    def direction(self, m, v, bc1, bc2, eps):
        return m * (1 / bc1) / (v.sqrt() / math.sqrt(bc2) + eps)


class CapturableFormAdamW(_AdamW):
    """AdamW in torch's capturable arithmetic: step = γ/(1 − β₁ᵗ), denominator
    √v/(√(1 − β₂ᵗ)·(−step)) + ε/(−step), θ += m/denominator (torch.optim ``adam.py``)."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            for p in group["params"]:
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state.update(self.init_state(p))
                state["step"] += 1
                t = state["step"]
                p.mul_(1 - lr * group["weight_decay"])
                m, v = self.moments(state, g, b1, b2, group["amsgrad"])
                step_size_neg = -(lr / (1 - b1 ** t))
                denom = (v.sqrt() / (math.sqrt(1 - b2 ** t) * step_size_neg)).add_(eps / step_size_neg)
                p.addcdiv_(m, denom)


class HandSGD(_SGD):
    """torch's SGD written out by hand (the reference implementation, another code path)."""


def torch_fused_sgd(params, **kwargs):
    """torch.optim.SGD on its fused CPU kernel: in torch 2.13, with bfloat16/float16
    parameters, the kernel's vector loop never writes θ (tests/test_vector_loops.py)."""
    return torch.optim.SGD(params, fused=True, **kwargs)


#: name → claimed rule
FAITHFUL = {"HandAdam": "adam", "CapturableFormAdamW": "adamw", "HandSGD": "sgd"}
