"""optproof.reference: high-precision reference steps computed from the specs with mpmath."""

from .run import resolve, run, to_mpf

__all__ = ["run", "resolve", "to_mpf"]
