"""heavyball targets (``heavyball.AdamW``, ``heavyball.NAdam``): torch-style classes.

Read from heavyball 3.2.1 ``__init__.py``, ``chainable.py`` (``update_by_adam``,
``update_by_nadam``) and ``utils.py`` (``_fused_compilable_adam_``, ``beta_debias``,
``_compilable_update_``); each claim is measured by the audit:

* ``AdamW`` decays and steps in one line, θ ← θ(1 − λγ) − γu, with the moments kept as
  bias-corrected averages: m̂ₜ = lerp(m̂ₜ₋₁, g, 1 − β̂ₜ) with β̂ₜ = 1 − (1 − β)/(1 − βᵗ)
  (``beta_debias``), which is torch's m/(1 − β₁ᵗ) in another form. Its state is therefore
  not torch's ``exp_avg`` and is not read: the audit checks the parameters' trajectory.
* Both take ε as a floor of the root, m̂/max(√v̂, ε) (``utils.eps_sqrt``), not m̂/(√v̂ + ε)
  [the ``~eps-floor`` probe reproduces every configuration it applies to].
* ``NAdam`` follows Dozat's schedule with torch's ψ (``momentum_decay`` = 4·10⁻³); with
  ``decoupled_weight_decay=True`` it decays as torch's NAdam, but its L2 mode (the default)
  adds λθ to the gradient for the moments and subtracts λθ from the update again
  (``_nadam_finish_weight_decay``): no registered form reproduces it.
* Defaults differ from torch: ``AdamW(lr=0.0025, betas=(0.9, 0.99), weight_decay=0)``,
  ``NAdam(lr=0.002)``; neither takes ``amsgrad`` nor ``maximize`` (those configurations are
  skipped).
* Steps are compiled with ``torch.compile`` (``heavyball.utils.compile_mode``); the audit runs
  them under ``torch.compiler.set_stance("force_eager")``: the conventions and the eager
  arithmetic are checked, not the compiled kernel's rounding.
"""

from __future__ import annotations

from .torch import TorchAdapter

__all__ = ["heavyball_adapter", "EXPECTED"]

EXPECTED = {"AdamW": "adamw", "NAdam": "nadam"}
RENAME = {"amsgrad": (None, None), "maximize": (None, None)}


def heavyball_adapter(target, name, extra=None) -> TorchAdapter:
    return TorchAdapter(target, name, framework="heavyball", rename=RENAME, extra=extra,
                        expected_rule=EXPECTED.get(name), stance="force_eager")
