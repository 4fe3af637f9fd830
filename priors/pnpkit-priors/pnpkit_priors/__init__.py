"""pnpkit-priors: diffusion models and denoisers as pnpkit priors, and the project's own priors.

- :class:`~pnpkit_priors.diffusion.DiffusersPrior`: diffusers ``UNet2DModel``/``UNet1DModel``
  checkpoints with a DDPM/DDIM schedule;
- :class:`~pnpkit_priors.edm.EDMPrior`: a continuous-noise (EDM-preconditioned) network,
  :class:`~pnpkit_priors.edm.EDMPrecond` around any backbone, as a
  :class:`pnpkit.priors.ContinuousDiffusionPrior`;
- :class:`~pnpkit_priors.latent.LatentDiffusionPrior`: an ``AutoencoderKL``/``VQModel`` and a
  latent diffusion model;
- :class:`~pnpkit_priors.consistency.ConsistencyPrior`: consistency models;
- :class:`~pnpkit_priors.deepinv_denoisers.DeepinvDenoiserPrior`: deepinv denoisers (DRUNet,
  DiffUNet, TV, ...);
- the bridge the other way, any pnpkit prior as a deepinv denoiser, is in the core:
  :func:`pnpkit.bridge.as_deepinv_denoiser`;
- :mod:`~pnpkit_priors.loading`: the one loader of the diffusers priors
  (:func:`~pnpkit_priors.loading.load_pretrained`) and the checkpoint checks;
- :mod:`~pnpkit_priors.trainer`, :mod:`~pnpkit_priors.cards`: the house's one DDPM trainer
  (any (B, C, *spatial) network) and the parts every model card shares, used here and by
  pnpkit-audio;
- :mod:`~pnpkit_priors.train`, :mod:`~pnpkit_priors.evaluate`: training and model cards of the
  project's own small DDPMs (``default-grey32``, ``default-rgb32``).

Importing the package is cheap: the classes are imported on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "DiffusersPrior": "diffusion",
    "EDMPrior": "edm",
    "EDMPrecond": "edm",
    "LatentDiffusionPrior": "latent",
    "ConsistencyPrior": "consistency",
    "DeepinvDenoiserPrior": "deepinv_denoisers",
    "default_prior": "defaults",
    "write_model_card": "evaluate",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
