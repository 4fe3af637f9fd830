"""Model cards for the project's own priors: held-out one-step denoising quality.

``python -m pnpkit_priors.evaluate --preset grey32 --weights DIR --state STATE.json`` (or
``pnpkit prior-card ...``) loads the checkpoint in ``DIR`` (``unet/`` + ``scheduler/``) with
:class:`~pnpkit_priors.diffusion.DiffusersPrior`, denoises a fixed, seeded set of patches of
the validation and test splits (:func:`pnpkit_priors.datasets.heldout_patches`) with one
Tweedie step at each noise level, and writes ``card.json`` and ``MODEL_CARD.md`` into ``DIR``:
the data and its split, the training steps, time, parameters and loss (from the training
state that :mod:`pnpkit_priors.train` writes), and a table of input and output PSNR.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cards import (
    minutes,
    noisy_estimates,
    objective_lines,
    schedule_facts,
    schedule_line,
    training_facts,
    write_card,
)

#: Noise standard deviations of the table, in pnpkit's range [-1, 1].
NOISE_LEVELS = (0.05, 0.1, 0.2, 0.4)
SPLITS = ("validation", "test")
AUGMENT_TEXT = {"none": "none", "flip": "random left-right flips",
                "dihedral": "random flips and 90-degree rotations (the 8 of the square)"}


def psnr(x: Any, ref: Any) -> Any:
    r"""Per-item PSNR in dB of signals in [-1, 1] (peak-to-peak 2): :math:`10\log_{10}(4/\mathrm{MSE})`.

    The core's :func:`pnpkit.metrics.psnr`, computed in float64.

    :param torch.Tensor x: estimates (B, ...).
    :param torch.Tensor ref: references (B, ...).
    :return: a (B,) tensor.
    """
    from pnpkit.metrics import psnr as core_psnr

    return core_psnr(x.double(), ref.double())


def denoising_table(prior: Any, channels: int, size: int, count: int = 64, seed: int = 0,
                    levels: Sequence[float] = NOISE_LEVELS,
                    splits: Sequence[str] = SPLITS) -> list[dict[str, Any]]:
    """One-step Tweedie denoising PSNR of ``prior`` on held-out patches.

    For each split and noise level, ``count`` fixed patches get Gaussian noise of that standard
    deviation (seeded) and are denoised by ``prior.denoise`` (estimates clipped to [-1, 1]).

    :param pnpkit.priors.Prior prior: the prior to evaluate.
    :param int channels: 1 (grey) or 3 (RGB).
    :param int size: patch size.
    :param int count: patches per split.
    :param int seed: seed of the patches and of the noise.
    :param list levels: noise standard deviations (pnpkit range).
    :param list splits: the splits of :data:`pnpkit_priors.datasets.SPLITS` to use.
    :return: rows ``{split, sigma, timestep, psnr_in, psnr_out, patches}`` (PSNR means in dB).
    """
    import torch

    from .datasets import heldout_patches

    rows = []
    for split in splits:
        x = torch.from_numpy(heldout_patches(split, size, channels, count, seed))
        for sigma, t, y, out in noisy_estimates(prior, x, levels, seed):
            rows.append({"split": split, "sigma": sigma, "timestep": t, "patches": count,
                         "psnr_in": round(float(psnr(y, x).mean()), 2),
                         "psnr_out": round(float(psnr(out, x).mean()), 2)})
    return rows


def write_model_card(weights_dir: str | Path, preset: str, training_state_path: str | Path | None,
                     count: int = 64, seed: int = 0, device: str = "cpu",
                     size: int | None = None) -> dict[str, Any]:
    """Evaluate the checkpoint in ``weights_dir`` and write ``card.json`` and ``MODEL_CARD.md`` there.

    :param str weights_dir: the checkpoint folder (``unet/`` and ``scheduler/``).
    :param str preset: the training preset (``"grey32"`` or ``"rgb32"``), for its channels and size.
    :param str training_state_path: the ``training_state.json`` written by
        :mod:`pnpkit_priors.train` (steps, time, losses); ``None`` leaves training facts out.
    :param int count: patches per split.
    :param int seed: seed of the patches and the noise.
    :param str device: where the network runs.
    :param int size: the side of the evaluation patches (default: the preset's patch size; 32
        compares a 64-pixel prior with the 32-pixel presets' figures on the same patches).
    :return: the card (what ``card.json`` holds).
    """
    from .datasets import SCALES
    from .datasets import SPLITS as DATA_SPLITS
    from .diffusion import DiffusersPrior
    from .train import PRESETS, data_settings

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[preset]
    weights_dir = Path(weights_dir)
    eval_size = int(size or cfg["size"])
    edm = (weights_dir / "config.json").is_file()  # an EDM denoiser (parametrisation "edm")
    if edm:
        from .edm import EDMPrior

        prior: Any = EDMPrior.from_pretrained(weights_dir, device=device, name=preset)
    else:
        prior = DiffusersPrior.from_pretrained(weights_dir, device=device, name=preset,
                                               check_size=eval_size == cfg["size"])
    start = time.perf_counter()
    rows = denoising_table(prior, cfg["channels"], eval_size, count=count, seed=seed)
    network = prior.model.backbone if edm else prior.unet
    unet_cfg = dict(network.config)
    schedule = ({"_class_name": "EDMPrecond", "sigma_data": prior.sigma_data,
                 "sigma_min": prior.sigma_min, "sigma_max": prior.sigma_max} if edm
                else schedule_facts(dict(prior.scheduler.config)))
    training: dict[str, Any] = {}
    data = data_settings(preset)
    if training_state_path is not None:
        state = json.loads(Path(training_state_path).read_text())
        training = training_facts(state, ("batch_size", "lr", "seed"))
        data = {**data, **state.get("data", {})}
    card = {
        "name": f"default-{preset}",
        "preset": preset,
        "architecture": {
            "class": unet_cfg.get("_class_name", type(network).__name__),
            "channels": unet_cfg.get("in_channels"), "sample_size": unet_cfg.get("sample_size"),
            "block_out_channels": list(unet_cfg.get("block_out_channels", [])),
            "layers_per_block": unet_cfg.get("layers_per_block"),
            "down_block_types": list(unet_cfg.get("down_block_types", [])),
            "parameters": prior.num_parameters,
        },
        "schedule": schedule,
        "data": {
            "source": "scikit-image's bundled pictures (offline), multi-scale patches",
            "patch_size": data["size"], "scales": list(SCALES),
            "augment": data["augment"], "dead_leaves": data["dead_leaves"],
            "splits": {k: list(v) for k, v in DATA_SPLITS.items()},
            "split_rule": "by whole picture: no held-out pixel is seen in training",
        },
        "training": training,
        "evaluation": {
            "method": ("one denoising step (EDMPrior.denoise: the network at sigma itself; the "
                       "timestep column is the DDPM grid's step of that level, for comparison)"
                       if edm else "one Tweedie step (DiffusersPrior.denoise) at the timestep "
                       "whose noise level matches sigma")
                      + "; estimates clipped to [-1, 1]; PSNR with peak-to-peak 2",
            "patches_per_split": count, "patch_size": eval_size, "seed": seed,
            "noise_levels": list(NOISE_LEVELS),
            "seconds": round(time.perf_counter() - start, 1),
            "rows": rows,
        },
    }
    return write_card(weights_dir, card, render_markdown(card))


def size_text(card: dict[str, Any]) -> str:
    """The card's paragraph on sizes: the prior runs at any size, padded to its down-sampling.

    :param dict card: what :func:`write_model_card` returns.
    """
    arch = card["architecture"]
    factor = 2 ** (len(arch["block_out_channels"]) - 1)  # every block but the last halves
    attention = [i for i, b in enumerate(arch["down_block_types"]) if b.startswith("Attn")]
    attn = (f"self-attention only at 1/{2 ** min(attention)} of the resolution" if attention
            else "no attention")
    return (f"Trained on {arch['sample_size']} x {arch['sample_size']} patches, it runs on "
            f"pictures of any size: its UNet is convolutional ({attn}), so pnpkit reflect-pads a "
            f"picture to the next multiple of {factor} (its down-sampling factor) and crops the "
            f"output back. That is the default of `{card['name']}` (`check_size = false`); "
            "`check_size = true` refuses other sizes, and `[prior] tile = N` runs it on "
            "overlapping tiles instead.")


def render_markdown(card: dict[str, Any]) -> str:
    """The ``MODEL_CARD.md`` text of a card.

    :param dict card: what :func:`write_model_card` returns.
    """
    arch, sched, data, train, ev = (card["architecture"], card["schedule"], card["data"],
                                    card["training"], card["evaluation"])
    splits = data["splits"]
    is_edm = sched["_class_name"] == "EDMPrecond"
    lines = [
        f"# Model card: `{card['name']}`",
        "",
        f"A small pixel-space {'EDM' if is_edm else 'DDPM'} prior for {arch['channels']} x "
        f"{arch['sample_size']} x {arch['sample_size']} patches in [-1, 1], loaded by pnpkit as "
        f"prior `{card['name']}` (a `{'EDMPrior' if is_edm else 'DiffusersPrior'}`).",
        "",
        "## Model",
        "",
        f"- diffusers `{arch['class']}`, {arch['parameters']:,} parameters, block channels "
        f"{arch['block_out_channels']}, {arch['layers_per_block']} layer(s) per block, "
        f"blocks {', '.join(arch['down_block_types'])}",
        (f"- EDM preconditioning (Karras et al. 2022): a denoiser D(x, sigma) for sigma in "
         f"[{sched['sigma_min']:g}, {sched['sigma_max']:g}], sigma_data {sched['sigma_data']:g}; "
         "prior `edm`" if is_edm else schedule_line(sched)),
        "",
        "## Sizes",
        "",
        size_text(card),
        "",
        "## Data",
        "",
        f"- {data['source']}; patches of {data['patch_size']} pixels cut at scales "
        f"{', '.join(str(s) for s in data['scales'])}",
        f"- augmentation: {AUGMENT_TEXT.get(data.get('augment', 'flip'), data.get('augment'))}; "
        f"generated dead-leaves patches (disks, radii ~ r^-3): "
        f"{float(data.get('dead_leaves', 0.0)):.0%} of the patches",
        f"- split {data['split_rule']}",
        f"- train: {', '.join(splits['train'])}",
        f"- validation: {', '.join(splits['validation'])}",
        f"- test: {', '.join(splits['test'])}",
        "",
        "## Training",
        "",
    ]
    if train:
        lines += [
            f"- {train['steps']} optimiser steps of {train['batch_size']} patches, learning rate "
            f"{train['lr']}, seed {train['seed']}, {minutes(train['seconds'])} of training",
            *objective_lines(train),
        ]
    else:
        lines.append("- no training state was given")
    lines += [
        "",
        "## One-step denoising on held-out patches",
        "",
        f"{ev['patches_per_split']} fixed {ev.get('patch_size', data['patch_size'])}-pixel patches "
        f"per split (seed {ev['seed']}); method: "
        f"{ev['method']}.",
        "",
        "| split | noise std | timestep | PSNR in (dB) | PSNR out (dB) | gain (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in ev["rows"]:
        gain = r["psnr_out"] - r["psnr_in"]
        lines.append(f"| {r['split']} | {r['sigma']} | {r['timestep']} | {r['psnr_in']:.2f} | "
                     f"{r['psnr_out']:.2f} | {gain:+.2f} |")
    lines += ["", "Written by `python -m pnpkit_priors.evaluate`.", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of ``pnpkit prior-card``.

    :param argparse.ArgumentParser parser: the parser to extend.
    """
    from .train import PRESETS

    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--weights", type=Path, required=True,
                        help="checkpoint folder (unet/ and scheduler/); the card is written there")
    parser.add_argument("--state", type=Path, default=None,
                        help="training_state.json of the training run")
    parser.add_argument("--count", type=int, default=64, help="patches per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=None,
                        help="side of the evaluation patches (default: the preset's; 32 gives "
                             "the 32-pixel presets' patches)")


def run(args: argparse.Namespace) -> int:
    """Write the model card that ``args`` describe and print its table.

    :param argparse.Namespace args: parsed by a parser given :func:`add_arguments`.
    """
    card = write_model_card(args.weights, args.preset, args.state, count=args.count,
                            seed=args.seed, device=args.device, size=args.size)
    for r in card["evaluation"]["rows"]:
        print(f"{r['split']:<10} sigma {r['sigma']:<5} PSNR {r['psnr_in']:6.2f} -> "
              f"{r['psnr_out']:6.2f} dB")
    print(f"wrote {Path(args.weights) / 'MODEL_CARD.md'} and card.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m pnpkit_priors.evaluate``.

    :param list argv: the arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="pnpkit prior-card", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
