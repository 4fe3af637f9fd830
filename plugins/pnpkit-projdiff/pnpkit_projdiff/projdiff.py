"""ProjDiff: optimise x0 and an auxiliary noisy sample together by projected gradient descent."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from pnpkit import operators as ops
from pnpkit.priors import karras_sigmas
from pnpkit.solvers import ProximalGradient, SolveContext

__all__ = ["ProjDiff", "equivalent_noise_std", "karras_sigmas"]  # karras_sigmas: re-exported from the core


def equivalent_noise_std(operator: Any, y: Tensor, sigma_y: float, samples: int = 4,
                         generator: torch.Generator | None = None) -> float:
    """Std of the measurement noise seen through ``A^+`` on its range, ``sigma_eq``.

    ``sigma_eq^2 = sigma_y^2 E||A^+ n||^2 / (m E||n||^2 / m)`` estimated with a few draws of
    ``n``; it is ``sigma_y`` for inpainting and ``r sigma_y`` for r-fold average-pooling.
    """
    if sigma_y <= 0:
        return 0.0
    total = 0.0
    for _ in range(samples):
        n = torch.randn(y.shape, generator=generator, dtype=y.dtype,
                        device=generator.device if generator is not None else y.device).to(y.device)
        total += float(ops.pseudo_inverse(operator, n).pow(2).sum() / n.pow(2).sum())
    return sigma_y * math.sqrt(total / samples)


@dataclass(kw_only=True)
class ProjDiff(ProximalGradient):
    """ProjDiff (arXiv:2406.06959): the diffusion denoiser as a truncated gradient, then a projection.

    With noise levels ``sigma_1 > ... > sigma_S`` (the DDPM timesteps' VE-equivalent levels
    ``sqrt((1 - abar_t) / abar_t)``, or Karras levels as the audio model), and the prior's
    denoiser ``D(x, sigma)`` (Tweedie):

    .. math::

        x &= x_0 + \\sigma_s\\,\\epsilon, \\quad \\epsilon \\sim \\mathcal N(0, I)\\\\
        v &\\leftarrow \\beta v + (1 - \\beta)\\,\\big(D(x, \\sigma_s) - x_0\\big)\\\\
        x_0 &\\leftarrow P_y(x_0 + \\eta\\, v)

    repeated ``repeats`` times per level. The step direction is the denoiser residual (the
    gradient through the denoiser is truncated: no backpropagation), and ``P_y`` is the
    operator's projection onto {x : A x = y} (:func:`pnpkit.operators.project`). It is the
    core's projected-gradient loop (:class:`pnpkit.solvers.ProximalGradient`).

    Nonlinear operators (phase retrieval) use their own ``project`` (magnitude replacement)
    before noising as well as after each step.

    Noisy measurements (``sigma_y > 0``): the noise seen through ``A^+`` gives an equivalent
    level ``sigma_eq`` (``alpha_obs = 1 / (1 + sigma_eq^2)``). While ``sigma_s >= sigma_eq``
    the range of ``A^+ A`` of the noisy sample is drawn from the auxiliary observation
    ``A^+ y`` (noised from ``sigma_eq`` up to ``sigma_s``), its null space from ``x_0``, and
    ``x_0`` is replaced by the denoised estimate. Once ``sigma_s < sigma_eq`` the auxiliary
    sample is frozen: its range component carries the noise it implies,
    ``(A^+ y - A^+ A x_0) / sigma_eq`` scaled to ``sigma_s``, and ``x_0`` moves by ``eta``
    towards the denoised estimate without projecting (projecting would fit the noise). This
    follows the paper's description of its two regimes; the authors' code was not available
    to check the details.

    :param str preset: ``sr4``, ``random-inpainting``, ``box-inpainting``,
        ``gaussian-deblur`` (with ``-noisy`` variants), ``phase-retrieval``,
        ``phase-retrieval-noisy``, ``separation`` (music source separation).
    :param int iterations: number of noise levels S.
    :param int repeats: inner repeats N per level.
    :param float eta: step size.
    :param float beta: momentum (0 for images, 0.5 for audio).
    :param str levels: ``"ddpm"`` (S of the prior's timesteps, 990, 980, ... for S = 100) or
        ``"karras"``.
    :param float sigma_min: smallest Karras level.
    :param float sigma_max: largest Karras level.
    :param float rho: Karras spacing exponent.
    :param bool noisy: use the noisy-measurement scheme when the operator has noise.

    >>> from pnpkit.testing import GaussianDiffusionPrior, toy_problem
    >>> op, _, x, y = toy_problem(n=64, m=40)
    >>> ProjDiff(iterations=10, repeats=2).solve(y.float(), op, GaussianDiffusionPrior()).nfe
    21
    """

    name = "projdiff"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "sr4": dict(iterations=100, eta=1.7),
        "random-inpainting": dict(iterations=100, eta=1.1),
        "box-inpainting": dict(iterations=100, eta=1.1),
        "gaussian-deblur": dict(iterations=100, eta=0.9),
        "sr4-noisy": dict(iterations=100, eta=0.5),
        "random-inpainting-noisy": dict(iterations=100, eta=1.0),
        "box-inpainting-noisy": dict(iterations=100, eta=1.0),
        "gaussian-deblur-noisy": dict(iterations=100, eta=0.1),
        "phase-retrieval": dict(iterations=1000, eta=1.5),
        "phase-retrieval-noisy": dict(iterations=1000, eta=1.9),
        "separation": dict(iterations=150, repeats=5, eta=0.1, beta=0.5, levels="karras",
                           sigma_min=1e-4, sigma_max=1.0, rho=7.0),
    }
    BASE: ClassVar[dict[str, Any]] = dict(iterations=100, eta=1.0, repeats=1, beta=0.0, levels="ddpm",
                                          sigma_min=1e-4, sigma_max=1.0, rho=7.0)

    preset: str | None = None
    iterations: int | None = None  # type: ignore[assignment]
    repeats: int | None = None
    eta: float | None = None
    beta: float | None = None
    levels: str | None = None
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float | None = None
    noisy: bool = True

    def __post_init__(self) -> None:
        self.apply_preset()
        for key, value in self.BASE.items():  # what a preset leaves unset
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.levels not in ("ddpm", "karras"):
            raise ValueError(f"projdiff: levels must be 'ddpm' or 'karras', got {self.levels!r}")
        if self.repeats < 1:
            raise ValueError(f"projdiff: repeats must be >= 1, got {self.repeats}")
        super().__post_init__()

    # -- noise levels ------------------------------------------------------------------------
    def noise_levels(self, prior: Any) -> list[float]:
        """The S levels, largest first."""
        if self.levels == "karras":
            return karras_sigmas(int(self.iterations), float(self.sigma_min), float(self.sigma_max),
                                 float(self.rho))
        total = prior.num_timesteps
        stride = total // int(self.iterations)
        ts = [max(0, total - stride * (i + 1)) for i in range(int(self.iterations))]  # 990 ... 0
        return [float(prior.sigma(t)) for t in ts]

    def _denoise(self, prior: Any, x: Tensor, sigma: float) -> Tensor:
        return prior.denoise(x, sigma)

    # -- the loop ----------------------------------------------------------------------------
    def setup(self, ctx: SolveContext, x: Tensor) -> dict[str, Any]:
        prior, op = ctx.prior, ctx.operator
        self._levels = self.noise_levels(prior)
        self._linear = ops.is_linear(op)
        sigma_y = ops.noise_sigma(op) if self.noisy else 0.0
        self._sigma_eq = (equivalent_noise_std(op, ctx.y, sigma_y, generator=ctx.generator)
                          if sigma_y > 0 and self._linear else 0.0)
        with torch.no_grad():
            self._aux = ops.pseudo_inverse(op, ctx.y) if self._sigma_eq > 0 else None
            s0 = self._levels[0]
            x0 = self._denoise(prior, s0 * ctx.randn_like(x), s0)
        self._v = torch.zeros_like(x0)
        self._replace = False
        return {"x": x0}

    def _range(self, ctx: SolveContext, v: Tensor) -> Tensor:
        """``A^+ A v``: the component of ``v`` the measurements see."""
        return ops.pseudo_inverse(ctx.operator, ctx.operator.A(v))

    def _noisy_sample(self, ctx: SolveContext, x0: Tensor, sigma: float) -> tuple[Tensor, bool]:
        """The noisy sample at level ``sigma`` and whether the regime replaces x0."""
        z = ctx.randn_like(x0)
        if self._aux is None:
            return x0 + sigma * z, False
        eq = self._sigma_eq
        z_r = self._range(ctx, z)
        if sigma >= eq:  # the auxiliary observation, noised from sigma_eq up to sigma
            x0_r = self._range(ctx, x0)
            x = (self._aux + math.sqrt(sigma**2 - eq**2) * z_r) + (x0 - x0_r) + sigma * (z - z_r)
            return x, True
        implied = (self._aux - self._range(ctx, x0)) / eq  # noise the frozen sample carries
        return x0 + sigma * implied + sigma * (z - z_r), False

    def project(self, ctx: SolveContext, x: Tensor) -> Tensor:
        return ops.project(ctx.operator, x, ctx.y)

    def gradient(self, ctx: SolveContext, x0: Tensor, k: int) -> Tensor:
        """Minus the denoiser residual ``D(x, sigma_k) - x_0`` at a fresh noisy sample.

        The gradient through the denoiser is truncated: no backpropagation.
        """
        sigma = self._levels[k]
        if not self._linear:
            x0 = self.project(ctx, x0)  # phase retrieval: project before noising too
        x, self._replace = self._noisy_sample(ctx, x0, sigma)
        return x0 - self._denoise(ctx.prior, x, sigma)

    def descend(self, ctx: SolveContext, x0: Tensor, grad: Tensor, k: int) -> Tensor:
        """Momentum step ``x_0 + eta v``; in the noisy regime above ``sigma_eq``, the estimate."""
        if self._replace:
            return x0 - grad
        self._v = self.beta * self._v - (1 - self.beta) * grad
        return x0 + self.eta * self._v

    def proximal(self, ctx: SolveContext, x0: Tensor, k: int) -> Tensor:
        """The projection onto the measurement set (none for noisy measurements)."""
        return self.project(ctx, x0) if self._aux is None else x0

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        x0 = state["x"]
        with torch.no_grad():
            for _ in range(int(self.repeats)):
                x0 = self.proximal(ctx, self.descend(ctx, x0, self.gradient(ctx, x0, k), k), k)
        return {"x": x0, "log": {"sigma": self._levels[k]}}
