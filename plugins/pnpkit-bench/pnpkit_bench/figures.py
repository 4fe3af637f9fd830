"""The figure of one ``pnpkit run`` item: measurement / result / reference panels (images or
spectrograms) and the convergence plot; drawn through the ``render_item`` hook.

Every figure is a :class:`matplotlib.figure.Figure` saved straight to its file: nothing here
imports :mod:`matplotlib.pyplot` or calls ``matplotlib.use``, so drawing a figure leaves the
caller's backend (a notebook's inline plots, say) as it was.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from pnpkit.data import image_array, is_image_like

__all__ = ["METRIC_LABELS", "draw_run_figure", "metric_label", "run_figure", "show_image"]

#: Axis labels of the metrics pnpkit and its plugins register; a per-stem column
#: ``name/<stem>`` is labelled ``"<label>, <stem>"``. Unknown names are shown as they are.
METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "psnr_pr": "PSNR up to sign and rotation (dB)",
    "ssim": "SSIM",
    "ssim_pr": "SSIM up to sign and rotation",
    "si_snr": "SI-SNR (dB)",
    "si_snri": "SI-SNRi (dB)",
    "si_snri_msdm": "SI-SNRi, MSDM protocol (dB)",
    "mse": "MSE",
}


def metric_label(name: str) -> str:
    """A metric column's axis label, with its unit.

    >>> metric_label("psnr"), metric_label("si_snri_msdm/bass"), metric_label("lpips")
    ('PSNR (dB)', 'SI-SNRi, MSDM protocol (dB), bass', 'lpips')
    """
    base, _, stem = name.partition("/")
    label = METRIC_LABELS.get(base, base)
    return f"{label}, {stem}" if stem else label


def _figure(width: float, height: float) -> Any:
    """A figure with constrained layout (titles, labels and colour bars never overlap)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


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


def _as_wav(t: Tensor) -> Tensor:
    return t.detach().cpu().float().reshape(-1, t.shape[-1])


def _show_spectrogram(ax: Any, t: Tensor, title: str, sample_rate: int | None, vmax: float) -> Any:
    """Draw ``t``'s spectrogram from ``vmax - 80`` to ``vmax`` dB; return the image (colour bar)."""
    wav = _as_wav(t)
    db = _spectrogram_db(wav)
    img = db.reshape(-1, db.shape[-1]).numpy()  # channels stacked vertically
    extent = None  # without a sample rate: bins and frames, no axes
    if sample_rate:
        extent = (0, wav.shape[-1] / sample_rate, 0, sample_rate / 2 * wav.shape[0] / 1000)
    im = ax.imshow(img, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax,
                   extent=extent)
    suffix = f" ({wav.shape[0]} channels stacked)" if wav.shape[0] > 1 else ""
    ax.set_title(textwrap.fill(f"{title}{suffix}", 48), fontsize=8)
    if extent is not None:
        ax.set_xlabel("seconds", fontsize=7)
        ax.set_ylabel("kHz", fontsize=7)
        ax.tick_params(which="both", labelsize=6)
    else:
        ax.set_yticks([])
    return im


def _top_db(signals: list[Tensor]) -> float:
    """The loudest bin of all ``signals``: one colour scale for every spectrogram of a figure."""
    return max(float(_spectrogram_db(_as_wav(s)).max()) for s in signals)


def _quality_key(history: list[dict[str, Any]], kind: str) -> tuple[str, str] | None:
    """The quality trace a history has for this kind of signal: (record key, axis label).

    Audio is scored by SI-SNR, which the solvers' history logs for (B, C, T) signals against a
    reference (:class:`pnpkit.solvers.SolveContext`); images by PSNR. An audio history without
    ``si_snr`` (a solver that logs its own records) gets no quality axis rather than a PSNR one
    the run's metrics never use.
    """
    keys = [("si_snr", "SI-SNR (dB)")] if kind == "audio" else [("psnr", "PSNR (dB)")]
    for key, label in keys:
        if history and all(key in h for h in history):
            return key, label
    return None


def _plot_history(ax: Any, history: list[dict[str, Any]], kind: str = "image") -> None:
    """Residual (and the quality against the reference) per iteration, one line per logged stage
    (e.g. data / iterate) and, for audio solved window by window, per window."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    stages = list(dict.fromkeys(h["stage"] for h in history))
    windows = list(dict.fromkeys(h.get("window", 0) for h in history))
    quality = _quality_key(history, kind)
    ax2 = ax.twinx() if quality else None
    handles, labels = [], []
    for i, stage in enumerate(stages):
        style = "-" if i == 0 else "--"
        for w in windows:
            recs = [h for h in history if h["stage"] == stage and h.get("window", 0) == w]
            if not recs:
                continue
            its = [h["iteration"] for h in recs]
            marker = "o" if len(recs) == 1 else None  # a single record is a point, not a line
            ax.semilogy(its, np.maximum([h["residual"] for h in recs], 1e-12), style,
                        color="tab:blue", lw=1, marker=marker, ms=4)
            if ax2 is not None and quality is not None:
                ax2.plot(its, [h[quality[0]] for h in recs], style, color="tab:red", lw=1,
                         marker=marker, ms=4)
        suffix = f" ({stage})" if len(stages) > 1 else ""
        handles.append(Line2D([], [], color="tab:blue", ls=style, lw=1))
        labels.append(f"residual{suffix}")
        if quality is not None:
            handles.append(Line2D([], [], color="tab:red", ls=style, lw=1))
            labels.append(f"{quality[1].split(' (')[0]}{suffix}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration" + (f" (each of {len(windows)} windows)" if len(windows) > 1 else ""),
                  fontsize=8)
    ax.set_ylabel("||Ax - y|| / ||y||", color="tab:blue", fontsize=8)
    ax.tick_params(which="both", labelsize=7)
    if ax2 is not None and quality is not None:
        ax2.set_ylabel(quality[1], color="tab:red", fontsize=8)
        ax2.tick_params(which="both", labelsize=7)
    if len(labels) > 1:  # under the plot, where it covers no line
        ax.legend(handles, labels, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22),
                  ncol=2, frameon=False)
    ax.set_title("convergence", fontsize=9)


def _titles(title: str | list[str], channels: int) -> list[str]:
    """One title per channel: a list is per channel already; a string is every channel's."""
    if isinstance(title, str):
        return [title] * channels
    if len(title) != channels:
        raise ValueError(f"a panel with {channels} channels has {len(title)} titles; "
                         "give one title per channel or a single string")
    return list(title)


def run_figure(path: Path, panels: list[tuple[Any, Tensor]], history: list[dict[str, Any]],
               kind: str, sample_rate: int | None = None,
               channel_names: list[str] | None = None) -> Path:
    """Save :func:`draw_run_figure`'s figure to ``path`` (PNG; 110 dpi, 100 for separated sources).

    :return: ``path``.
    """
    fig = draw_run_figure(panels, history, kind, sample_rate, channel_names)
    fig.savefig(path, dpi=100 if _is_sources(panels, kind) else 110)
    return path


def _is_sources(panels: list[tuple[Any, Tensor]], kind: str) -> bool:
    return kind == "audio" and any(s.shape[0] > 1 for _, s in panels)


def draw_run_figure(panels: list[tuple[Any, Tensor]], history: list[dict[str, Any]], kind: str,
                    sample_rate: int | None = None, channel_names: list[str] | None = None) -> Any:
    """A row of panels (images or spectrograms) with a convergence plot beside them.

    Multi-channel audio (separated sources) gets a grid instead: the single-channel panels
    (the mixture) and the convergence plot on the first row, then one row per channel with
    a column per multi-channel panel (estimate, reference, ...). Every spectrogram of a
    figure is on one dB scale, shown by its colour bar.

    :param panels: ``(title, signal)`` pairs, each signal (C, *spatial) in [-1, 1]; image
        panels that cannot be shown as a picture (complex, other channel counts) are left out.
        A multi-channel audio panel's title may be a list, one per channel (each stem's own
        scores); a string titles every channel's row.
    :param history: the solver's ``Result.history`` (``stage``, ``iteration``, ``residual``
        and, when a reference was given, ``si_snr`` per record for audio, ``psnr`` for images;
        ``window`` for audio solved window by window).
    :param str kind: ``"image"`` or ``"audio"``.
    :param sample_rate: audio's sample rate (the spectrograms' axes), or None.
    :param channel_names: audio's stem names, one per channel, or None.
    :return: a :class:`matplotlib.figure.Figure` (no pyplot: the caller's backend is untouched).
    """
    if _is_sources(panels, kind):
        return _sources_figure(panels, history, sample_rate, channel_names)
    shown = [(t, s) for t, s in panels if kind == "audio" or is_image_like(s)]
    fig = _figure(2.7 * (len(shown) + 1) + (1.4 if kind == "audio" else 0.9), 3.0)
    axes = fig.subplots(1, len(shown) + 1, squeeze=False)[0]
    if kind == "audio":
        top = _top_db([s for _, s in shown]) if shown else 0.0
        ims = [_show_spectrogram(ax, sig, _titles(title, 1)[0], sample_rate, top)
               for ax, (title, sig) in zip(axes, shown, strict=False)]
        if ims:
            fig.colorbar(ims[0], ax=list(axes[:len(shown)]), label="dB", shrink=0.9, pad=0.01)
    else:
        for ax, (title, sig) in zip(axes, shown, strict=False):  # the last axes: convergence
            show_image(ax, sig, _titles(title, 1)[0])
    _plot_history(axes[-1], history, kind)
    return fig


def _sources_figure(panels: list[tuple[Any, Tensor]], history: list[dict[str, Any]],
                    sample_rate: int | None, channel_names: list[str] | None) -> Any:
    single = [(t, s) for t, s in panels if s.shape[0] == 1]
    multi = [(t, s) for t, s in panels if s.shape[0] > 1]
    channels = multi[0][1].shape[0]
    names = list(channel_names or [f"channel {c}" for c in range(channels)])
    cols = max(len(multi), len(single) + 1)
    top = _top_db([s for _, s in panels])
    fig = _figure(3.5 * cols + 1.0, 2.3 * (1 + channels))
    axes = fig.subplots(1 + channels, cols, squeeze=False)
    spectrograms, ims = [], []
    for ax, (title, sig) in zip(axes[0], single, strict=False):
        ims.append(_show_spectrogram(ax, sig, _titles(title, 1)[0], sample_rate, top))
        spectrograms.append(ax)
    _plot_history(axes[0][len(single)], history, "audio")
    for ax in axes[0][len(single) + 1:]:
        ax.axis("off")
    for j, (title, sig) in enumerate(multi):
        for c, stem_title in enumerate(_titles(title, sig.shape[0])[:channels]):
            ax = axes[1 + c][j]
            ims.append(_show_spectrogram(ax, sig[c:c + 1], f"{names[c]}: {stem_title}",
                                         sample_rate, top))
            spectrograms.append(ax)
    for c in range(channels):
        for ax in axes[1 + c][len(multi):]:
            ax.axis("off")
    fig.colorbar(ims[0], ax=spectrograms, label="dB", shrink=0.5, pad=0.01, aspect=40)
    return fig
