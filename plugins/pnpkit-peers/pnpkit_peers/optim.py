"""deepinv's plug-and-play optimisers (HQS, ADMM) and RED with a pnpkit prior as denoiser."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pnpkit.operators import pseudo_inverse
from pnpkit.solvers import SolveContext

from .common import PeerSolver, to_unit_range


@dataclass(kw_only=True)
class _DeepinvOptim(PeerSolver):
    """Settings shared by deepinv's optimisers; ``sigma`` is in pnpkit's [-1, 1] units.

    They start from the same point as pnpkit's own HQS / ADMM / PGD: the pseudo-inverse in
    pnpkit's range, mapped to [0, 1] (unobserved pixels mid-grey, not black).
    """

    iterations: int = 30
    stepsize: float = 1.0
    sigma: float = 0.1
    lambda_reg: float = 1.0

    algorithm = "HQS"

    def prior(self, denoiser: object) -> object:
        import deepinv

        return deepinv.optim.PnP(denoiser=denoiser)

    def run(self, ctx: SolveContext, seed: int) -> Tensor:
        import deepinv

        from pnpkit.bridge import as_deepinv_denoiser

        y01, physics = to_unit_range(ctx.y, ctx.operator)
        cls = getattr(deepinv.optim, self.algorithm)
        model = cls(data_fidelity=deepinv.optim.L2(), prior=self.prior(as_deepinv_denoiser(ctx.prior)),
                    stepsize=self.stepsize, g_param=self.sigma / 2, lambda_reg=self.lambda_reg,
                    max_iter=self.iterations)
        with torch.no_grad():
            start = (pseudo_inverse(ctx.operator, ctx.y) + 1) / 2
            init = (start, torch.zeros_like(start)) if self.algorithm == "ADMM" else start
            return 2 * model(y01, physics, init=init) - 1


@dataclass(kw_only=True)
class DeepinvHQS(_DeepinvOptim):
    """deepinv's plug-and-play half-quadratic splitting (``deepinv.optim.HQS`` with ``PnP``)."""

    name = "deepinv-hqs"


@dataclass(kw_only=True)
class DeepinvADMM(_DeepinvOptim):
    """deepinv's plug-and-play ADMM (``deepinv.optim.ADMM`` with ``PnP``)."""

    name = "deepinv-admm"
    algorithm = "ADMM"


@dataclass(kw_only=True)
class DeepinvRED(_DeepinvOptim):
    """Regularisation by denoising: deepinv's gradient descent (``deepinv.optim.GD``) with ``RED``."""

    name = "deepinv-red"
    algorithm = "GD"
    stepsize: float = 0.5

    def prior(self, denoiser: object) -> object:
        import deepinv

        return deepinv.optim.RED(denoiser=denoiser)
