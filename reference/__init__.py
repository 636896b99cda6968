"""optproof.reference: high-precision reference steps computed from the specs with mpmath."""

from .bounds import PRECISIONS, bounded_run, precision, ulp
from .quantized import Quantizer, StoredState, check_quantized_step
from .run import resolve, run, to_mpf

__all__ = ["run", "resolve", "to_mpf", "bounded_run", "precision", "ulp", "PRECISIONS",
           "check_quantized_step", "Quantizer", "StoredState"]
