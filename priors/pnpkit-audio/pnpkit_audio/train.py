"""Train the multi-source audio diffusion prior, reproducibly and offline, and write its model card.

``pnpkit train-audio-prior --data DIR --out DIR --steps N`` (or ``python -m
pnpkit_audio.train``) trains an :class:`~pnpkit_audio.network.AudioUNet1DModel` on (B, 4, L)
segments of the four stems (:class:`pnpkit_audio.dataset.SegmentSampler`, split ``train``)
with the DDPM objective: epsilon prediction on the 1000-step linear schedule (betas from 1e-4
to 0.02), AdamW, a linear warm-up then a cosine decay of the learning rate, gradient clipping
at norm 1. The exponential moving average of the weights is what is saved, with
``save_pretrained`` (safetensors), into ``OUT/unet`` and ``OUT/scheduler`` every
``--save-every`` steps and at the end, so a stopped run still leaves a usable checkpoint.

Everything random in a step is a pure function of ``(seed, step)``: the batch is
``sampler.sample(batch_size, numpy.random.default_rng([seed, step]))`` and the timesteps and
noise come from a ``torch.Generator`` seeded from ``(seed, step)``. With the optimiser, the
EMA and the learning-rate schedule restored from ``OUT/training_state.pt``, ``--resume``
continues a run exactly: on the same machine and thread count, a run stopped and resumed ends
with the same weights, bit for bit, as one that was never stopped.

After training, the checkpoint is evaluated on segments of the validation split (one-step
Tweedie denoising SNR at several noise levels, :func:`evaluate_denoising`) and
``MODEL_CARD.md`` and ``card.json`` are written next to it (:func:`write_model_card`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

#: Noise standard deviations of the model card's table, in pnpkit's range [-1, 1].
NOISE_LEVELS = (0.01, 0.03, 0.1, 0.3)
#: The EMA of the weights (what is saved): diffusers' ``EMAModel`` with warm-up.
EMA = dict(decay=0.999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
#: Settings that fix the data stream and the optimisation: a resumed run must keep them.
_FIXED = ("seed", "batch_size", "length", "lr", "warmup_steps")


def _stream_seed(seed: int, step: int) -> int:
    """The seed of the torch generator of step ``step`` (timesteps and noise)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, step, 1]).generate_state(1, np.uint64)[0])


def learning_rate(step: int, lr: float, warmup_steps: int, schedule_steps: int) -> float:
    r"""The learning rate of optimiser step ``step`` (counted from 0).

    .. math:: \eta_s = \eta \, \min\!\Big(1, \frac{s + 1}{W}\Big) \,
              \frac{1 + \cos(\pi \min(s / S, 1))}{2}

    with :math:`W` the warm-up steps and :math:`S` the length of the cosine decay.

    :param int step: the step.
    :param float lr: the peak learning rate :math:`\eta`.
    :param int warmup_steps: :math:`W`.
    :param int schedule_steps: :math:`S`.
    """
    warm = min(1.0, (step + 1) / max(1, warmup_steps))
    progress = min(1.0, step / max(1, schedule_steps))
    return lr * warm * 0.5 * (1.0 + math.cos(math.pi * progress))


def _normalise(config: dict[str, Any]) -> dict[str, Any]:
    """A model configuration as JSON stores it (tuples become lists)."""
    return json.loads(json.dumps(config))


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


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
    ``losses``).

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
    import numpy as np
    import torch
    from diffusers.training_utils import EMAModel
    from tqdm import tqdm

    from .network import DEFAULT_CONFIG, AudioUNet1DModel
    from .prior import build_scheduler

    out = Path(out)
    ckpt, state_json = out / "training_state.pt", out / "training_state.json"
    settings = {"seed": int(seed), "batch_size": int(batch_size), "length": int(length),
                "lr": float(lr), "warmup_steps": int(warmup_steps)}
    saved: dict[str, Any] | None = None
    if ckpt.exists():
        if not resume:
            raise FileExistsError(f"{out} already holds a training run (training_state.pt); pass "
                                  "resume=True (--resume) to continue it, or choose another folder")
        saved = torch.load(ckpt, weights_only=True)
        # The state saved with the weights, not the JSON copy: a run killed between the two
        # writes still resumes consistently.
        state = json.loads(saved["state"])
        changed = [f"{k}={settings[k]} (the run has {state[k]})" for k in _FIXED
                   if state[k] != settings[k]]
        if (model_config is not None
                and _normalise(dict(DEFAULT_CONFIG, **model_config)) != state["model_config"]):
            changed.append("model_config")
        if changed:
            raise ValueError(f"cannot resume {out} with other settings: {', '.join(changed)}; "
                             "keep them, or train into another folder")
        config = state["model_config"]
        state["schedule_steps"] = int(schedule_steps or max(steps, state["schedule_steps"]))
    else:
        config = _normalise(dict(DEFAULT_CONFIG, **(model_config or {})))
        state = {**settings, "step": 0, "seconds": 0.0, "losses": [],
                 "schedule_steps": int(schedule_steps or steps), "model_config": config,
                 "data_root": None if data_root is None else str(data_root),
                 "data_stream": "batch: sampler.sample(batch_size, numpy.random.default_rng("
                                "[seed, step])); timesteps and noise: torch.Generator seeded by "
                                "numpy.random.SeedSequence([seed, step, 1])",
                 "ema": dict(EMA), "objective": "DDPM epsilon-prediction MSE",
                 "optimizer": "AdamW (weight decay 0), warm-up + cosine learning rate, "
                              "gradient norm clipped to 1"}

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        torch.manual_seed(seed)
        unet = AudioUNet1DModel(**config)
        scheduler = build_scheduler()
        try:
            unet.check_input(torch.zeros(1, unet.config.in_channels, length))
        except ValueError as exc:
            raise ValueError(f"length {length} does not fit the network: {exc}") from None
        params = list(unet.parameters())
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        ema = EMAModel(params, **EMA)
        if saved is not None:
            unet.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            ema.load_state_dict(saved["ema"])
            torch.set_rng_state(saved["torch_rng"])
        if sampler is None:
            from .dataset import SegmentSampler

            sampler = SegmentSampler(data_root, "train", length)
        state["parameters"] = sum(p.numel() for p in params)
        state["threads"] = torch.get_num_threads()
        alphas_cumprod = scheduler.alphas_cumprod.to(torch.float32)
        num_t = int(scheduler.config.num_train_timesteps)
        out.mkdir(parents=True, exist_ok=True)

        def save() -> None:
            ema.store(params)
            ema.copy_to(params)
            unet.save_pretrained(out / "unet", safe_serialization=True)
            ema.restore(params)
            scheduler.save_pretrained(out / "scheduler")
            blob = {"model": unet.state_dict(), "optimizer": opt.state_dict(),
                    "ema": ema.state_dict(), "torch_rng": torch.get_rng_state(),
                    "state": json.dumps(state)}
            _write_atomic(ckpt, lambda p: torch.save(blob, p))
            _write_atomic(state_json, lambda p: p.write_text(json.dumps(state, indent=1)))

        start, began = state["step"], time.perf_counter()
        seconds_before = float(state["seconds"])
        state["stopped_by"] = "steps"
        bar = tqdm(range(start, steps), initial=start, total=steps, disable=not progress,
                   desc=f"train-audio-prior ({state['parameters'] / 1e6:.2f} M params)")
        unet.train()
        for step in bar:
            batch = sampler.sample(batch_size, np.random.default_rng([seed, step]))
            x0 = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
            want = (batch_size, unet.config.in_channels, length)
            if tuple(x0.shape) != want:
                raise ValueError(f"the sampler gave a batch of shape {tuple(x0.shape)}, expected "
                                 f"{want}")
            g = torch.Generator().manual_seed(_stream_seed(seed, step))
            t = torch.randint(0, num_t, (batch_size,), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            a = alphas_cumprod[t].view(-1, 1, 1)
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, lr, warmup_steps, state["schedule_steps"])
            loss = torch.nn.functional.mse_loss(unet(x_t, t).sample, noise)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"the loss is {value} at step {step}; lower the learning "
                                         f"rate (now {lr}) or check the data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            ema.step(params)
            state["step"] = step + 1
            state["seconds"] = round(seconds_before + time.perf_counter() - began, 3)
            state["losses"].append(round(value, 6))
            recent = state["losses"][-50:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
            if (step + 1) % save_every == 0:
                save()
            if max_minutes is not None and time.perf_counter() - began > 60 * max_minutes:
                state["stopped_by"] = "max_minutes"
                break
        bar.close()
        save()
        return state
    finally:
        torch.set_num_threads(previous_threads)


def _snr_db(estimate: Any, reference: Any) -> Any:
    """Per-item SNR in dB over all channels: ``10 log10(||x||^2 / ||x_hat - x||^2)``."""
    ref = reference.double().flatten(1)
    err = (estimate.double().flatten(1) - ref).pow(2).sum(1)
    return 10 * (ref.pow(2).sum(1).clamp_min(1e-20) / err.clamp_min(1e-20)).log10()


def evaluate_denoising(prior: Any, segments: Any, sigmas: Sequence[float] = NOISE_LEVELS,
                       seed: int = 0, batch_size: int = 8) -> list[dict[str, Any]]:
    r"""One-step Tweedie denoising quality of ``prior`` on clean segments, per noise level.

    Each segment :math:`x` (all stems together) gets Gaussian noise,
    :math:`y = x + \sigma n`, and is denoised in one network call,
    :math:`\hat x = \mathrm{clip}_{[-1, 1]}(\mathrm{prior.denoise}(y, \sigma))` (Tweedie at
    the timestep whose noise level matches :math:`\sigma`). The SNR of an item is
    :math:`10 \log_{10}(\|x\|^2 / \|\hat x - x\|^2)` over its channels and samples.

    :param pnpkit.priors.Prior prior: the prior (any with ``denoise``).
    :param torch.Tensor segments: clean segments (N, C, L) in [-1, 1].
    :param list sigmas: noise standard deviations (pnpkit's range).
    :param int seed: seed of the noise (level ``k`` uses ``seed * 1000 + k``).
    :param int batch_size: segments per network call.
    :return: one row per noise level: ``sigma``, ``timestep`` (or ``None`` for a denoiser
        prior), ``segments``, ``snr_in`` and ``snr_out`` (means over the segments, dB) and
        ``gain`` (``snr_out - snr_in``).
    """
    import torch

    x = torch.as_tensor(segments)
    rows = []
    for k, sigma in enumerate(sigmas):
        g = torch.Generator().manual_seed(seed * 1000 + k)
        y = x + float(sigma) * torch.randn(x.shape, generator=g, dtype=x.dtype)
        with torch.no_grad():
            est = torch.cat([prior.denoise(y[i:i + batch_size], float(sigma)).clamp(-1, 1)
                             for i in range(0, x.shape[0], batch_size)])
        snr_in, snr_out = float(_snr_db(y, x).mean()), float(_snr_db(est, x).mean())
        rows.append({"sigma": float(sigma),
                     "timestep": prior.sigma_to_t(sigma) if hasattr(prior, "sigma_to_t") else None,
                     "segments": int(x.shape[0]), "snr_in": round(snr_in, 2),
                     "snr_out": round(snr_out, 2), "gain": round(snr_out - snr_in, 2)})
    return rows


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 5) if values else None


def _count_parameters(weights: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def write_model_card(out: str | Path, state: dict[str, Any], table: list[dict[str, Any]],
                     data_info: dict[str, Any]) -> dict[str, Any]:
    """Write ``MODEL_CARD.md`` and ``card.json`` into the checkpoint folder ``out``.

    :param str out: the checkpoint folder (``unet/`` and ``scheduler/``, as :func:`train` writes).
    :param dict state: the training state (:func:`train`'s return value or
        ``training_state.json``).
    :param list table: the rows of :func:`evaluate_denoising` on the validation split.
    :param dict data_info: what the data is (source, sample rate, stems, split, segments, ...),
        shown as given.
    :return: the card (what ``card.json`` holds).
    """
    out = Path(out)
    unet_cfg = json.loads((out / "unet" / "config.json").read_text())
    sched_cfg = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    losses = [float(v) for v in state.get("losses", [])]
    card = {
        "name": out.resolve().name,
        "model": {
            "class": unet_cfg.get("_class_name"),
            "parameters": _count_parameters(out / "unet" / "diffusion_pytorch_model.safetensors"),
            "config": {k: v for k, v in unet_cfg.items() if not k.startswith("_")},
            "schedule": {k: sched_cfg.get(k) for k in ("_class_name", "num_train_timesteps",
                                                       "beta_schedule", "beta_start", "beta_end",
                                                       "prediction_type")},
        },
        "data": dict(data_info),
        "training": {
            "steps": state.get("step"), "seconds": round(float(state.get("seconds", 0.0)), 1),
            "batch_size": state.get("batch_size"), "length": state.get("length"),
            "lr": state.get("lr"), "warmup_steps": state.get("warmup_steps"),
            "schedule_steps": state.get("schedule_steps"), "seed": state.get("seed"),
            "threads": state.get("threads"),
            "loss_first_100": _mean(losses[:100]), "loss_last_100": _mean(losses[-100:]),
            "objective": "MSE between the predicted and the true noise (epsilon prediction)",
            "weights": "exponential moving average of the trained weights",
        },
        "evaluation": {
            "method": "one Tweedie step (prior.denoise) at the timestep whose noise level matches "
                      "sigma, estimates clipped to [-1, 1]; SNR over all stems of a segment, "
                      "mean over segments",
            "rows": list(table),
        },
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(render_markdown(card))
    return card


def _minutes(seconds: Any) -> str:
    return "unknown" if seconds is None else f"{float(seconds) / 60:.1f} min"


def render_markdown(card: dict[str, Any]) -> str:
    """The ``MODEL_CARD.md`` text of a card.

    :param dict card: what :func:`write_model_card` returns.
    """
    model, sched, train_, ev = (card["model"], card["model"]["schedule"], card["training"],
                                card["evaluation"])
    cfg = model["config"]
    factor = math.prod(cfg.get("down_factors") or [1])
    lines = [
        f"# Model card: `{card['name']}`",
        "",
        f"A multi-source music diffusion prior (as MSDM, Mariani et al., ICLR 2024): one DDPM over "
        f"{cfg.get('in_channels')} stems stacked as channels, (B, {cfg.get('in_channels')}, L) "
        f"signals in [-1, 1] with L a multiple of {factor}, loaded by pnpkit as an "
        "`AudioDiffusionPrior`.",
        "",
        "## Model",
        "",
        f"- `{model['class']}`, {model['parameters']:,} parameters: widths {cfg.get('channels')}, "
        f"down-sampling {cfg.get('down_factors')}, {cfg.get('layers_per_block')} residual "
        f"block(s) per level, {cfg.get('mid_layers')} in the bottleneck, kernel "
        f"{cfg.get('kernel_size')}, no attention",
        f"- `{sched['_class_name']}`: {sched['num_train_timesteps']} steps, "
        f"{sched['beta_schedule']} betas from {sched['beta_start']} to {sched['beta_end']}, "
        f"`{sched['prediction_type']}` prediction",
        "",
        "## Data",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in card["data"].items()] or ["- not described"]
    lines += [
        "",
        "## Training",
        "",
        f"- {train_['steps']} optimiser steps of {train_['batch_size']} segments of "
        f"{train_['length']} samples, learning rate {train_['lr']} ({train_['warmup_steps']} "
        f"warm-up steps, cosine decay over {train_['schedule_steps']}), seed {train_['seed']}, "
        f"{_minutes(train_['seconds'])} of training on {train_['threads']} thread(s)",
        f"- objective: {train_['objective']}; saved: {train_['weights']}",
        f"- loss: {train_['loss_first_100']} (mean of the first 100 steps) -> "
        f"{train_['loss_last_100']} (mean of the last 100 steps)",
        "",
        "## One-step denoising on validation segments",
        "",
        f"Method: {ev['method']}.",
        "",
        "| noise std | timestep | segments | SNR in (dB) | SNR out (dB) | gain (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in ev["rows"]:
        lines.append(f"| {r['sigma']} | {r['timestep']} | {r['segments']} | {r['snr_in']:.2f} | "
                     f"{r['snr_out']:.2f} | {r['gain']:+.2f} |")
    lines += ["", "Written by `pnpkit train-audio-prior` (`pnpkit_audio.train`).", ""]
    return "\n".join(lines)


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


def describe_data(root: str | Path, split: str, segments: int, length: int) -> dict[str, Any]:
    """The model card's data section: what the dataset is, its splits and the evaluation segments."""
    from . import STEMS
    from .dataset import read_manifest

    manifest = read_manifest(root)
    settings = manifest["settings"]
    return {
        "source": "music21's Bach chorales rendered to stems with FluidSynth and the General "
                  "MIDI soundfont (`pnpkit build-audio-dataset`)",
        "stems": ", ".join(STEMS), "sample_rate": settings["sample_rate"],
        "split rule": "by piece (test / validation / train), seed "
                      f"{settings['seed']}: no piece is in two splits",
        "pieces per split": manifest.get("counts"), "hours per split": manifest.get("hours"),
        "evaluation": f"{segments} fixed segments of {length} samples from the {split} split",
    }


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` say, then evaluate the checkpoint and write its model card.

    :param argparse.Namespace args: parsed by a parser given :func:`add_arguments`.
    """
    import numpy as np
    import torch

    from . import STEMS
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
