"""DeepSpeed's ``deepspeed.ops.adam.DeepSpeedCPUAdam`` (the ZeRO-Offload CPU kernel).

Read from DeepSpeed 0.19.8 ``ops/adam/cpu_adam.py`` and ``csrc/includes/cpu_adam.h``; each
claim is measured by the audit:

* ``adamw_mode=True`` (the default) decays θ ← θ(1 − γλ) (AdamW), ``adamw_mode=False`` adds
  λθ to the gradient (Adam with L2); the expected variant follows the flag. The default
  λ is 0 in both modes: AdamW mode without a ``weight_decay`` is plain Adam.
* ``bias_correction=True`` (default) corrects both moments; ``amsgrad=True`` raises (not
  supported), so configurations asking for it are skipped, as are those asking for
  ``maximize`` (no such keyword).
* Everything per step is float32: γ, β₁, β₂, ε, λ held as C++ floats, βᵗ a running float32
  product (``IncrementStep``: t − 1 roundings), 1 − β, the corrections and
  −γ/(1 − β₁ᵗ) in float32 (``update_state``, ``Step_AVX``), then √v·(1 − β₂ᵗ)^(−½) + ε with
  fused multiply-adds (``cpu_adam.h``). The audit judges it under that precision model
  (`PRECISION`); against torch.optim's (float64 scalars, rounded once) it deviates by a few
  ULP from step 1 on (``exp_avg`` 2.2 ULP over a bound of 2.07 in the plain configuration):
  a rounding difference, not a convention.
* The state is ``exp_avg``/``exp_avg_sq`` in float32 (``fp32_optimizer_states=True``) and the
  step counter an ``int``; the C++ op (``CPUAdamBuilder``) is compiled on first use and
  cached under ``~/.cache/torch_extensions`` (``TORCH_EXTENSIONS_DIR``).
"""

from __future__ import annotations

from optproof.reference.bounds import Rounding

from .torch import TorchAdapter

__all__ = ["deepspeed_adapter", "PRECISION"]

PRECISION = Rounding("DeepSpeed CPU Adam: hyperparameters held in float32, per-step scalars in "
                     "float32, βᵗ by repeated multiplication", hyper_dtype="float32",
                     hyper_held=True, scalar_dtype="float32", power="multiplication",
                     source="deepspeed csrc/includes/cpu_adam.h @ 0.19.8 (IncrementStep, "
                            "update_state, Step_AVX)")

RENAME = {"amsgrad": (None, None)}


def deepspeed_adapter(target, name, extra=None) -> TorchAdapter:
    adamw = bool((extra or {}).get("adamw_mode", True))
    return TorchAdapter(target, name, framework="deepspeed", rename=RENAME, extra=extra,
                        expected_rule="adamw" if adamw else "adam", precision=PRECISION)
