"""deepinv's diffusion samplers (DPS, DDRM, DiffPIR) on any pnpkit prior, through the bridge."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pnpkit import operators as ops
from pnpkit.priors import DiffusionPrior
from pnpkit.solvers import DoesNotApply, SolveContext, check_choice

from .common import PeerSolver, to_unit_range

SQRT2 = math.sqrt(2.0)


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


class _AtLevel(torch.nn.Module):
    """A deepinv denoiser called at ``sigma * factor`` (see :class:`DDRM`'s ``paper_noise``)."""

    def __init__(self, denoiser: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.denoiser, self.factor = denoiser, factor

    def forward(self, x: Tensor, sigma: float | Tensor, *args: object, **kwargs: object) -> Tensor:
        return self.denoiser(x, sigma * self.factor)


def ddrm_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """The DDRM authors' timesteps, largest first: ``floor(k T / steps)`` for ``k < steps``
    (``range(0, T, T // steps)`` of their code when ``steps`` divides ``T``; ``steps`` of them
    otherwise, where theirs would be more)."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"ddrm: iterations must be between 1 and the prior's {num_timesteps} "
                         f"timesteps, got {steps}")
    return [k * num_timesteps // steps for k in range(steps)][::-1]


@dataclass(kw_only=True)
class DDRM(PeerSolver):
    """Denoising diffusion restoration models (Kawar et al. 2022), deepinv's ``DDRM``.

    Needs a decomposable operator (deepinv's ``DecomposablePhysics``: inpainting, SVD-based
    operators, denoising). deepinv's DDRM works on [0, 1] images: the problem is mapped there
    and back. The defaults are the authors' runs (``--timesteps 20 --eta 0.85 --etaB 1``).

    :param int iterations: number of noise levels (network evaluations).
    :param float eta: DDRM's eta (the authors' etaA = etaC).
    :param float etab: DDRM's eta_b.
    :param str schedule: ``timesteps`` (the authors': the levels ``sigma(t)`` of the prior's
        DDPM timesteps ``floor(k T / iterations)``, largest first, down to ``sigma(0)``; needs a
        diffusion prior) or ``linear`` (deepinv's default: ``iterations`` levels from 1 down to
        ``1 / iterations`` in [0, 1] units, 2 to ``2 / iterations`` in pnpkit's).
    :param bool paper_noise: deepinv 0.5's DDRM draws each step's noise with std
        ``sigma / sqrt(2)`` but calls the denoiser at ``sigma``; with ``paper_noise`` (the
        default) it is given the levels ``sqrt(2) sigma``, the noise level ``sqrt(2) sigma_y``
        and a denoiser that divides its level by ``sqrt(2)``, so that it runs the paper's
        update at the levels ``sigma`` (every use of the levels there is a ratio, a difference
        of squares under that same ``1 / sqrt(2)``, or the cut ``s_i > sigma_y``). ``False``
        runs deepinv's as it is.
    """

    name = "ddrm"
    global_rng = True
    iterations: int = 20
    eta: float = 0.85
    etab: float = 1.0
    schedule: str = "timesteps"
    paper_noise: bool = True

    def __post_init__(self) -> None:
        check_choice(self.name, "schedule", self.schedule, ("timesteps", "linear"))

    def levels(self, prior: object) -> list[float]:
        """The noise levels DDRM visits, in deepinv's [0, 1] units (half pnpkit's), largest first."""
        if self.schedule == "linear":
            return [float(s) for s in np.linspace(1, 0, self.iterations, endpoint=False)]
        if not isinstance(prior, DiffusionPrior):
            raise DoesNotApply(f"ddrm: schedule 'timesteps' needs a diffusion prior; "
                               f"{type(prior).__name__} is not one: set schedule = 'linear'")
        ts = ddrm_timesteps(prior.num_timesteps, self.iterations)
        return [float(prior.sigma(t)) / 2 for t in ts]

    def run(self, ctx: SolveContext, seed: int) -> Tensor:
        import deepinv

        if not isinstance(ctx.operator, deepinv.physics.DecomposablePhysics):
            raise DoesNotApply(f"DDRM needs a decomposable operator (deepinv "
                               f"DecomposablePhysics); {type(ctx.operator).__name__} is not one")
        from pnpkit.bridge import as_deepinv_denoiser

        sigmas = np.asarray(self.levels(ctx.prior), dtype=np.float64)
        y01, physics = to_unit_range(ctx.y, ctx.operator)
        denoiser: torch.nn.Module = as_deepinv_denoiser(ctx.prior)
        if self.paper_noise:
            sigmas = sigmas * SQRT2
            denoiser = _AtLevel(denoiser, 1 / SQRT2)
            noise: Any = getattr(physics, "noise_model", None)
            if isinstance(getattr(noise, "sigma", None), Tensor):
                noise.sigma.data = noise.sigma.data * SQRT2
            elif hasattr(noise, "sigma"):
                noise.sigma = noise.sigma * SQRT2
        model = deepinv.sampling.DDRM(denoiser, sigmas=sigmas, eta=self.eta, etab=self.etab)
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
