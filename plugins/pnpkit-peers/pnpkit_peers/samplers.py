"""deepinv's diffusion samplers (DPS, DDRM, DiffPIR) on any pnpkit prior, through the bridge."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pnpkit import operators as ops
from pnpkit.solvers import DoesNotApply, SolveContext

from .common import PeerSolver, to_unit_range


@dataclass(kw_only=True)
class DPS(PeerSolver):
    """Diffusion posterior sampling (Chung et al. 2023), deepinv's ``deepinv.sampling.DPS``.

    deepinv's sampler carries its state in [-1, 1] but evaluates the data term on [0, 1]
    images; the operator is seen through ``x01 -> A(2 x01 - 1)``, which keeps ``y`` as it is
    and works for nonlinear operators too; the [0, 1] sample it returns is mapped back. Each
    step backpropagates through the network (the memory cost RED-Diff and DCDP avoid).

    :param int iterations: reverse-diffusion steps (1000 as the paper).
    :param float weight: weight of the likelihood guidance.
    :param str sampler: deepinv's SDE solver: ``ddpm`` (the paper's), ``ddim``, ``ancestral``, ``euler``.
    :param str guidance: ``norm`` (the paper's) or ``annealed``.
    :param str dtype: the sampler's float type (deepinv's default is float64).
    """

    name = "dps"
    iterations: int = 1000
    weight: float = 1.0
    sampler: str = "ddpm"
    guidance: str = "norm"
    dtype: str = "float32"

    def run(self, ctx: SolveContext, seed: int) -> Tensor:
        import deepinv

        from pnpkit.bridge import as_deepinv_denoiser

        dt = getattr(torch, self.dtype)
        model = deepinv.sampling.DPS(as_deepinv_denoiser(ctx.prior), solver=self.sampler,
                                     num_steps=self.iterations, weight=self.weight,
                                     guidance=self.guidance, device=ctx.y.device, dtype=dt,
                                     rng=torch.Generator(ctx.y.device).manual_seed(seed))
        op = ctx.operator
        physics = deepinv.physics.Physics(A=lambda x01: op.A((2 * x01 - 1).to(ctx.y.dtype)).to(dt))
        x_shape = ops.pseudo_inverse(op, ctx.y).shape
        return 2 * model(ctx.y.to(dt), physics, x_init=x_shape, seed=seed) - 1  # it returns [0, 1]


@dataclass(kw_only=True)
class DDRM(PeerSolver):
    """Denoising diffusion restoration models (Kawar et al. 2022), deepinv's ``DDRM``.

    Needs a decomposable operator (deepinv's ``DecomposablePhysics``: inpainting, SVD-based
    operators, denoising). deepinv's DDRM works on [0, 1] images: the problem is mapped there
    and back.

    :param int iterations: number of noise levels (linear from 1 to 0).
    :param float eta: DDRM's eta.
    :param float etab: DDRM's eta_b.
    """

    name = "ddrm"
    global_rng = True
    iterations: int = 100
    eta: float = 0.85
    etab: float = 1.0

    def run(self, ctx: SolveContext, seed: int) -> Tensor:
        import deepinv
        import numpy as np

        if not isinstance(ctx.operator, deepinv.physics.DecomposablePhysics):
            raise DoesNotApply(f"DDRM needs a decomposable operator (deepinv "
                               f"DecomposablePhysics); {type(ctx.operator).__name__} is not one")
        from pnpkit.bridge import as_deepinv_denoiser

        y01, physics = to_unit_range(ctx.y, ctx.operator)
        model = deepinv.sampling.DDRM(as_deepinv_denoiser(ctx.prior),
                                      sigmas=np.linspace(1, 0, self.iterations, endpoint=False),
                                      eta=self.eta, etab=self.etab)
        return 2 * model(y01, physics, seed=seed) - 1


@dataclass(kw_only=True)
class DiffPIR(PeerSolver):
    """Diffusion plug-and-play image restoration (Zhu et al. 2023), deepinv's ``DiffPIR``.

    :param int iterations: diffusion steps.
    :param float zeta: noise injection of the sampling step.
    :param float lambda_: weight of the data proximal step (3 to 25 in the paper).
    :param float sigma_floor: noise level assumed for noiseless measurements (pnpkit units):
        DiffPIR's data step divides by the noise level.
    """

    name = "diffpir"
    global_rng = True
    iterations: int = 100
    zeta: float = 0.1
    lambda_: float = 7.0
    sigma_floor: float = 0.01

    def run(self, ctx: SolveContext, seed: int) -> Tensor:
        import deepinv

        from pnpkit.bridge import as_deepinv_denoiser

        y01, physics = to_unit_range(ctx.y, ctx.operator, sigma_floor=self.sigma_floor)
        sigma = max(ops.noise_sigma(ctx.operator), self.sigma_floor) / 2
        model = deepinv.sampling.DiffPIR(as_deepinv_denoiser(ctx.prior), deepinv.optim.L2(),
                                         sigma=sigma, max_iter=self.iterations, zeta=self.zeta,
                                         lambda_=self.lambda_, device=ctx.y.device)
        with torch.no_grad():
            return 2 * model(y01, physics, seed=seed) - 1
