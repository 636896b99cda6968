"""bitsandbytes targets (``bitsandbytes.optim.AdamW8bit`` …): torch-style classes.

Read from bitsandbytes 0.50.2, ``optim/adam.py``, ``optim/adamw.py``, ``optim/optimizer.py``
(``Optimizer2State``) and ``backends/cpu/ops.py`` (the kernels that run on CPU); each claim
below is measured by the audit or by the experiment named in brackets:

* Every ``Adam*`` and ``AdamW*`` class is ``Optimizer2State("adam", …)``: one kernel whose
  ``weight_decay`` is decoupled, θ ← θ(1 − γλ). ``Adam`` differs from ``AdamW`` only in its
  default λ (0 against 10⁻²), so an ``Adam`` given a λ is AdamW [the audit: ``adam`` is
  expected from the name, ``adamw`` reproduces it].
* The CPU back end decays before the update (as torch); the CUDA kernels
  (``csrc/kernels.cu``) after it, ``adamw:decay-after`` [CPU: the audit; CUDA: not measured
  here].
* ``amsgrad`` is accepted and never passed to the kernel [the audit's ``~amsgrad-ignored``
  probe]; the 8-bit classes raise on ``amsgrad=True``.
* The state lives under ``state1`` (m) and ``state2`` (v), read here as torch's
  ``exp_avg``/``exp_avg_sq``. With 8-bit state (``Adam8bit``, ``AdamW8bit``, the paged
  ones, or ``optim_bits=8``), a tensor of at least ``min_8bit_size`` (default 4096) elements
  keeps m as codes of the signed dynamic map (``qmap1``) and v of the unsigned one
  (``qmap2``), with one float32 absmax per block of 256 elements (``absmax1``,
  ``absmax2``); a smaller tensor keeps float32 state [the quantization experiment].
* Paged classes warn on CPU ("Paged optimizers are not supported on CPU") and run as the
  unpaged class.
"""

from __future__ import annotations

from typing import Any

from .base import QuantizedState
from .torch import TorchAdapter

__all__ = ["bitsandbytes_adapter", "read_quantized", "EXPECTED", "STATE_KEYS", "BLOCK_SIZE"]

SOURCE = "bitsandbytes 0.50.2 optim/optimizer.py (Optimizer2State), backends/cpu/ops.py"
STATE_KEYS = {"state1": "exp_avg", "state2": "exp_avg_sq"}
#: torch's key of each state entry; the 8-bit maps and block scales are read by
#: ``read_quantized``, not as state
STATE_VIEW = {**STATE_KEYS, "qmap1": None, "qmap2": None, "absmax1": None, "absmax2": None}
BLOCK_SIZE = 256  # Optimizer2State.init_state and the CPU kernel both fix it
#: the rule each class claims by its name (``Adam…`` Adam, ``AdamW…`` AdamW; paged, 8-bit and
#: 32-bit variants of each): what the audit checks it against, so that "Adam" being AdamW
#: is a finding, not an assumption
EXPECTED = {f"{paged}{name}{bits}": name.lower() for paged in ("", "Paged")
            for name in ("Adam", "AdamW") for bits in ("", "8bit", "32bit")}
#: the CPU back end (backends/cpu/ops.py ``_quant_blockwise_fp32_direct`` →
#: ``cquantize_blockwise_cpu_fp32``, csrc/cpu_ops.cpp) rounds x/absmax through a 65536-entry
#: look-up table, not to the nearest code: an exact zero is stored as code 131 (+2.1e-5), the
#: quantized-state oracle's ``Quantizer.bitsandbytes_cpu``
ROUNDING = "lut65536 (bitsandbytes CPU quantize_blockwise: 65536-entry table of nearest codes)"


def read_quantized(optimizer: Any, param: Any) -> dict[str, QuantizedState]:
    """The 8-bit entries of ``param``'s state (none where it is kept in float32)."""
    import torch
    state = optimizer.state.get(param, {})
    out = {}
    for stored, key in STATE_KEYS.items():
        codes = state.get(stored)
        if codes is None or codes.dtype != torch.uint8:
            continue
        index = stored[-1]
        out[key] = QuantizedState(
            key=key, stored_as=stored, codes=codes.reshape(-1).long().numpy(),
            scales=state[f"absmax{index}"].double().numpy(),
            code_map=state[f"qmap{index}"].double().numpy(), block_size=BLOCK_SIZE,
            scale_rule="absmax", rounding=ROUNDING,
            compute_dtype="float32", source=SOURCE)
    return out


def bitsandbytes_adapter(target, name, extra=None) -> TorchAdapter:
    # the 8-bit classes refuse amsgrad=True with a ValueError: a configuration asking for it
    # is skipped; the others take it (and ignore it, which the audit must see)
    rename = {"amsgrad": (None, None)} if "8bit" in name else None
    return TorchAdapter(target, name, framework="bitsandbytes", extra=extra, rename=rename,
                        expected_rule=EXPECTED.get(name), state_keys=STATE_VIEW,
                        quantized=read_quantized)
