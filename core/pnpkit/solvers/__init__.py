"""The core's generic splitting solvers (registered by the built-in plugin)."""

from .admm import ADMM
from .base import IterativeSolver, Result, SolveContext, Solver, geometric
from .hqs import HQS, HalfQuadraticSplitting
from .pgd import PGD

__all__ = ["ADMM", "HQS", "HalfQuadraticSplitting", "PGD", "IterativeSolver", "Result", "SolveContext", "Solver", "geometric"]
