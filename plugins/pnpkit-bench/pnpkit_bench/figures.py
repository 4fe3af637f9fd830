"""The figure of one ``pnpkit run`` item: measurement / result / reference panels (images or
spectrograms) and the convergence plot; drawn through the ``render_item`` hook."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from pnpkit.data import image_array, is_image_like

__all__ = ["run_figure", "show_image"]


def show_image(ax: Any, t: Tensor, title: str | None = None) -> None:
    """Draw a (C, H, W) image in [-1, 1] on ``ax`` exactly as its PNG is saved, axes off.

    :param ax: a matplotlib axes.
    :param torch.Tensor t: one or three channels.
    :param title: the panel's title (9 pt), or None to leave the title alone.
    """
    img = image_array(t)
    if img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")
    if title is not None:
        # a measured item's title lists the residual and discrepancy too: wrapped, it stays
        # over its own panel instead of running into the next one
        ax.set_title(textwrap.fill(title, 38), fontsize=9)
    ax.axis("off")


def _spectrogram_db(wav: Tensor) -> Tensor:
    """(C, frequencies, frames) magnitude spectrogram in dB (512-point STFT, hop 128)."""
    import torch

    n_fft = 512
    spec = torch.stft(wav, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft),
                      return_complex=True).abs()
    return 20 * torch.log10(spec.clamp_min(1e-5))


def _show_spectrogram(ax: Any, t: Tensor, title: str, sample_rate: int | None,
                      vmax: float | None = None) -> None:
    wav = t.detach().cpu().float().reshape(-1, t.shape[-1])
    db = _spectrogram_db(wav)
    img = db.reshape(-1, db.shape[-1]).numpy()  # channels stacked vertically
    top = float(db.max()) if vmax is None else vmax
    extent = None  # without a sample rate: bins and frames, no axes
    if sample_rate:
        extent = (0, wav.shape[-1] / sample_rate, 0, sample_rate / 2 * wav.shape[0] / 1000)
    ax.imshow(img, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
              extent=extent)
    suffix = f" ({wav.shape[0]} channels stacked)" if wav.shape[0] > 1 else ""
    ax.set_title(f"{title}{suffix}", fontsize=8)
    if extent is not None:
        ax.set_xlabel("seconds", fontsize=7)
        ax.set_ylabel("kHz", fontsize=7)
        ax.tick_params(labelsize=6)
    else:
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
               kind: str, sample_rate: int | None = None,
               channel_names: list[str] | None = None) -> Path:
    """Save a row of panels (images or spectrograms) with a convergence plot beside them.

    Multi-channel audio (separated sources) gets a grid instead: the single-channel panels
    (the mixture) and the convergence plot on the first row, then one row per channel with
    a column per multi-channel panel (estimate, reference, ...), on one colour scale.

    :param pathlib.Path path: the PNG to write.
    :param panels: ``(title, signal)`` pairs, each signal (C, *spatial) in [-1, 1]; image
        panels that cannot be shown as a picture (complex, other channel counts) are left out.
    :param history: the solver's ``Result.history`` (``stage``, ``iteration``, ``residual``
        and, when a reference was given, ``psnr`` per record).
    :param str kind: ``"image"`` or ``"audio"``.
    :param sample_rate: audio's sample rate (the spectrograms' axes), or None.
    :param channel_names: audio's stem names, one per channel, or None.
    :return: ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if kind == "audio" and any(s.shape[0] > 1 for _, s in panels):
        return _sources_figure(path, panels, history, sample_rate, channel_names)
    shown = [(t, s) for t, s in panels if kind == "audio" or is_image_like(s)]
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(2.6 * (len(shown) + 1) + 0.8, 2.9),
                             squeeze=False)
    for ax, (title, sig) in zip(axes[0], shown, strict=False):  # the last axes: convergence
        if kind == "audio":
            _show_spectrogram(ax, sig, title, sample_rate)
        else:
            show_image(ax, sig, title)
    _plot_history(axes[0][-1], history)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sources_figure(path: Path, panels: list[tuple[str, Tensor]], history: list[dict[str, Any]],
                    sample_rate: int | None, channel_names: list[str] | None) -> Path:
    import matplotlib.pyplot as plt

    single = [(t, s) for t, s in panels if s.shape[0] == 1]
    multi = [(t, s) for t, s in panels if s.shape[0] > 1]
    channels = multi[0][1].shape[0]
    names = list(channel_names or [f"channel {c}" for c in range(channels)])
    cols = max(len(multi), len(single) + 1)
    top = max(float(_spectrogram_db(s.detach().cpu().float().reshape(-1, s.shape[-1])).max())
              for _, s in panels)
    fig, axes = plt.subplots(1 + channels, cols, figsize=(3.4 * cols, 2.2 * (1 + channels)),
                             squeeze=False)
    for ax, (title, sig) in zip(axes[0], single, strict=False):
        _show_spectrogram(ax, sig, title, sample_rate, vmax=top)
    _plot_history(axes[0][len(single)], history)
    for ax in axes[0][len(single) + 1:]:
        ax.axis("off")
    for c in range(channels):
        for j, (title, sig) in enumerate(multi):
            _show_spectrogram(axes[1 + c][j], sig[c:c + 1], f"{names[c]}: {title}", sample_rate,
                              vmax=top)
        for ax in axes[1 + c][len(multi):]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
