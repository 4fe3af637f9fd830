"""Train the project's own small pixel-space diffusion priors (DDPM or EDM), reproducibly and offline.

``pnpkit train-prior --preset grey32 --out DIR`` (or ``python -m pnpkit_priors.train``)
trains a diffusers ``UNet2DModel`` with epsilon prediction on the 1000-step linear schedule
of the papers (beta from 1e-4 to 0.02), on patches of scikit-image's bundled pictures
(:mod:`pnpkit_priors.datasets`), with the house's one trainer,
:func:`pnpkit_priors.trainer.train_ddpm`. The exponential moving average of the weights is
what is saved, with ``save_pretrained`` (safetensors), every ``--save-every`` steps, so a
stopped run still leaves a usable checkpoint; ``--resume`` continues from it exactly.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .trainer import ddpm_scheduler as build_scheduler  # noqa: F401  (the papers' schedule)
from .trainer import train_ddpm

PRESETS: dict[str, dict[str, Any]] = {
    # 1.1 M parameters, attention only at 8x8 (attention at 32x32 is too slow on a CPU).
    "grey32": dict(channels=1, size=32, block_out_channels=(32, 64, 64), layers_per_block=1),
    "rgb32": dict(channels=3, size=32, block_out_channels=(32, 64, 64), layers_per_block=1),
    # Whole-picture priors: 4 levels (receptive field of the 64 x 64 patches they train on), no
    # attention anywhere (global attention dominates a call on a 512 x 512 picture), flips and
    # rotations, a quarter of dead-leaves patches, EDM; the width chosen by
    # benchmarks/prior_pilots.py.
    "grey64": dict(channels=1, size=64, block_out_channels=(32, 64, 96, 128), layers_per_block=1,
                   attention="none"),
    "rgb64": dict(channels=3, size=64, block_out_channels=(32, 64, 96, 128), layers_per_block=1,
                  attention="none"),
}
#: The data of each preset (:class:`~pnpkit_priors.datasets.PatchSampler`'s settings): the
#: 32-pixel presets' is what they shipped with.
DATA: dict[str, dict[str, Any]] = {
    "grey32": dict(augment="flip", dead_leaves=0.0),
    "rgb32": dict(augment="flip", dead_leaves=0.0),
    "grey64": dict(augment="dihedral", dead_leaves=0.25),
    "rgb64": dict(augment="dihedral", dead_leaves=0.25),
}
#: The parametrisation each preset trains with (:data:`pnpkit_priors.trainer.PARAMETRISATIONS`):
#: ``"ddpm"`` saves ``unet/`` + ``scheduler/`` (prior ``diffusers``), ``"edm"`` a continuous-noise
#: denoiser, ``config.json`` + ``model.safetensors`` (prior ``edm``).
#: The whole-picture presets are EDM denoisers: in benchmarks/prior_pilots.py the same network
#: gained +0.5 dB more at sigma 0.05 and 0.1 than as a DDPM after 100 steps (0.4 dB less at 0.4).
PARAMETRISATION: dict[str, str] = {"grey32": "ddpm", "rgb32": "ddpm", "grey64": "edm",
                                   "rgb64": "edm"}
#: EDM's settings of an ``"edm"`` run (images in [-1, 1]: sigma_data 0.5).
EDM_SETTINGS = {"sigma_data": 0.5}
#: Validation patches (``coffee``, never trained on) scored on the progress bar by default.
VALIDATION_COUNT = 16
#: The most a preset's weights may weigh (float32 safetensors), in bytes.
MAX_WEIGHT_BYTES = 25_000_000


def unet_config(channels: int, size: int, block_out_channels: tuple[int, ...],
                layers_per_block: int, attention: str = "lowest") -> dict[str, Any]:
    """The ``UNet2DModel`` settings of a preset.

    :param int channels: image channels (1 or 3).
    :param int size: the side of the square patches.
    :param tuple block_out_channels: the widths of the levels (one level per entry).
    :param int layers_per_block: residual layers per level.
    :param str attention: ``"lowest"``: self-attention at the coarsest level and in the middle
        block (the 32-pixel presets); ``"none"``: no attention block at all.
    """
    levels = len(block_out_channels)
    if attention == "lowest":
        down = ("DownBlock2D",) * (levels - 1) + ("AttnDownBlock2D",)
        up = ("AttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1)
        extra: dict[str, Any] = {}
    elif attention == "none":
        down, up = ("DownBlock2D",) * levels, ("UpBlock2D",) * levels
        extra = {"add_attention": False}
    else:
        raise ValueError(f"unknown attention {attention!r}; choose 'lowest' or 'none'")
    return dict(sample_size=size, in_channels=channels, out_channels=channels,
                block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                down_block_types=down, up_block_types=up, norm_num_groups=8,
                attention_head_dim=16, **extra)


def build_unet(channels: int, size: int, block_out_channels: tuple[int, ...],
               layers_per_block: int, attention: str = "lowest") -> Any:
    """A new ``UNet2DModel`` of :func:`unet_config`'s settings.

    :param int channels: image channels (1 or 3).
    :param int size: the side of the square patches.
    :param tuple block_out_channels: the widths of the levels.
    :param int layers_per_block: residual layers per level.
    :param str attention: ``"lowest"`` or ``"none"`` (see :func:`unet_config`).
    """
    from diffusers import UNet2DModel

    return UNet2DModel(**unet_config(channels, size, block_out_channels, layers_per_block,
                                     attention))


def data_settings(preset: str, size: int | None = None, dead_leaves: float | None = None,
                  augment: str | None = None) -> dict[str, Any]:
    """The patch sampler's settings of ``preset``, with the given ones over its :data:`DATA`.

    :param str preset: a key of :data:`PRESETS`.
    :param int size: the patch size (default: the preset's).
    :param float dead_leaves: the fraction of dead-leaves patches (default: the preset's).
    :param str augment: ``"none"``, ``"flip"`` or ``"dihedral"`` (default: the preset's).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    data = dict(size=int(PRESETS[preset]["size"]), **DATA[preset])
    if size is not None:
        data["size"] = int(size)
    if dead_leaves is not None:
        data["dead_leaves"] = float(dead_leaves)
    if augment is not None:
        data["augment"] = augment
    return data


def train(preset: str, out: Path, steps: int, batch_size: int = 32, lr: float = 5e-4,
          seed: int = 0, save_every: int = 250, max_minutes: float | None = None,
          resume: bool = False, threads: int | None = None, patch_size: int | None = None,
          dead_leaves: float | None = None, augment: str | None = None,
          parametrisation: str | None = None, validation_count: int | None = None,
          progress: bool = True, precision: str = "fp32",
          schedule_steps: int | None = None) -> dict[str, Any]:
    """Train ``preset`` for ``steps`` optimiser steps and save it under ``out``.

    The loop is :func:`pnpkit_priors.trainer.train_ddpm` on patches of the train split
    (:class:`~pnpkit_priors.datasets.PatchSampler` with :func:`data_settings`), 200 warm-up
    steps. The data settings are recorded in the run (``data``), and a resumed run must keep
    them. Without ``resume``, a run already in ``out`` is started afresh (overwritten). Every
    ``save_every`` steps the EMA weights denoise ``validation_count`` fixed validation patches
    (``coffee``, :func:`~pnpkit_priors.datasets.heldout_patches`) in one step at sigma 0.05 /
    0.1 / 0.2 / 0.4; the gains (dB) are on the progress bar and in ``training_state.json``.

    :param str preset: a key of :data:`PRESETS`.
    :param str out: the output folder (``unet/``, ``scheduler/``, training state).
    :param int steps: train until this many optimiser steps are done in total.
    :param int batch_size: patches per step.
    :param float lr: the peak learning rate.
    :param int seed: seed of the initial weights and of the data stream.
    :param int save_every: save the checkpoint every this many steps.
    :param float max_minutes: stop (and save) once this invocation has trained this long.
    :param bool resume: continue the run in ``out`` (it must have the same settings).
    :param int threads: torch's CPU threads during training.
    :param int patch_size: the side of the training patches (default: the preset's).
    :param float dead_leaves: the fraction of dead-leaves patches (default: the preset's).
    :param str augment: ``"none"``, ``"flip"`` or ``"dihedral"`` (default: the preset's).
    :param str parametrisation: ``"ddpm"`` or ``"edm"`` (default: the preset's,
        :data:`PARAMETRISATION`).
    :param int validation_count: validation patches (default :data:`VALIDATION_COUNT`; 0: none).
    :param bool progress: show the progress bar.
    :param str precision: ``"fp32"`` or ``"bf16"`` (mixed precision, see
        :data:`pnpkit_priors.trainer.PRECISIONS`); a run may be resumed in either.
    :param int schedule_steps: the length of the cosine decay (default: ``steps``, or a resumed
        run's own when longer); given to a resumed run, it replaces the run's (to end the decay
        at an earlier or later step than planned).
    :return: the training state (what ``training_state.json`` holds).
    """
    from diffusers import UNet2DModel

    from .datasets import PatchSampler, heldout_patches

    data = data_settings(preset, patch_size, dead_leaves, augment)
    cfg = {**PRESETS[preset], "size": data["size"]}
    sampler = PatchSampler("train", channels=cfg["channels"], **data)
    param = parametrisation or PARAMETRISATION[preset]
    extra: dict[str, Any] = {"parametrisation": "edm", "edm": EDM_SETTINGS} if param == "edm" else {}
    count = VALIDATION_COUNT if validation_count is None else int(validation_count)
    if count:
        extra["validation"] = heldout_patches("validation", data["size"], cfg["channels"], count)
    return train_ddpm(UNet2DModel, None, sampler, out, steps, (data["size"], data["size"]),
                      defaults=unet_config(**cfg), batch_size=batch_size, lr=lr, seed=seed,
                      save_every=save_every, max_minutes=max_minutes, resume=resume,
                      threads=threads, settings={"preset": preset, "data": data},
                      overwrite=True, desc=f"train {preset}", progress=progress,
                      precision=precision, schedule_steps=schedule_steps, **extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pnpkit train-prior", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the checkpoint")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop early after this long (the checkpoint records the steps)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--patch-size", type=int, default=None,
                        help="side of the training patches (default: the preset's: 32 or 64)")
    parser.add_argument("--dead-leaves", type=float, default=None,
                        help="fraction of generated dead-leaves patches, 0 to 1 (default: the "
                             "preset's: 0 for grey32/rgb32, 0.25 for grey64/rgb64)")
    parser.add_argument("--augment", choices=("none", "flip", "dihedral"), default=None,
                        help="patch augmentation (default: the preset's: flip for grey32/rgb32, "
                             "dihedral = flips and 90-degree rotations for grey64/rgb64)")
    parser.add_argument("--parametrisation", choices=("ddpm", "edm"), default=None,
                        help="ddpm (unet/ + scheduler/, prior 'diffusers') or edm (config.json + "
                             "model.safetensors, prior 'edm'); default: the preset's")
    parser.add_argument("--validation-count", type=int, default=None,
                        help=f"validation patches (coffee) scored every --save-every steps on the "
                             f"progress bar (default {VALIDATION_COUNT}; 0: none)")
    parser.add_argument("--schedule-steps", type=int, default=None,
                        help="length of the cosine learning-rate decay (default: --steps, or the "
                             "resumed run's when longer; given with --resume it replaces the "
                             "run's)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: mixed-precision forward passes (float32 weights and loss), "
                             "0.57x the step time of fp32 on a CPU with AVX-512 BF16 (slower on "
                             "one without); a run may be resumed in either")


def run(args: argparse.Namespace) -> int:
    state = train(args.preset, args.out, args.steps, args.batch_size, args.lr, args.seed,
                  args.save_every, args.max_minutes, args.resume, args.threads,
                  args.patch_size, args.dead_leaves, args.augment, args.parametrisation,
                  args.validation_count, precision=args.precision,
                  schedule_steps=args.schedule_steps)
    print(f"trained {state['step']} steps in {state['seconds'] / 60:.1f} min -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
