"""Registers the audio datasets, the multi-source prior and the audio commands (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pnpkit

from . import SEGMENT

#: The project's own multi-source prior: ``WEIGHTS_DIR / {unet, scheduler}``.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights" / "stems8k"
#: The project's continuous-noise (EDM) multi-source prior: ``config.json`` + ``model.safetensors``.
EDM_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights" / "stems8k-edm"


def default_stems8k(device: str = "cpu", dtype: str = "float32", segment: int = SEGMENT,
                    below_floor: str = "floor") -> Any:
    """The project's 4-stem (bass, drums, guitar, piano) 8 kHz diffusion prior.

    Trained offline on the rendered chorales' train split; see ``weights/stems8k/MODEL_CARD.md``.

    :param int segment: the window, in samples (a multiple of 256), a longer song is separated
        in, cross-faded (default 65536, 8.192 s).
    :param str below_floor: ``"floor"`` (default: the network's estimate at its smallest level,
        about 0.01) or ``"score"`` (the score held there): the denoiser below that level.
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    from .prior import AudioDiffusionPrior

    return AudioDiffusionPrior.from_pretrained(WEIGHTS_DIR, device=device, dtype=dtype,
                                               name="default-stems8k", segment=segment,
                                               below_floor=below_floor)


def default_stems8k_edm(device: str = "cpu", dtype: str = "float32", segment: int = SEGMENT,
                        below_floor: str = "floor") -> Any:
    """The project's 4-stem (bass, drums, guitar, piano) 8 kHz EDM prior: a denoiser
    ``D(x, sigma)`` for any sigma in [1e-4, 80] (Karras et al.'s preconditioning, as MSDM's).

    Trained offline on the rendered chorales' train split; see
    ``weights/stems8k-edm/MODEL_CARD.md``.

    :param int segment: the window, in samples (a multiple of 256), a longer song is separated
        in, cross-faded (default 65536, 8.192 s).
    :param str below_floor: ``"floor"`` (default) or ``"score"``: the denoiser below 1e-4.
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    from .prior import AudioEDMPrior

    if not (EDM_WEIGHTS_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"the default-stems8k-edm weights are not installed: {EDM_WEIGHTS_DIR} should hold "
            "config.json and model.safetensors (reinstall pnpkit-audio), or load a trained folder "
            "with [prior] name = \"audio-diffusion\" and path = \"DIR\"")
    return AudioEDMPrior.load(EDM_WEIGHTS_DIR, device=device, dtype=dtype,
                              name="default-stems8k-edm", segment=segment,
                              below_floor=below_floor)


def audio_diffusion(path: str, device: str = "cpu", dtype: str = "float32",
                    segment: int = SEGMENT, below_floor: str = "floor") -> Any:
    """A multi-source audio diffusion prior from a folder ``pnpkit train-audio-prior`` wrote:
    ``unet/`` + ``scheduler/`` (DDPM) or ``config.json`` + ``model.safetensors`` (EDM).

    :param str path: the folder ``pnpkit train-audio-prior --out`` wrote.
    :param int segment: the window, in samples, a longer song is separated in (default 65536).
    :param str below_floor: ``"floor"`` (default) or ``"score"``: the denoiser below the
        schedule's smallest level.
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    from .prior import load_audio_prior

    return load_audio_prior(path, device=device, dtype=dtype, segment=segment,
                            below_floor=below_floor)


@pnpkit.hookimpl
def register_priors(register: Any) -> None:
    """The project's multi-source music prior, and any checkpoint of the same kind."""
    register("default-stems8k", default_stems8k, family="diffusion",
             description="the project's 4-stem 8 kHz music DDPM (see weights/stems8k/MODEL_CARD.md)")
    register("default-stems8k-edm", default_stems8k_edm, family="diffusion",
             description="the project's 4-stem 8 kHz continuous-noise (EDM) music prior (see "
                         "weights/stems8k-edm/MODEL_CARD.md)")
    register("audio-diffusion", audio_diffusion, family="diffusion",
             description="a 1-D UNet multi-source audio prior, DDPM or EDM, from a local folder "
                         "(path = ...)")


@pnpkit.hookimpl
def register_datasets(register: Any) -> None:
    """Rendered chorales: the shipped test excerpts, and the splits of a built dataset."""
    register("chorales-excerpts", "pnpkit_audio.dataset:chorales_excerpts",
             description="4-stem test-split excerpts shipped with pnpkit-audio (8 kHz, 8.2 s)")
    register("chorales", "pnpkit_audio.dataset:chorales",
             description="4-stem pieces of a built dataset (root, split, seconds, limit)")


@pnpkit.hookimpl
def register_commands(cli: Any) -> None:
    """``pnpkit build-audio-dataset`` and ``pnpkit train-audio-prior``."""
    from . import render, train

    parser = cli.command("build-audio-dataset", run=render.run,
                         help="render music21's chorales to bass/drums/guitar/piano stems (offline)")
    render.add_arguments(parser)
    parser = cli.command("train-audio-prior", run=train.run,
                         help="train the multi-source audio diffusion prior on a built dataset")
    train.add_arguments(parser)
