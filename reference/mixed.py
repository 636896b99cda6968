"""The derived error bound of a mixed-precision step: float32 state, bfloat16/float16 params.

optproof.torch_impl's ``state_dtype=torch.float32`` mode keeps a low-precision parameter's
optimizer state in float32 and, on every path (for-loop, foreach, fused), evaluates the whole
step in float32 from float32 copies of θ and g, rounding only the final parameter store to the
parameter's dtype.  Its bound follows from `optproof.reference.bounds.bounded_run`'s
model in two steps:

1. A bfloat16/float16 value is exactly representable in float32, so the step is *a float32
   kernel* on exactly the inputs the low-precision kernel saw: θ, g (widened exactly) and
   the float32 state.  Every elementwise operation rounds with u = 2⁻²⁴ (plus η for
   underflow), per-step scalars are float64 then cast to float32 — precisely what
   ``bounded_run(..., dtype="float32")`` charges.  Its (x, e₃₂) bounds the float32 result y
   of every output: |y − x| ≤ e₃₂.  The state tensors are stored in float32, so that is
   their bound.
2. The parameter is then stored with one rounding to its dtype p (u_p = 2⁻⁸ for bfloat16,
   2⁻¹¹ for float16; η_p half its smallest subnormal):
   |fl_p(y) − x| ≤ |fl_p(y) − y| + |y − x| ≤ u_p·|y| + η_p + e₃₂ ≤ u_p·(|x| + e₃₂) + η_p + e₃₂.
   Where |x| + that bound exceeds p's largest finite value the bound is ∞ (not
   representable), as in ``bounded_run``.

So the mixed-precision parameter error is about one rounding of its dtype (u_p·|x|) plus
float32-size terms — versus one rounding *of the low dtype per operation* when the state is
kept in bfloat16/float16 — and the state error is float32's.  This is a one-step bound (the
one-step oracle: inputs are the kernel's own state after step t − 1); a trajectory would add
the store rounding at every step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mpmath

from .bounds import Rounding, bounded_run, precision

__all__ = ["mixed_bounded_run"]


def mixed_bounded_run(rule: Any, hyper: Mapping[str, Any] | None, params: Sequence[Any],
                      grads: Sequence[Sequence[Any]], dtype: Any, *, dps: int = 40,
                      state: Mapping[str, Any] | None = None,
                      state_errors: Mapping[str, Sequence[Any]] | None = None,
                      rounding: Rounding | None = None) -> list[dict[str, Any]]:
    """Like `bounded_run` for one step of a ``dtype`` (bfloat16 or
    float16) parameter whose state is float32: state bounds of a float32 kernel, parameter
    bound ``e₃₂ + u·(|x| + e₃₂) + η`` of ``dtype`` (see the module docstring); ``state_errors``
    and ``rounding`` as in `bounded_run`."""
    if len(grads) != 1:
        raise ValueError("mixed_bounded_run is a one-step bound: pass exactly one gradient")
    p = precision(dtype)
    if p.name not in ("bfloat16", "float16"):
        raise ValueError(f"mixed precision is for bfloat16/float16 parameters, got {dtype!r}")
    records = bounded_run(rule, hyper, params, grads, "float32", dps=dps, state=state,
                          state_errors=state_errors, rounding=rounding)
    with mpmath.workdps(dps):
        for record in records:
            out = []
            for x, e in record["param"]:
                bound = e + p.u * (abs(x) + e) + p.eta
                out.append((x, mpmath.inf if abs(x) + bound > p.max else bound))
            record["param"] = out
    return records
