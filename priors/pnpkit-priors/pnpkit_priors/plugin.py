"""Registers the priors, datasets and commands of pnpkit-priors (imports nothing heavy).

Each factory is a ``"module:attr"`` reference: its module (and torch, diffusers, deepinv) is
imported when the component is first built, not to list it.
"""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_priors(register: Any) -> None:
    """Diffusers and guided-diffusion checkpoints, deepinv denoisers and the project's own priors."""
    register("diffusers", "pnpkit_priors.diffusion:diffusers_prior", family="diffusion",
             description="pixel-space diffusers checkpoint (UNet2DModel / UNet1DModel, DDPM/DDIM)")
    register("adm", "pnpkit_priors.adm:adm_prior", family="diffusion",
             description="OpenAI guided-diffusion (ADM) checkpoint, .pt or .safetensors: presets "
                         "ffhq256 (DPS's ffhq_10m.pt), imagenet256-uncond, imagenet256")
    register("edm", "pnpkit_priors.edm:edm_prior", family="diffusion",
             description="continuous-noise (EDM-preconditioned) diffusion prior: a folder of "
                         "config.json + model.safetensors (trainer parametrisation = 'edm')")
    register("latent-diffusion", "pnpkit_priors.latent:latent_diffusion_prior",
             family="diffusion",
             description="diffusers AutoencoderKL/VQModel + latent UNet (works on latents)")
    register("consistency", "pnpkit_priors.consistency:consistency_prior", family="denoiser",
             description="consistency model (CMStochasticIterativeScheduler): one-step denoiser")
    register("deepinv-denoiser", "pnpkit_priors.deepinv_denoisers:deepinv_denoiser",
             family="denoiser",
             description="any deepinv.models denoiser by class name (weights from a local file)")
    register("drunet", "pnpkit_priors.deepinv_denoisers:drunet", family="denoiser",
             description="deepinv DRUNet from a local weights file")
    register("diffunet", "pnpkit_priors.deepinv_denoisers:diffunet", family="denoiser",
             description="deepinv DiffUNet used as a denoiser, from a local weights file")
    register("tv", "pnpkit_priors.deepinv_denoisers:tv", family="denoiser",
             description="total variation (deepinv TVDenoiser)")
    register("default-grey32", "pnpkit_priors.defaults:default_grey32", family="diffusion",
             description="the project's own 1x32x32 DDPM (see weights/grey32/MODEL_CARD.md)")
    register("default-rgb32", "pnpkit_priors.defaults:default_rgb32", family="diffusion",
             description="the project's own 3x32x32 DDPM (see weights/rgb32/MODEL_CARD.md)")
    register("default-grey64", "pnpkit_priors.defaults:default_grey64", family="diffusion",
             description="the project's own grey whole-picture EDM prior, any size "
                         "(see weights/grey64/MODEL_CARD.md)")
    register("default-rgb64", "pnpkit_priors.defaults:default_rgb64", family="diffusion",
             description="the project's own colour whole-picture EDM prior, any size "
                         "(see weights/rgb64/MODEL_CARD.md)")


@pnpkit.hookimpl
def register_datasets(register: Any) -> None:
    """Fixed 32 x 32 patches of the held-out (test) and validation pictures."""
    register("heldout-grey32", "pnpkit_priors.heldout:heldout_grey32",
             description="grey 32x32 patches of camera/astronaut (test split)")
    register("heldout-rgb32", "pnpkit_priors.heldout:heldout_rgb32",
             description="colour 32x32 patches of camera/astronaut (test split)")
    register("validation-grey32", "pnpkit_priors.heldout:validation_grey32",
             description="grey 32x32 patches of coffee (validation split)")
    register("validation-rgb32", "pnpkit_priors.heldout:validation_rgb32",
             description="colour 32x32 patches of coffee (validation split)")


@pnpkit.hookimpl
def register_commands(cli: Any) -> None:
    """``pnpkit train-prior`` and ``pnpkit prior-card``."""
    from . import evaluate, train

    parser = cli.command("train-prior", run=train.run,
                         help="train one of the project's own diffusion priors (DDPM or EDM), offline")
    train.add_arguments(parser)
    parser = cli.command("prior-card", help="evaluate a trained prior and write its model card",
                         run=evaluate.run)
    evaluate.add_arguments(parser)
