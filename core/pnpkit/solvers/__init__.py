"""The core's generic splitting solvers (registered by the built-in plugin)."""

from .admm import ADMM
from .base import IterativeSolver, Result, SolveContext, Solver, geometric
from .hqs import HQS, HalfQuadraticSplitting
from .pgd import PGD, ProximalGradient
from .pinv import PseudoInverse

__all__ = ["ADMM", "HQS", "HalfQuadraticSplitting", "PGD", "PseudoInverse", "ProximalGradient", "IterativeSolver", "Result", "SolveContext", "Solver", "geometric"]
