"""Train the project's own small pixel-space DDPM priors, reproducibly and offline.

``pnpkit train-prior --preset grey32 --out DIR`` (or ``python -m pnpkit_priors.train``)
trains a diffusers ``UNet2DModel`` with epsilon prediction on the 1000-step linear schedule
of the papers (beta from 1e-4 to 0.02), on patches of scikit-image's bundled pictures
(:mod:`pnpkit_priors.datasets`). The exponential moving average of the weights is what is
saved, with ``save_pretrained`` (safetensors), every ``--save-every`` steps, so a stopped
run still leaves a usable checkpoint; ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # 1.1 M parameters, attention only at 8x8 (attention at 32x32 is too slow on a CPU).
    "grey32": dict(channels=1, size=32, block_out_channels=(32, 64, 64), layers_per_block=1),
    "rgb32": dict(channels=3, size=32, block_out_channels=(32, 64, 64), layers_per_block=1),
}


def build_unet(channels: int, size: int, block_out_channels: tuple[int, ...],
               layers_per_block: int):
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=size, in_channels=channels, out_channels=channels,
        block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8, attention_head_dim=16,
    )


def build_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                         beta_end=0.02, prediction_type="epsilon", clip_sample=True)


def train(preset: str, out: Path, steps: int, batch_size: int = 32, lr: float = 5e-4,
          seed: int = 0, save_every: int = 250, max_minutes: float | None = None,
          resume: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Train ``preset`` for ``steps`` optimiser steps and save it under ``out``."""
    import numpy as np
    import torch
    from diffusers.training_utils import EMAModel
    from tqdm import tqdm

    from .datasets import PatchSampler

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[preset]
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unet = build_unet(cfg["channels"], cfg["size"], cfg["block_out_channels"],
                      cfg["layers_per_block"])
    scheduler = build_scheduler()
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    ema = EMAModel(unet.parameters(), decay=0.999, use_ema_warmup=True, power=0.75)
    state = {"preset": preset, "seed": seed, "batch_size": batch_size, "lr": lr, "step": 0,
             "seconds": 0.0, "losses": []}
    ckpt = out / "training_state.pt"
    if resume and ckpt.exists():
        saved = torch.load(ckpt, weights_only=True)
        unet.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        ema.load_state_dict(saved["ema"])
        state = json.loads((out / "training_state.json").read_text())
        torch.set_rng_state(saved["torch_rng"])
    sampler = PatchSampler("train", size=cfg["size"], channels=cfg["channels"])
    # The data stream is a pure function of (seed, step): a resumed run sees the same batches.
    alphas_cumprod = scheduler.alphas_cumprod
    n_params = sum(p.numel() for p in unet.parameters())
    bar = tqdm(range(state["step"], steps), initial=state["step"], total=steps,
               desc=f"train {preset} ({n_params / 1e6:.2f} M params)")
    t_start = time.perf_counter() - state["seconds"]

    def save() -> None:
        ema_unet = build_unet(cfg["channels"], cfg["size"], cfg["block_out_channels"],
                              cfg["layers_per_block"])
        ema.copy_to(ema_unet.parameters())
        ema_unet.save_pretrained(out / "unet", safe_serialization=True)
        scheduler.save_pretrained(out / "scheduler")
        torch.save({"model": unet.state_dict(), "optimizer": opt.state_dict(),
                    "ema": ema.state_dict(), "torch_rng": torch.get_rng_state()}, ckpt)
        (out / "training_state.json").write_text(json.dumps(state, indent=1))

    unet.train()
    for step in bar:
        rng = np.random.default_rng([seed, step])
        x0 = torch.from_numpy(sampler.sample(batch_size, rng))
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (batch_size,))
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        warm = min(1.0, (step + 1) / 200)
        for group in opt.param_groups:
            group["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = torch.nn.functional.mse_loss(unet(x_t, t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.step(unet.parameters())
        state["step"] = step + 1
        state["seconds"] = time.perf_counter() - t_start
        state["losses"].append(round(float(loss), 5))
        bar.set_postfix(loss=f"{sum(state['losses'][-50:]) / len(state['losses'][-50:]):.4f}")
        if (step + 1) % save_every == 0:
            save()
        if max_minutes is not None and state["seconds"] > 60 * max_minutes:
            break
    save()
    return state


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


def run(args: argparse.Namespace) -> int:
    state = train(args.preset, args.out, args.steps, args.batch_size, args.lr, args.seed,
                  args.save_every, args.max_minutes, args.resume, args.threads)
    print(f"trained {state['step']} steps in {state['seconds'] / 60:.1f} min -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
