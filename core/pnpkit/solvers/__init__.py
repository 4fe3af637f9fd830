"""The core's generic splitting solvers (registered by the built-in plugin)."""

from .admm import ADMM
from .base import (
    Callback,
    DoesNotApply,
    IterativeSolver,
    Result,
    SolveContext,
    Solver,
    check_choice,
    check_finite,
    check_positive,
    geometric,
    is_finite,
)
from .hqs import HQS, HalfQuadraticSplitting
from .pgd import PGD, ProximalGradient
from .pinv import PseudoInverse

__all__ = ["ADMM", "HQS", "HalfQuadraticSplitting", "PGD", "PseudoInverse", "ProximalGradient",
           "Callback", "DoesNotApply", "IterativeSolver", "Result", "SolveContext", "Solver", "check_choice",
           "check_finite", "check_positive", "geometric", "is_finite"]
