"""Half-quadratic splitting (HQS), with pluggable data and prior steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from .. import operators as ops
from .base import IterativeSolver, SolveContext, check_splitting, geometric


@dataclass(kw_only=True)
class HalfQuadraticSplitting(IterativeSolver):
    """The HQS loop with abstract steps: ``x = data_step(z)``, then ``z = prior_step(x)``.

    Both iterates are logged (stages ``"data"`` and ``"iterate"``), so a convergence plot
    shows the data-consistent and the regularised estimate of every round. A splitting
    whose two steps depend only on the iteration ``k`` subclasses this; :class:`HQS` is the
    plug-and-play instance with a proximal data step and a denoiser. (DCDP, HQS in the
    limit mu -> 0, writes its own ``step``: its rounds need the state ``setup`` builds.)
    """

    def setup(self, ctx: SolveContext, x: Tensor) -> dict[str, Any]:
        return {"x": x, "z": x}

    def data_step(self, ctx: SolveContext, z: Tensor, k: int) -> Tensor:
        raise NotImplementedError

    def prior_step(self, ctx: SolveContext, x: Tensor, k: int) -> Tensor:
        raise NotImplementedError

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        x = self.data_step(ctx, state["z"], k)
        ctx.log(k, x, stage="data")
        z = self.prior_step(ctx, x, k)
        return {"x": z, "z": z}


@dataclass(kw_only=True)
class HQS(HalfQuadraticSplitting):
    """Plug-and-play half-quadratic splitting.

    .. math::

        x_{k+1} &= \\arg\\min_x \\tfrac12 \\|A x - y\\|^2 + \\tfrac{1}{2\\gamma}\\|x - z_k\\|^2 \\\\
        z_{k+1} &= D_{\\sigma_k}(x_{k+1})

    with ``sigma_k`` decaying geometrically from ``sigma`` to ``sigma_end`` (DPIR's schedule;
    constant when ``sigma_end`` is None).

    :param float stepsize: ``gamma``, the weight of the data term's proximal step.
    :param float sigma: denoiser noise level at the first iteration (signal range [-1, 1]).
    :param float sigma_end: noise level at the last iteration (None: constant).

    >>> import torch
    >>> from pnpkit.testing import toy_problem
    >>> op, prior, x_true, y = toy_problem()
    >>> res = HQS(iterations=50, stepsize=1.0, sigma=0.5).solve(y, op, prior)
    >>> res.x.shape == x_true.shape
    True
    """

    name = "hqs"
    stepsize: float = 1.0
    sigma: float = 0.1
    sigma_end: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_splitting(self)

    def sigma_at(self, k: int) -> float:
        return geometric(self.sigma, self.sigma_end, k, self.iterations)

    def data_step(self, ctx: SolveContext, z: Tensor, k: int) -> Tensor:
        """Data consistency from ``z``: the exact proximal step."""
        return ops.prox_data(ctx.operator, z, ctx.y, self.stepsize)

    def prior_step(self, ctx: SolveContext, x: Tensor, k: int) -> Tensor:
        """Regularisation of ``x``: the prior's denoiser at ``sigma_k``."""
        return ctx.prior.denoise(x, self.sigma_at(k))
