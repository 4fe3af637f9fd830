"""ProjDiff: optimise x0 and an auxiliary noisy sample together by projected gradient descent."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from pnpkit import operators as ops
from pnpkit.operators import Operator
from pnpkit.priors import Prior, karras_sigmas, randn_like
from pnpkit.solvers import IterativeSolver, SolveContext, check_choice

__all__ = ["ProjDiff", "equivalent_noise_std", "karras_sigmas"]  # karras_sigmas: re-exported from the core


def equivalent_noise_std(operator: Operator, y: Tensor, sigma_y: float, samples: int = 4,
                         generator: torch.Generator | None = None) -> float:
    """Std of the measurement noise seen through ``A^+`` on its range, ``sigma_eq``.

    ``sigma_eq^2 = sigma_y^2 E||A^+ n||^2 / (m E||n||^2 / m)`` estimated with a few draws of
    ``n``; it is ``sigma_y`` for inpainting and ``r sigma_y`` for r-fold average-pooling.
    """
    if sigma_y <= 0:
        return 0.0
    total = 0.0
    for _ in range(samples):
        n = randn_like(y, generator)
        total += float(ops.pseudo_inverse(operator, n).pow(2).sum() / n.pow(2).sum())
    return sigma_y * math.sqrt(total / samples)


@dataclass(kw_only=True)
class ProjDiff(IterativeSolver):
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
    operator's projection onto {x : A x = y} (:func:`pnpkit.operators.project`).
    :meth:`step` is one level of that loop; :meth:`setup` puts the levels, the momentum
    ``v`` and the noisy-measurement quantities in the state.

    Nonlinear operators (phase retrieval) use their own ``project`` (magnitude replacement)
    before noising as well as after each step: the sample is drawn and the residual taken
    at ``P_y(x_0)``, the step is taken from ``x_0``.

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
        check_choice(self.name, "levels", self.levels, ("ddpm", "karras"))
        if self.repeats < 1:
            raise ValueError(f"projdiff: repeats must be >= 1, got {self.repeats}")
        super().__post_init__()

    # -- noise levels ------------------------------------------------------------------------
    def noise_levels(self, prior: Prior) -> list[float]:
        """The S levels, largest first (``"ddpm"`` levels need a diffusion prior's schedule)."""
        if self.levels == "karras":
            return karras_sigmas(int(self.iterations), float(self.sigma_min), float(self.sigma_max),
                                 float(self.rho))
        total = prior.num_timesteps
        stride = total // int(self.iterations)
        ts = [max(0, total - stride * (i + 1)) for i in range(int(self.iterations))]  # 990 ... 0
        return [float(prior.sigma(t)) for t in ts]

    # -- the loop ----------------------------------------------------------------------------
    def setup(self, ctx: SolveContext, x: Tensor) -> dict[str, Any]:
        """The levels, ``x_0 = D(sigma_1 z, sigma_1)``, the momentum ``v = 0``, and for noisy
        measurements ``sigma_eq`` and the auxiliary observation ``A^+ y`` (else None)."""
        prior, op = ctx.prior, ctx.operator
        levels = self.noise_levels(prior)
        linear = ops.is_linear(op)
        sigma_y = ops.noise_sigma(op) if self.noisy else 0.0
        sigma_eq = (equivalent_noise_std(op, ctx.y, sigma_y, generator=ctx.generator)
                    if sigma_y > 0 and linear else 0.0)
        with torch.no_grad():
            aux = ops.pseudo_inverse(op, ctx.y) if sigma_eq > 0 else None
            x0 = prior.denoise(levels[0] * ctx.randn_like(x), levels[0])
        return {"x": x0, "v": torch.zeros_like(x0), "levels": levels, "linear": linear,
                "sigma_eq": sigma_eq, "aux": aux}

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        """Level k, ``repeats`` times: noise, denoise, momentum step, projection."""
        x0, v, sigma, aux = state["x"], state["v"], state["levels"][k], state["aux"]
        with torch.no_grad():
            for _ in range(int(self.repeats)):
                # Nonlinear (phase retrieval): noise and residual at P_y(x0), the step from x0.
                at = x0 if state["linear"] else self.project(ctx, x0)
                if aux is None:
                    x, replace = at + sigma * ctx.randn_like(at), False
                else:
                    x, replace = self.noisy_sample(ctx, at, sigma, aux, state["sigma_eq"])
                d = ctx.prior.denoise(x, sigma) - at  # the denoiser residual: a truncated gradient
                if replace:  # noisy regime above sigma_eq: x0 becomes the denoised estimate
                    x0 = x0 + d
                    continue
                v = self.beta * v + (1 - self.beta) * d
                x0 = x0 + self.eta * v
                if aux is None:  # projecting onto noisy measurements would fit the noise
                    x0 = self.project(ctx, x0)
        return {**state, "x": x0, "v": v, "log": {"sigma": sigma}}

    def project(self, ctx: SolveContext, x: Tensor) -> Tensor:
        """``P_y(x)``: the operator's projection onto {x : A x = y}."""
        return ops.project(ctx.operator, x, ctx.y)

    def _range(self, ctx: SolveContext, v: Tensor) -> Tensor:
        """``A^+ A v``: the component of ``v`` the measurements see."""
        return ops.pseudo_inverse(ctx.operator, ctx.operator.A(v))

    def noisy_sample(self, ctx: SolveContext, x0: Tensor, sigma: float, aux: Tensor,
                     sigma_eq: float) -> tuple[Tensor, bool]:
        """The noisy sample at ``sigma`` for noisy measurements, and whether x0 is replaced.

        At or above ``sigma_eq`` its range component is the auxiliary observation ``aux``
        noised from ``sigma_eq`` up to ``sigma``; below, the frozen sample's implied noise.
        """
        z = ctx.randn_like(x0)
        z_r = self._range(ctx, z)
        if sigma >= sigma_eq:
            x0_r = self._range(ctx, x0)
            return (aux + math.sqrt(sigma**2 - sigma_eq**2) * z_r) + (x0 - x0_r) + sigma * (z - z_r), True
        implied = (aux - self._range(ctx, x0)) / sigma_eq  # noise the frozen sample carries
        return x0 + sigma * implied + sigma * (z - z_r), False
