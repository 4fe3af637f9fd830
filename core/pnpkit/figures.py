"""Pictures of a run: measurement / result / reference panels and the convergence plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from .data import is_image_like


def _show_image(ax: Any, t: Tensor, title: str) -> None:
    arr = np.clip((t.detach().cpu().float().numpy() + 1) / 2, 0, 1)
    if arr.shape[0] == 1:
        ax.imshow(arr[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.moveaxis(arr, 0, -1), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _show_spectrogram(ax: Any, t: Tensor, title: str, sample_rate: int | None) -> None:
    import torch

    wav = t.detach().cpu().float().reshape(-1, t.shape[-1])
    n_fft = 512
    spec = torch.stft(wav, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft),
                      return_complex=True).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-5))
    img = torch.cat(list(db), dim=0).numpy()  # channels stacked vertically
    ax.imshow(img, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=db.max().item())
    ax.set_title(f"{title} ({wav.shape[0]} channel{'s' * (wav.shape[0] > 1)} stacked)", fontsize=9)
    ax.set_xlabel(f"frames (hop {n_fft // 4} @ {sample_rate or '?'} Hz)", fontsize=7)
    ax.set_yticks([])


def _plot_history(ax: Any, history: list[dict[str, Any]]) -> None:
    """Residual (and PSNR) per iteration, one line per logged stage (e.g. data / iterate)."""
    stages = list(dict.fromkeys(h["stage"] for h in history))
    ax2 = ax.twinx() if history and "psnr" in history[0] else None
    for i, stage in enumerate(stages):
        recs = [h for h in history if h["stage"] == stage]
        its = [h["iteration"] for h in recs]
        style = "-" if i == 0 else "--"
        ax.semilogy(its, np.maximum([h["residual"] for h in recs], 1e-12), style,
                    color="tab:blue", lw=1, label=f"residual ({stage})")
        if ax2 is not None:
            ax2.plot(its, [h["psnr"] for h in recs], style, color="tab:red", lw=1,
                     label=f"PSNR ({stage})")
    ax.set_xlabel("iteration", fontsize=8)
    ax.set_ylabel("||Ax - y|| / ||y||", color="tab:blue", fontsize=8)
    if ax2 is not None:
        ax2.set_ylabel("PSNR (dB)", color="tab:red", fontsize=8)
    if len(stages) > 1:
        ax.legend(fontsize=6, loc="lower left")
    ax.set_title("convergence", fontsize=9)


def run_figure(path: Path, panels: list[tuple[str, Tensor]], history: list[dict[str, Any]],
               kind: str, sample_rate: int | None = None) -> Path:
    """Save a row of panels (images or spectrograms) with a convergence plot beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [(t, s) for t, s in panels if kind == "audio" or is_image_like(s)]
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(2.6 * (len(shown) + 1) + 0.8, 2.9),
                             squeeze=False)
    for ax, (title, sig) in zip(axes[0], shown):
        if kind == "audio":
            _show_spectrogram(ax, sig, title, sample_rate)
        else:
            _show_image(ax, sig, title)
    _plot_history(axes[0][-1], history)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
