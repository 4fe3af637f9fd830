"""The multi-source audio prior's model card: one-step denoising SNR on held-out stems.

``MODEL_CARD.md`` and ``card.json`` are written next to a checkpoint by
``pnpkit train-audio-prior`` (:func:`pnpkit_audio.train.run`). The house's shared card parts
(the evaluation loop, the schedule and training facts, the files) are
:mod:`pnpkit_priors.cards`; what is here is the music: the SNR of stems, the data section of a
built dataset and the card's words.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pnpkit_priors.cards import (
    count_parameters,
    minutes,
    noisy_estimates,
    objective_lines,
    schedule_facts,
    schedule_line,
    training_facts,
    write_card,
)

from . import STEMS

#: Noise standard deviations of the model card's table, in pnpkit's range [-1, 1].
NOISE_LEVELS = (0.01, 0.03, 0.1, 0.3)


def _snr_db(estimate: Any, reference: Any) -> Any:
    """Per-item SNR in dB over all channels: ``10 log10(||x||^2 / ||x_hat - x||^2)``."""
    ref = reference.double().flatten(1)
    err = (estimate.double().flatten(1) - ref).pow(2).sum(1)
    return 10 * (ref.pow(2).sum(1).clamp_min(1e-20) / err.clamp_min(1e-20)).log10()


def evaluate_denoising(prior: Any, segments: Any, sigmas: Sequence[float] = NOISE_LEVELS,
                       seed: int = 0, batch_size: int = 8) -> list[dict[str, Any]]:
    r"""One-step Tweedie denoising quality of ``prior`` on clean segments, per noise level.

    Each segment :math:`x` (all stems together) gets Gaussian noise,
    :math:`y = x + \sigma n`, and is denoised in one network call
    (:func:`pnpkit_priors.cards.noisy_estimates`),
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
    for sigma, t, y, est in noisy_estimates(prior, x, sigmas, seed, batch_size):
        snr_in, snr_out = float(_snr_db(y, x).mean()), float(_snr_db(est, x).mean())
        rows.append({"sigma": float(sigma), "timestep": t,
                     "segments": int(x.shape[0]), "snr_in": round(snr_in, 2),
                     "snr_out": round(snr_out, 2), "gain": round(snr_out - snr_in, 2)})
    return rows


def write_model_card(out: str | Path, state: dict[str, Any], table: list[dict[str, Any]],
                     data_info: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """Write ``MODEL_CARD.md`` and ``card.json`` into the checkpoint folder ``out``.

    :param str out: the checkpoint folder (``unet/`` and ``scheduler/``, as
        :func:`pnpkit_audio.train.train` writes).
    :param dict state: the training state (``train``'s return value or
        ``training_state.json``).
    :param list table: the rows of :func:`evaluate_denoising` on the validation split.
    :param dict data_info: what the data is (source, sample rate, stems, split, segments, ...),
        shown as given.
    :param str name: the prior's name in the card (default: the folder's name).
    :return: the card (what ``card.json`` holds).
    """
    out = Path(out)
    if (out / "config.json").is_file():  # EDM: config.json + model.safetensors
        edm_cfg = json.loads((out / "config.json").read_text())
        model = {"class": f"EDMPrecond({edm_cfg.get('backbone_class')})",
                 "parameters": count_parameters(out / "model.safetensors"),
                 "config": dict(edm_cfg.get("backbone_config", {})),
                 "schedule": {"parametrisation": "edm",
                              **{k: edm_cfg.get(k) for k in ("sigma_data", "sigma_min",
                                                             "sigma_max", "c_noise_scale")},
                              **{k: (state.get("edm") or {}).get(k) for k in ("p_mean", "p_std")}}}
    else:
        unet_cfg = json.loads((out / "unet" / "config.json").read_text())
        sched_cfg = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
        model = {"class": unet_cfg.get("_class_name"),
                 "parameters": count_parameters(out / "unet" / "diffusion_pytorch_model.safetensors"),
                 "config": {k: v for k, v in unet_cfg.items() if not k.startswith("_")},
                 "schedule": schedule_facts(sched_cfg)}
    card = {
        "name": name or out.resolve().name,
        "model": model,
        "data": dict(data_info),
        "training": training_facts(state, ("batch_size", "length", "lr", "warmup_steps",
                                           "schedule_steps", "seed", "threads")),
        "evaluation": {
            "method": ("one denoising step (AudioEDMPrior.denoise: the network at sigma itself; "
                       "the timestep column is the DDPM grid's step of that level, for "
                       "comparison)" if model.get("schedule", {}).get("parametrisation") == "edm"
                       else "one Tweedie step (prior.denoise) at the timestep whose noise level "
                            "matches sigma")
                      + ", estimates clipped to [-1, 1]; SNR over all stems of a segment, "
                        "mean over segments",
            "rows": list(table),
        },
    }
    return write_card(out, card, render_markdown(card))


def render_markdown(card: dict[str, Any]) -> str:
    """The ``MODEL_CARD.md`` text of a card.

    :param dict card: what :func:`write_model_card` returns.
    """
    model, sched, train_, ev = (card["model"], card["model"]["schedule"], card["training"],
                                card["evaluation"])
    cfg = model["config"]
    factor = math.prod(cfg.get("down_factors") or [1])
    edm = sched.get("parametrisation") == "edm"
    kind = ("one EDM denoiser D(x, sigma) (Karras et al. 2022's preconditioning, MSDM's own "
            "parametrisation)" if edm else "one DDPM")
    loaded = "`AudioEDMPrior`" if edm else "`AudioDiffusionPrior`"
    sched_line = (f"- EDM preconditioning: sigma_data {sched['sigma_data']}, valid for sigma in "
                  f"[{sched['sigma_min']:g}, {sched['sigma_max']:g}], c_noise = "
                  f"{sched['c_noise_scale']} ln sigma; trained with ln sigma ~ "
                  f"N({sched['p_mean']}, {sched['p_std']}^2)" if edm else schedule_line(sched))
    lines = [
        f"# Model card: `{card['name']}`",
        "",
        f"A multi-source music diffusion prior (as MSDM, Mariani et al., ICLR 2024): {kind} over "
        f"{cfg.get('in_channels')} stems stacked as channels, (B, {cfg.get('in_channels')}, L) "
        f"signals in [-1, 1] with L a multiple of {factor}, loaded by pnpkit as an "
        f"{loaded}.",
        "",
        "## Model",
        "",
        f"- `{model['class']}`, {model['parameters']:,} parameters: widths {cfg.get('channels')}, "
        f"down-sampling {cfg.get('down_factors')}, {cfg.get('layers_per_block')} residual "
        f"block(s) per level, {cfg.get('mid_layers')} in the bottleneck, kernel "
        f"{cfg.get('kernel_size')}, no attention",
        sched_line,
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
        f"{minutes(train_['seconds'])} of training on {train_['threads']} thread(s)",
        *objective_lines(train_),
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


def describe_data(root: str | Path, split: str, segments: int, length: int) -> dict[str, Any]:
    """The model card's data section: what the dataset is, its splits and the evaluation segments.

    :param str root: the built dataset's folder.
    :param str split: the split the card is evaluated on.
    :param int segments: how many segments.
    :param int length: their length in samples.
    """
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
