"""Train the multi-source audio diffusion prior, reproducibly and offline, and write its model card.

``pnpkit train-audio-prior --data DIR --out DIR --steps N`` (or ``python -m
pnpkit_audio.train``) trains an :class:`~pnpkit_audio.network.AudioUNet1DModel` on (B, 4, L)
segments of the four stems (:class:`pnpkit_audio.dataset.SegmentSampler`, split ``train``)
with the house's one DDPM trainer, :func:`pnpkit_priors.trainer.train_ddpm`: epsilon
prediction on the 1000-step linear schedule (betas from 1e-4 to 0.02), AdamW, a linear
warm-up then a cosine decay of the learning rate, gradient clipping at norm 1, the
exponential moving average of the weights saved into ``OUT/unet`` and ``OUT/scheduler``
every ``--save-every`` steps and at the end.

Everything random in a step is a pure function of ``(seed, step)``, so ``--resume``
continues a run exactly: on the same machine and thread count, a run stopped and resumed ends
with the same weights, bit for bit, as one that was never stopped.

``--parametrisation edm`` trains the same network as the backbone of EDM's preconditioning
(:class:`pnpkit_priors.edm.EDMPrecond`: a denoiser ``D(x, sigma)`` for any sigma in
[1e-4, 80], the parametrisation MSDM itself uses), with MSDM's training levels
(:data:`AUDIO_EDM`: ``ln sigma ~ N(-3, 1)``), ``sigma_data`` measured on the training
segments (:func:`pnpkit_priors.trainer.estimate_sigma_data`) and the network's timestep
input scaled for ``c_noise`` (:data:`~pnpkit_audio.network.EDM_TIME_SCALE`); it writes
``OUT/config.json`` and ``OUT/model.safetensors``, which the ``audio-diffusion`` prior (and
``edm``) loads. ``--network large`` is a 5.4 M-parameter network (21.6 MB). A fixed batch of
validation-split segments (``--val-segments``, never the training split) is denoised every
``--save-every`` steps; its one-step gain in dB at sigma 0.05 / 0.1 / 0.2 / 0.4 is on the
progress bar beside the loss and in ``training_state.json``.

After training, the checkpoint is evaluated on segments of the validation split (one-step
Tweedie denoising SNR at several noise levels, :func:`~pnpkit_audio.card.evaluate_denoising`)
and ``MODEL_CARD.md`` and ``card.json`` are written next to it
(:func:`~pnpkit_audio.card.write_model_card`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pnpkit_priors.trainer import EMA, learning_rate, train_ddpm

from .card import NOISE_LEVELS, describe_data, evaluate_denoising, write_model_card

__all__ = ["AUDIO_EDM", "EMA", "NOISE_LEVELS", "VALIDATION_SEED", "add_arguments", "describe_data",
           "evaluate_denoising", "learning_rate", "main", "run", "train", "validation_segments",
           "write_model_card"]

#: EDM's settings for audio (over pnpkit_priors.trainer.EDM_DEFAULTS): MSDM's training levels,
#: ``ln sigma ~ N(-3, 1)`` (its ``LogNormalDistribution(mean=-3.0, std=1.0)``).
AUDIO_EDM: dict[str, float] = dict(p_mean=-3.0, p_std=1.0)
#: The seed of the fixed validation segments (the model card's too), whatever the training seed.
VALIDATION_SEED = (0xCA2D, 0)


def validation_segments(data_root: str | Path, count: int, length: int,
                        split: str = "validation") -> Any:
    """``count`` fixed segments of ``length`` samples from ``split`` (never ``train``), (N, C, L).

    :raises ValueError: for the train split.
    """
    import numpy as np
    import torch

    from .dataset import SegmentSampler

    if split == "train":
        raise ValueError("validation segments come from a held-out split, not 'train'; use "
                         "split 'validation'")
    val = SegmentSampler(data_root, split, length)
    rng = np.random.default_rng(list(VALIDATION_SEED))
    return torch.from_numpy(np.asarray(val.sample(int(count), rng), dtype=np.float32))


def train(data_root: str | Path | None, out: str | Path, steps: int, batch_size: int = 8,
          length: int = 16384, lr: float = 2e-4, seed: int = 0, save_every: int = 250,
          max_minutes: float | None = None, resume: bool = False, threads: int | None = None,
          sampler: Any = None, *, model_config: dict[str, Any] | None = None,
          schedule_steps: int | None = None, warmup_steps: int = 200,
          progress: bool = True, parametrisation: str = "ddpm",
          edm: dict[str, float] | None = None, validation: Any = None,
          validate_every: int | None = None, precision: str = "fp32") -> dict[str, Any]:
    """Train the audio prior for ``steps`` optimiser steps and save it under ``out``.

    ``out`` receives ``unet/`` (the EMA weights, ``save_pretrained``), ``scheduler/``,
    ``training_state.pt`` (model, optimiser, EMA and RNG states and the training state, for
    ``resume``) and ``training_state.json`` (settings, ``step``, ``seconds``, per-step
    ``losses``); see :func:`pnpkit_priors.trainer.train_ddpm`.

    :param str data_root: the built dataset's folder (unused when ``sampler`` is given).
    :param str out: the output folder.
    :param int steps: train until this many optimiser steps are done in total.
    :param int batch_size: segments per step.
    :param int length: samples per segment (a multiple of the network's down-sampling factor).
    :param float lr: the peak learning rate (AdamW, no weight decay).
    :param int seed: seed of the initial weights and of the data stream.
    :param int save_every: save the checkpoint every this many steps.
    :param float max_minutes: stop (and save) once this invocation has trained this long.
    :param bool resume: continue the run in ``out`` (a fresh start when there is none).
    :param int threads: torch's CPU threads during training (restored afterwards).
    :param sampler: an object with ``sample(batch_size, rng) -> (B, C, length)`` float32
        arrays in [-1, 1] (default: ``SegmentSampler(data_root, "train", length)``).
    :param dict model_config: the :class:`~pnpkit_audio.network.AudioUNet1DModel` settings
        (default: :data:`~pnpkit_audio.network.DEFAULT_CONFIG`); a resumed run keeps its own.
    :param int schedule_steps: length of the cosine decay (default: ``steps``, or the resumed
        run's when longer). Give the final step count to a run that will be resumed to it, so
        its learning rates are those of an uninterrupted run.
    :param int warmup_steps: steps of linear learning-rate warm-up.
    :param bool progress: show a tqdm progress bar (loss, and the validation gain in dB).
    :param str parametrisation: ``"ddpm"`` (epsilon prediction, ``OUT/unet`` + ``OUT/scheduler``)
        or ``"edm"`` (the network as the backbone of EDM's preconditioning, ``OUT/config.json``
        + ``OUT/model.safetensors``; its ``time_scale`` set to
        :data:`~pnpkit_audio.network.EDM_TIME_SCALE` unless ``model_config`` sets it).
    :param dict edm: EDM settings over :data:`AUDIO_EDM` (``p_mean``, ``p_std``, ``sigma_data``,
        ``sigma_min``, ``sigma_max``); ``sigma_data`` defaults to the standard deviation of the
        training segments.
    :param validation: fixed clean segments (N, C, length) to validate on (see
        :func:`validation_segments`), or None.
    :param int validate_every: steps between validations (default ``save_every``).
    :param str precision: ``"fp32"`` or ``"bf16"`` (mixed-precision forward passes, see
        :data:`pnpkit_priors.trainer.PRECISIONS`); a run may be resumed in either.
    :return: the training state (what ``training_state.json`` holds).
    :raises FileExistsError: when ``out`` holds a run and ``resume`` is false.
    :raises ValueError: when resuming with settings that would change the run.
    """
    import torch

    from pnpkit_priors.trainer import estimate_sigma_data

    from .network import DEFAULT_CONFIG, EDM_TIME_SCALE, AudioUNet1DModel

    def fits(unet: AudioUNet1DModel) -> None:
        try:
            unet.check_input(torch.zeros(1, unet.config.in_channels, length))
        except ValueError as exc:
            raise ValueError(f"length {length} does not fit the network: {exc}") from None

    if sampler is None:
        from .dataset import SegmentSampler

        sampler = SegmentSampler(data_root, "train", length)
    edm_settings = None
    if parametrisation == "edm":
        model_config = {"time_scale": EDM_TIME_SCALE, **(model_config or DEFAULT_CONFIG)}
        edm_settings = {**AUDIO_EDM, **(edm or {})}
        if "sigma_data" not in edm_settings:
            edm_settings["sigma_data"] = round(estimate_sigma_data(sampler, seed), 4)
    return train_ddpm(AudioUNet1DModel, model_config, sampler, out, steps, (int(length),),
                      defaults=DEFAULT_CONFIG, batch_size=batch_size, lr=lr, seed=seed,
                      save_every=save_every, max_minutes=max_minutes, resume=resume,
                      threads=threads, schedule_steps=schedule_steps,
                      warmup_steps=warmup_steps, settings={"length": int(length)},
                      info={"data_root": None if data_root is None else str(data_root)},
                      check_model=fits, desc="train-audio-prior", progress=progress,
                      parametrisation=parametrisation, edm=edm_settings, validation=validation,
                      validate_every=validate_every, precision=precision)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of ``pnpkit train-audio-prior``.

    :param argparse.ArgumentParser parser: the parser to extend.
    """
    parser.add_argument("--data", type=Path, required=True, help="the built dataset's folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the checkpoint")
    parser.add_argument("--steps", type=int, required=True, help="total optimiser steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=16384, help="samples per segment")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--schedule-steps", type=int, default=None,
                        help="length of the cosine decay (default: --steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop (and save) after this long; --resume continues")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--parametrisation", choices=("ddpm", "edm"), default="ddpm",
                        help="ddpm: epsilon prediction on the linear schedule; edm: a denoiser "
                             "D(x, sigma) for any sigma (EDM preconditioning, MSDM's form)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: mixed-precision forward passes (float32 weights and loss), "
                             "faster on a CPU with AVX-512 BF16 or a GPU; a run may be resumed "
                             "in either")
    parser.add_argument("--network", choices=("default", "large"), default="default",
                        help="default: 2.1 M parameters (8 MB); large: 5.4 M (21.6 MB)")
    parser.add_argument("--sigma-data", type=float, default=None,
                        help="EDM's sigma_data (default: measured on the training segments)")
    parser.add_argument("--val-segments", type=int, default=8,
                        help="fixed validation-split segments denoised every --save-every steps "
                             "(0: none)")
    parser.add_argument("--card-segments", type=int, default=32,
                        help="validation segments for the model card (0: no card)")
    parser.add_argument("--card-split", default="validation",
                        help="the dataset split the model card is evaluated on")


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` say, then evaluate the checkpoint and write its model card.

    :param argparse.Namespace args: parsed by a parser given :func:`add_arguments`.
    """
    import numpy as np
    import torch

    from .network import NETWORKS
    from .prior import load_audio_prior

    parametrisation = getattr(args, "parametrisation", "ddpm")
    val_count = getattr(args, "val_segments", 0)
    sigma_data = getattr(args, "sigma_data", None)
    validation = validation_segments(args.data, val_count, args.length) if val_count > 0 else None
    network = getattr(args, "network", "default")
    state = train(args.data, args.out, args.steps, args.batch_size, args.length, args.lr,
                  args.seed, args.save_every, args.max_minutes, args.resume, args.threads,
                  schedule_steps=args.schedule_steps, warmup_steps=args.warmup_steps,
                  model_config=None if network == "default" else dict(NETWORKS[network]),
                  parametrisation=parametrisation,
                  edm=None if sigma_data is None else {"sigma_data": sigma_data},
                  validation=validation, precision=getattr(args, "precision", "fp32"))
    print(f"trained {state['step']} steps in {state['seconds'] / 60:.1f} min -> {args.out}")
    if args.card_segments <= 0:
        return 0
    from .dataset import SegmentSampler

    val = SegmentSampler(args.data, args.card_split, args.length)
    # A fixed set of held-out segments, whatever the training seed.
    segments = torch.from_numpy(np.asarray(
        val.sample(args.card_segments, np.random.default_rng(list(VALIDATION_SEED))),
        dtype=np.float32))
    info = describe_data(args.data, args.card_split, args.card_segments, args.length)
    prior = load_audio_prior(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    table = evaluate_denoising(prior, segments)
    write_model_card(args.out, state, table, info)
    for r in table:
        print(f"sigma {r['sigma']:<5} SNR {r['snr_in']:6.2f} -> {r['snr_out']:6.2f} dB")
    print(f"wrote {Path(args.out) / 'MODEL_CARD.md'} and card.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m pnpkit_audio.train``.

    :param list argv: the arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="pnpkit train-audio-prior",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
