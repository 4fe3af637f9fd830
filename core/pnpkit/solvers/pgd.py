"""Proximal (projected) gradient descent, with pluggable gradient and proximal steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from .. import operators as ops
from .base import IterativeSolver, SolveContext, check_splitting, geometric


@dataclass(kw_only=True)
class ProximalGradient(IterativeSolver):
    """The loop ``x_{k+1} = proximal(descend(x_k, gradient(x_k)))`` with abstract parts.

    :class:`PGD` is the plug-and-play instance. The three parts see the settings and the
    iterate only; a method whose update needs more (a momentum, an optimiser's moments:
    ProjDiff, RED-Diff) writes its own ``step`` on :class:`~pnpkit.solvers.IterativeSolver`
    and keeps that in the state.
    """

    def gradient(self, ctx: SolveContext, x: Tensor, k: int) -> Tensor:
        raise NotImplementedError

    def descend(self, ctx: SolveContext, x: Tensor, grad: Tensor, k: int) -> Tensor:
        raise NotImplementedError

    def proximal(self, ctx: SolveContext, x: Tensor, k: int) -> Tensor:
        raise NotImplementedError

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        x = state["x"]
        return {"x": self.proximal(ctx, self.descend(ctx, x, self.gradient(ctx, x, k), k), k)}


@dataclass(kw_only=True)
class PGD(ProximalGradient):
    """Plug-and-play proximal gradient descent.

    .. math:: x_{k+1} = P_k\\big(x_k - \\gamma\\, G(x_k)\\big)

    By default ``G`` is the data-fidelity gradient ``A^T (A x - y)`` (a vector-Jacobian
    product for nonlinear operators) and ``P_k`` the denoiser at ``sigma_k``. Projected
    methods swap them: ``G`` a prior direction, ``P`` the projection onto {A x = y}
    (:func:`pnpkit.operators.project`).

    :param float stepsize: ``gamma``; must be below 2 / ||A||^2 for the data gradient.
    :param float sigma: denoiser noise level (first iteration).
    :param float sigma_end: last-iteration noise level (None: constant).

    >>> from pnpkit.testing import toy_problem
    >>> op, prior, x_true, y = toy_problem()
    >>> PGD(iterations=5, stepsize=0.5).solve(y, op, prior).nfe
    5
    """

    name = "pgd"
    stepsize: float = 1.0
    sigma: float = 0.1
    sigma_end: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_splitting(self)

    def gradient(self, ctx: SolveContext, x: Tensor, k: int) -> Tensor:
        return ops.data_gradient(ctx.operator, x, ctx.y)

    def descend(self, ctx: SolveContext, x: Tensor, grad: Tensor, k: int) -> Tensor:
        return x - self.stepsize * grad

    def proximal(self, ctx: SolveContext, x: Tensor, k: int) -> Tensor:
        return ctx.prior.denoise(x, geometric(self.sigma, self.sigma_end, k, self.iterations))
