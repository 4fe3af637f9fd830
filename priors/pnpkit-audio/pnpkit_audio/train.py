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

__all__ = ["EMA", "NOISE_LEVELS", "add_arguments", "describe_data", "evaluate_denoising",
           "learning_rate", "main", "run", "train", "write_model_card"]


def train(data_root: str | Path | None, out: str | Path, steps: int, batch_size: int = 8,
          length: int = 16384, lr: float = 2e-4, seed: int = 0, save_every: int = 250,
          max_minutes: float | None = None, resume: bool = False, threads: int | None = None,
          sampler: Any = None, *, model_config: dict[str, Any] | None = None,
          schedule_steps: int | None = None, warmup_steps: int = 200,
          progress: bool = True) -> dict[str, Any]:
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
    :param bool progress: show a tqdm progress bar.
    :return: the training state (what ``training_state.json`` holds).
    :raises FileExistsError: when ``out`` holds a run and ``resume`` is false.
    :raises ValueError: when resuming with settings that would change the run.
    """
    import torch

    from .network import DEFAULT_CONFIG, AudioUNet1DModel

    def fits(unet: AudioUNet1DModel) -> None:
        try:
            unet.check_input(torch.zeros(1, unet.config.in_channels, length))
        except ValueError as exc:
            raise ValueError(f"length {length} does not fit the network: {exc}") from None

    if sampler is None:
        from .dataset import SegmentSampler

        sampler = SegmentSampler(data_root, "train", length)
    return train_ddpm(AudioUNet1DModel, model_config, sampler, out, steps, (int(length),),
                      defaults=DEFAULT_CONFIG, batch_size=batch_size, lr=lr, seed=seed,
                      save_every=save_every, max_minutes=max_minutes, resume=resume,
                      threads=threads, schedule_steps=schedule_steps,
                      warmup_steps=warmup_steps, settings={"length": int(length)},
                      info={"data_root": None if data_root is None else str(data_root)},
                      check_model=fits, desc="train-audio-prior", progress=progress)


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

    from .prior import AudioDiffusionPrior

    state = train(args.data, args.out, args.steps, args.batch_size, args.length, args.lr,
                  args.seed, args.save_every, args.max_minutes, args.resume, args.threads,
                  schedule_steps=args.schedule_steps, warmup_steps=args.warmup_steps)
    print(f"trained {state['step']} steps in {state['seconds'] / 60:.1f} min -> {args.out}")
    if args.card_segments <= 0:
        return 0
    from .dataset import SegmentSampler

    val = SegmentSampler(args.data, args.card_split, args.length)
    # A fixed set of held-out segments, whatever the training seed.
    segments = torch.from_numpy(np.asarray(
        val.sample(args.card_segments, np.random.default_rng([0xCA2D, 0])), dtype=np.float32))
    info = describe_data(args.data, args.card_split, args.card_segments, args.length)
    prior = AudioDiffusionPrior.from_pretrained(args.out)
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
