"""The alternating direction method of multipliers (ADMM), plug-and-play."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import operators as ops
from .base import IterativeSolver, SolveContext, check_splitting, geometric


@dataclass(kw_only=True)
class ADMM(IterativeSolver):
    """Plug-and-play ADMM (scaled form).

    .. math::

        x_{k+1} &= \\arg\\min_x \\tfrac12 \\|A x - y\\|^2 + \\tfrac{1}{2\\gamma}\\|x - (z_k - u_k)\\|^2 \\\\
        z_{k+1} &= D_{\\sigma_k}(x_{k+1} + u_k) \\\\
        u_{k+1} &= u_k + x_{k+1} - z_{k+1}

    :param float stepsize: ``gamma`` of the data proximal step.
    :param float sigma: denoiser noise level (first iteration).
    :param float sigma_end: last-iteration noise level (None: constant).

    >>> from pnpkit.testing import toy_problem
    >>> op, prior, x_true, y = toy_problem()
    >>> ADMM(iterations=20).solve(y, op, prior).iterations
    20
    """

    name = "admm"
    stepsize: float = 1.0
    sigma: float = 0.1
    sigma_end: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_splitting(self)

    def setup(self, ctx: SolveContext, x: Tensor) -> dict[str, Any]:
        return {"x": x, "z": x, "u": torch.zeros_like(x)}

    def data_step(self, ctx: SolveContext, v: Tensor, k: int) -> Tensor:
        return ops.prox_data(ctx.operator, v, ctx.y, self.stepsize)

    def prior_step(self, ctx: SolveContext, v: Tensor, k: int) -> Tensor:
        return ctx.prior.denoise(v, geometric(self.sigma, self.sigma_end, k, self.iterations))

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        x = self.data_step(ctx, state["z"] - state["u"], k)
        z = self.prior_step(ctx, x + state["u"], k)
        return {"x": z, "z": z, "u": state["u"] + x - z}
