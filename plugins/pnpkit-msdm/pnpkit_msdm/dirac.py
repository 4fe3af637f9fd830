"""The MSDM "Dirac" separation sampler: EDM Euler steps of score differences on sum = y."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pnpkit.operators import Operator
from pnpkit.priors import Prior, karras_sigmas, randn_like
from pnpkit.solvers import DoesNotApply, IterativeSolver, SolveContext


@dataclass(kw_only=True)
class MSDMDirac(IterativeSolver):
    """The MSDM "Dirac" sampler: separate a mixture with a multi-source diffusion prior.

    Mariani, Tallini, Postolache, Mancusi, Cosmo, Rodolà, *Multi-Source Diffusion Models for
    Simultaneous Music Generation and Separation*, ICLR 2024 (arXiv:2302.02257). The sources
    are the channels of ``x`` (B, K, L) and the operator is their mixture ``y = sum_k x_k``.
    The likelihood is a Dirac delta on that sum: one source, ``x_c`` (``source_id``), is
    always ``y`` minus the others, and the free sources follow the probability-flow ODE of
    the constrained density, whose derivative is the difference of the per-source ODE
    derivatives. The prior is used as a variance-exploding denoiser
    ``D(x, sigma) = prior.denoise(x, sigma)`` (for ``x = x_0 + sigma n``) on the stacked
    sources, its output clamped to [-1, 1] as in the MSDM model.

    With Karras levels ``sigma_0 > ... > sigma_{S-1}`` and ``sigma_S = 0``,
    ``gamma = min(S_churn / S, sqrt 2 - 1)`` where ``S_tmin <= sigma_i <= S_tmax`` (else 0),
    each level ``i`` runs, ``num_resamples`` times:

    .. math::

        \\hat\\sigma &= (1 + \\gamma)\\,\\sigma_i, \\qquad
        \\hat x = x + \\sqrt{\\hat\\sigma^2 - \\sigma_i^2}\\; S_\\text{noise}\\, z\\\\
        \\hat x_c &\\leftarrow y - \\textstyle\\sum_{k \\ne c} \\hat x_k\\\\
        d_k &= \\frac{\\hat x_k - D(\\hat x, \\hat\\sigma)_k}{\\hat\\sigma}, \\qquad
        x_k = \\hat x_k + (\\sigma_{i+1} - \\hat\\sigma)\\,(d_k - d_c)\\\\
        x_c &\\leftarrow y - \\textstyle\\sum_{k \\ne c} x_k

    and, between two repeats of a level (not after the last), re-noises from
    ``sigma_{i+1}`` back to ``sigma_i`` (RePaint-style):
    ``x <- x + sqrt(sigma_i^2 - sigma_{i+1}^2) z``. The start is ``x = sigma_0 z``.
    The last level lands on ``sigma = 0``: there the Euler step gives the denoised estimate
    of each free source, shifted by the constrained source's residual
    ``x_c - D(x)_c``, so the estimates sum to ``y`` exactly. One network evaluation per
    repeat: ``NFE = iterations * num_resamples`` (150 x 2 = 300 with the defaults).
    Substituting ``x_c`` couples every free source to the others, which makes the Euler step
    about K times stiffer along their sum: very coarse schedules diverge (four Gaussian
    sources: 10 levels blow up, 20 are stable); MSDM uses 150.

    As the MSDM code runs it (``separate_mixture`` / ``differential_with_dirac``): 150 Karras
    levels (1e-4 .. 1, rho 7), ``S_churn = 20`` and, in its Dirac evaluation, 2 resamples.
    The MSDM code constrains after drawing the churn noise and before the derivative, and
    leaves ``x_c`` untouched by the Euler step; constraining once more after the step only
    changes the returned estimate (the next step overwrites ``x_c`` anyway) and makes it
    sum to ``y``. The constrained source is source 0 by default (bass in the MSDM stem
    order: bass, drums, guitar, piano), as MSDM's ``differential_with_dirac`` and its Slakh
    evaluation do; ``source_id = None`` constrains the last source (piano) instead.

    Needs a mixture operator (``A(x)`` is the sum of the channels, e.g. the ``mixture``
    operator); for anything else ``solve`` raises :class:`pnpkit.solvers.DoesNotApply` (a
    ``TypeError``; ``pnpkit bench`` reports the row as "does not apply"). The measurement is taken as exact
    (``sigma_y`` is ignored). ``init`` and ``x_init`` only give the signal's shape: the
    start is noise.

    :param int iterations: number of noise levels S (the last steps to 0).
    :param float sigma_min: smallest Karras level.
    :param float sigma_max: largest Karras level (the start's noise level).
    :param float rho: Karras spacing exponent.
    :param float s_churn: EDM stochasticity ``S_churn`` (0: deterministic Euler steps).
    :param float s_tmin: churn only where ``sigma >= s_tmin``.
    :param float s_tmax: churn only where ``sigma <= s_tmax``.
    :param float s_noise: scale of the churn noise.
    :param int num_resamples: repeats per level (MSDM's correction steps), re-noising in
        between.
    :param int | None source_id: the constrained source c (default 0, MSDM's; None: the last
        one, K - 1).
    :param bool clamp: clamp the denoiser output to [-1, 1].

    >>> import torch, pnpkit
    >>> from pnpkit.testing import GaussianDiffusionPrior
    >>> op = pnpkit.create("operator", "mixture", shape=(4, 64))
    >>> x = 0.3 * torch.randn(1, 4, 64, generator=torch.Generator().manual_seed(0))
    >>> y = op.A(x)
    >>> res = MSDMDirac(iterations=20).solve(y, op, GaussianDiffusionPrior(scale=0.3),
    ...                                      generator=torch.Generator().manual_seed(0))
    >>> res.x.shape, res.nfe, bool((res.x.sum(1, keepdim=True) - y).abs().max() < 1e-5)
    (torch.Size([1, 4, 64]), 40, True)
    """

    name = "msdm-dirac"

    iterations: int = 150
    sigma_min: float = 1e-4
    sigma_max: float = 1.0
    rho: float = 7.0
    s_churn: float = 20.0
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    s_noise: float = 1.0
    num_resamples: int = 2
    source_id: int | None = 0
    clamp: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_resamples < 1:
            raise ValueError(f"{self.name}: num_resamples must be >= 1, got {self.num_resamples}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"{self.name}: need 0 < sigma_min < sigma_max, got "
                             f"{self.sigma_min}, {self.sigma_max}")
        if self.s_churn < 0:
            raise ValueError(f"{self.name}: s_churn must be >= 0, got {self.s_churn}")
        if self.source_id is not None and self.source_id < 0:
            raise ValueError(f"{self.name}: source_id must be >= 0 (or None for the last "
                             f"source), got {self.source_id}")

    # -- the problem ---------------------------------------------------------------------------
    def noise_levels(self) -> list[float]:
        """The ``iterations`` Karras levels, largest first, then 0."""
        return karras_sigmas(int(self.iterations), float(self.sigma_min), float(self.sigma_max),
                             float(self.rho)) + [0.0]

    def check_mixture(self, operator: Operator, x: Tensor) -> None:
        """Raise :class:`~pnpkit.solvers.DoesNotApply` unless ``operator.A`` sums the channels of ``x``."""
        what = f"{self.name} separates a mixture y = sum_k x_k (sources as channels, e.g. " \
               f"the 'mixture' operator); operator {type(operator).__name__}"
        # A fixed, non-constant probe: a weighted sum or a mean would not match it.
        g = torch.Generator().manual_seed(0)
        probe = randn_like(torch.empty((1, *x.shape[1:]), dtype=torch.float64), g)
        probe = probe.to(device=x.device, dtype=x.dtype)
        try:
            out = operator.A(probe)
        except Exception as exc:
            raise DoesNotApply(f"{what} cannot measure a signal of shape {tuple(probe.shape)}: "
                             f"{type(exc).__name__}: {exc}") from exc
        want = probe.sum(1)
        if (not isinstance(out, Tensor) or out.is_complex() or out.numel() != want.numel()
                or not torch.allclose(out.reshape(want.shape).to(want.dtype), want,
                                      rtol=1e-4, atol=1e-4)):
            raise DoesNotApply(f"{what} is not one: A(x) is not the sum of the channels")

    def constrain(self, x: Tensor, y: Tensor, c: int) -> Tensor:
        """``x`` with source ``c`` replaced by ``y`` minus the other sources."""
        others = x.sum(1, keepdim=True) - x[:, c:c + 1]
        return torch.cat([x[:, :c], y - others, x[:, c + 1:]], dim=1)

    def denoised(self, prior: Prior, x: Tensor, sigma: float) -> Tensor:
        out = prior.denoise(x, sigma)
        return out.clamp(-1.0, 1.0) if self.clamp else out

    # -- the loop ------------------------------------------------------------------------------
    def setup(self, ctx: SolveContext, x: Tensor) -> dict[str, Any]:
        """``x = sigma_0 z``, and the constrained source ``c``, the mixture ``y`` shaped as one
        source, the levels and the churn ``gamma``."""
        self.check_mixture(ctx.operator, x)
        k = x.shape[1]
        c = k - 1 if self.source_id is None else int(self.source_id)
        if c >= k:
            raise ValueError(f"{self.name}: source_id {c} is out of range for {k} sources")
        levels = self.noise_levels()
        return {"x": levels[0] * ctx.randn_like(x), "c": c, "levels": levels,
                "y": ctx.y.reshape(x.shape[0], 1, *x.shape[2:]).to(x.dtype),
                "gamma": min(float(self.s_churn) / int(self.iterations), math.sqrt(2.0) - 1.0)}

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        """One noise level: ``num_resamples`` churned Euler steps from sigma_k to sigma_{k+1}."""
        x, y, c = state["x"], state["y"], state["c"]
        sigma, sigma_next = state["levels"][k], state["levels"][k + 1]
        gamma = state["gamma"] if self.s_tmin <= sigma <= self.s_tmax else 0.0
        sigma_hat = sigma * (1.0 + gamma)
        with torch.no_grad():
            for r in range(int(self.num_resamples)):
                if gamma > 0:
                    x = x + math.sqrt(sigma_hat**2 - sigma**2) * self.s_noise * ctx.randn_like(x)
                x = self.constrain(x, y, c)
                d = (x - self.denoised(ctx.prior, x, sigma_hat)) / sigma_hat
                x = self.constrain(x + (sigma_next - sigma_hat) * (d - d[:, c:c + 1]), y, c)
                if r < self.num_resamples - 1:
                    x = x + math.sqrt(sigma**2 - sigma_next**2) * ctx.randn_like(x)
        return {**state, "x": x, "log": {"sigma": sigma, "sigma_hat": sigma_hat}}
