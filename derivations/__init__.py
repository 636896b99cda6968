"""optproof.derivations: every update rule stated once in SymPy, and what follows from it.

>>> from optproof.derivations import rule
>>> rule("adamw").program().closed_form["param"]  # doctest: +SKIP
"""

from .program import Builder, Line, Program, State
from .spec import Spec, register, rule, rules
from .symbols import HYPERS, Hyper, hyper
from . import specs  # noqa: F401,E402  (registers the built-in rules)

__all__ = ["Builder", "Line", "Program", "State", "Spec", "register", "rule", "rules", "HYPERS",
           "Hyper", "hyper"]
