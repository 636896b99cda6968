"""optproof: the verified reference implementation of the classic deep-learning optimizers."""

__version__ = "0.1.0"
