"""pnpkit priors as deepinv denoisers, for deepinv's own samplers (DPS, DDRM, DiffPIR, ...).

Importing this module imports deepinv (several seconds): the rest of the core does not.

:func:`as_deepinv_denoiser` wraps a pnpkit prior in a :class:`deepinv.models.Denoiser`, whose
``forward(x, sigma)`` takes images in deepinv's range [0, 1]: it maps them to pnpkit's
[-1, 1] (:math:`x = 2x_{01} - 1`, :math:`\\sigma = 2\\sigma_{01}`), denoises, and maps back.
A diffusion prior denoises by Tweedie's formula at the (fractional) timestep whose noise level
is :math:`\\sigma` (:meth:`pnpkit.priors.DiffusionPrior.tweedie_denoise`, one level per item),
computed with gradients enabled so that guidance terms such as DPS can differentiate through it.
"""

from __future__ import annotations

from typing import Any

import torch
from deepinv.models import Denoiser
from torch import Tensor

from pnpkit.priors import DiffusionPrior, Prior


class PnpkitDenoiser(Denoiser):
    r"""A pnpkit prior seen as a deepinv denoiser on [0, 1] images.

    .. math::

        D(x_{01}, \sigma_{01}) = \tfrac12\left(\mathrm{denoise}(2 x_{01} - 1,\; 2\sigma_{01}) + 1\right)

    :param pnpkit.priors.Prior prior: a diffusion prior (denoised by differentiable Tweedie
        estimates) or any denoiser prior (its ``denoise``).
    """

    def __init__(self, prior: Prior) -> None:
        super().__init__()
        self.prior = prior

    @property
    def nfe(self) -> int:
        """The prior's count of network evaluations."""
        return int(self.prior.nfe)

    def forward(self, x: Tensor, sigma: float | Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Denoise images in [0, 1] at noise level ``sigma`` (a number or one per item).

        :param torch.Tensor x: noisy images (B, C, *spatial) in about [0, 1].
        :param float, torch.Tensor sigma: the [0, 1]-range noise level.
        :return: the denoised images in [0, 1].
        """
        levels = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu().reshape(-1)
        if levels.numel() == 1:
            levels = levels.expand(x.shape[0])
        levels = 2 * levels
        xp = 2 * x - 1
        if isinstance(self.prior, DiffusionPrior):  # one network call, a timestep per item
            out = self.prior.tweedie_denoise(xp, levels)
        elif bool((levels == levels[0]).all()):
            out = self.prior.denoise(xp, float(levels[0]))
        else:
            out = self.prior.denoise(xp, levels.to(device=x.device, dtype=x.dtype))
        return (out + 1) / 2


def as_deepinv_denoiser(prior: Prior) -> PnpkitDenoiser:
    """Wrap a pnpkit prior as a :class:`deepinv.models.Denoiser` (images in [0, 1]).

    Use it wherever deepinv expects a denoiser, e.g.
    ``deepinv.sampling.DPS(as_deepinv_denoiser(prior), num_steps=50)`` or
    ``deepinv.sampling.DiffPIR(as_deepinv_denoiser(prior), deepinv.optim.L2())``.

    :param pnpkit.priors.Prior prior: the pnpkit prior.
    """
    return PnpkitDenoiser(prior)
