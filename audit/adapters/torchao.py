"""torchao targets (``torchao.optim.AdamW8bit`` …): torch-style classes.

Read from torchao 0.18.0 ``optim/adam.py``, ``optim/quant_utils.py`` and
``optim/subclass_{8bit,4bit,fp8}.py``; each claim is measured by the audit or by the
experiment in brackets:

* ``Adam8bit``, ``Adam4bit``, ``AdamFp8`` add λθ to the gradient (L2, default λ = 0);
  ``AdamW8bit``, ``AdamW4bit``, ``AdamWFp8`` and ``_AdamW`` decay θ ← θ − γλθ before the
  update (default λ = 10⁻²) [the audit]. The step is computed in float32
  (``single_param_adam``), the learning rate is a float32 tensor and the bias corrections
  1 − βᵗ are computed in float32 (``beta1**step``, a float32 ``pow`` of the float32 step
  counter) while 1 − β enters ``lerp`` as a Python float: the audit judges it under that
  precision model (`PRECISION`); against torch.optim's (float64 scalars, rounded once) the
  eager program deviates by a few ULP from step 1 (2.3 ULP over 1.5 in the plain
  configuration), a rounding difference, not a convention.
* The step is compiled with ``torch.compile(fullgraph=True, dynamic=False)``: one compilation
  per shape and per value of every Python scalar (minutes each on a small CPU). The audit
  runs it under ``torch.compiler.set_stance("force_eager")``: it checks the conventions and
  the eager arithmetic of that program, not the compiled kernel's rounding.
* A state tensor is quantized only when the parameter has at least 4096 elements *and* a
  multiple of ``block_size`` (256 for 8-bit and FP8, 128 for 4-bit); otherwise it is a plain
  tensor of the parameter's dtype [the quantization experiment]. 8-bit: codes of the dynamic
  map (signed for m, unsigned for v), one float32 absmax per block; 4-bit: two codes per
  byte, m on a 16-entry signed dynamic map, v on the linear map {1/16, …, 1} (no zero);
  FP8: float8_e4m3fn codes with scale max(absmax, 10⁻¹²)/448 (``quantize_fp8`` clips
  before dividing). Codes are the nearest map entry, a tie
  rounding up (``quantize_8bit_with_qmap``); FP8 rounds by the float8 cast.
* ``bf16_stochastic_round=True`` rounds bfloat16 parameters stochastically
  (``_fp32_to_bf16_sr``); float32 parameters are unaffected.
* ``CPUOffloadOptimizer`` asserts a CUDA or XPU device: it cannot run on a CPU-only machine;
  its CPU step is ``torch.optim.AdamW(fused=True)`` unless another class is given.
"""

from __future__ import annotations

from typing import Any

from optproof.reference.bounds import Rounding

from .base import QuantizedState, Unsupported
from .torch import TorchAdapter

__all__ = ["torchao_adapter", "read_quantized", "PRECISION"]

PRECISION = Rounding("torchao: learning rate a float32 tensor, β rounded to float32 in βᵗ, "
                     "per-step scalars in float32, pow within 1 ULP", hyper_dtype="float32",
                     scalar_dtype="float32", power="libm",
                     source="torchao optim/adam.py @ 0.18.0 (_AdamBase.step, single_param_adam)")

SOURCE = "torchao 0.18.0 optim/subclass_8bit.py, subclass_4bit.py, subclass_fp8.py"
NEAREST = "nearest, ties up (torchao quant_utils.quantize_*bit_with_qmap)"


def _entry(key: str, value: Any) -> QuantizedState | None:
    import torch
    codes, scale = getattr(value, "codes", None), getattr(value, "scale", None)
    if codes is None or scale is None:
        return None
    kind = type(value).__name__
    if kind == "OptimState4bit":  # two codes per byte, high nibble first (dequantize())
        codes = torch.stack([codes >> 4, codes & 0b1111], dim=-1)
    if kind == "OptimStateFp8":  # the code is a float8 bit pattern; its value is the map
        code_map = torch.arange(256, dtype=torch.int32).to(torch.uint8) \
            .view(torch.float8_e4m3fn).double()
        codes = codes.reshape(-1).view(torch.uint8)
        rule, rounding = "max(absmax, 1e-12)/448", "nearest even (cast to float8_e4m3fn)"
    else:
        code_map, rule, rounding = value.qmap.double(), "absmax (clipped below at 1e-12)", NEAREST
    return QuantizedState(key=key, stored_as=key, codes=codes.reshape(-1).long().numpy(),
                          scales=scale.double().numpy(), code_map=code_map.numpy(),
                          block_size=int(value.block_size), scale_rule=rule, rounding=rounding,
                          compute_dtype="float32", source=SOURCE)


def read_quantized(optimizer: Any, param: Any) -> dict[str, QuantizedState]:
    """The quantized entries of ``param``'s state (tensor subclasses holding codes)."""
    out = {}
    for key, value in optimizer.state.get(param, {}).items():
        entry = _entry(key, value)
        if entry is not None:
            out[key] = entry
    return out


class _Unrunnable:
    """A target that cannot run here: every configuration is skipped with the reason."""

    def __init__(self, why: str):
        self.why = why

    def __call__(self, *args, **kwargs):
        raise Unsupported(self.why)


#: the rule each class of ``torchao.optim`` claims by its name (``_AdamW``: its full-precision
#: AdamW, the base of the low-bit ones)
EXPECTED = {f"{name}{bits}": name.lower() for name in ("Adam", "AdamW")
            for bits in ("8bit", "4bit", "Fp8")} | {"_AdamW": "adamw"}


def torchao_adapter(target, name, extra=None) -> TorchAdapter:
    expected = EXPECTED.get(name)
    if name == "CPUOffloadOptimizer":  # wraps torch.optim.AdamW unless told otherwise
        target, expected = _Unrunnable("torchao's CPUOffloadOptimizer asserts a CUDA or XPU "
                                       "device (its CPU step is torch.optim.AdamW, fused, "
                                       "unless another optimizer_class is given)"), "adamw"
    return TorchAdapter(target, name, framework="torchao", extra=extra, expected_rule=expected,
                        quantized=read_quantized, stance="force_eager", precision=PRECISION)
