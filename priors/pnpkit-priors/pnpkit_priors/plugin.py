"""Registers the priors, datasets and commands of pnpkit-priors (imports nothing heavy).

diffusers and deepinv are imported by the factories, when a component is built.
"""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_priors(register: Any) -> None:
    """Diffusers checkpoints, deepinv denoisers and the project's own default priors."""
    from .consistency import consistency_prior
    from .deepinv_denoisers import deepinv_denoiser, diffunet, drunet, tv
    from .defaults import default_grey32, default_rgb32
    from .diffusion import diffusers_prior
    from .latent import latent_diffusion_prior

    register("diffusers", diffusers_prior, family="diffusion",
             description="pixel-space diffusers checkpoint (UNet2DModel / UNet1DModel, DDPM/DDIM)")
    register("latent-diffusion", latent_diffusion_prior, family="diffusion",
             description="diffusers AutoencoderKL/VQModel + latent UNet (works on latents)")
    register("consistency", consistency_prior, family="denoiser",
             description="consistency model (CMStochasticIterativeScheduler): one-step denoiser")
    register("deepinv-denoiser", deepinv_denoiser, family="denoiser",
             description="any deepinv.models denoiser by class name (weights from a local file)")
    register("drunet", drunet, family="denoiser",
             description="deepinv DRUNet from a local weights file")
    register("diffunet", diffunet, family="denoiser",
             description="deepinv DiffUNet used as a denoiser, from a local weights file")
    register("tv", tv, family="denoiser", description="total variation (deepinv TVDenoiser)")
    register("default-grey32", default_grey32, family="diffusion",
             description="the project's own 1x32x32 DDPM (see weights/grey32/MODEL_CARD.md)")
    register("default-rgb32", default_rgb32, family="diffusion",
             description="the project's own 3x32x32 DDPM (see weights/rgb32/MODEL_CARD.md)")


@pnpkit.hookimpl
def register_datasets(register: Any) -> None:
    """Fixed 32 x 32 patches of the held-out (test) and validation pictures."""
    from .heldout import heldout_grey32, heldout_rgb32, validation_grey32, validation_rgb32

    register("heldout-grey32", heldout_grey32,
             description="grey 32x32 patches of camera/astronaut (test split)")
    register("heldout-rgb32", heldout_rgb32,
             description="colour 32x32 patches of camera/astronaut (test split)")
    register("validation-grey32", validation_grey32,
             description="grey 32x32 patches of coffee (validation split)")
    register("validation-rgb32", validation_rgb32,
             description="colour 32x32 patches of coffee (validation split)")


@pnpkit.hookimpl
def register_commands(cli: Any) -> None:
    """``pnpkit train-prior`` and ``pnpkit prior-card``."""
    from . import evaluate, train

    parser = cli.command("train-prior", help="train one of the project's own DDPM priors, offline",
                         run=train.run)
    train.add_arguments(parser)
    parser = cli.command("prior-card", help="evaluate a trained prior and write its model card",
                         run=evaluate.run)
    evaluate.add_arguments(parser)
