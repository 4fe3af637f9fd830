"""Quality metrics, per item (each returns a tensor of shape (B,), or (B, K) per stem).

Signals are in pnpkit's range [-1, 1] (a dynamic range of 2). PSNR is computed here (it is
logged at every iteration and must stay cheap); SSIM is deepinv's, SI-SNR torchmetrics'.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import torch
from torch import Tensor

DATA_RANGE = 2.0


def _check(x: Tensor, ref: Tensor) -> None:
    if x.shape != ref.shape:
        raise ValueError(f"estimate shape {tuple(x.shape)} differs from reference shape "
                         f"{tuple(ref.shape)}")


def psnr(x: Tensor, ref: Tensor, data_range: float = DATA_RANGE) -> Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``, per item."""
    _check(x, ref)
    mse = (x.detach() - ref).flatten(1).pow(2).mean(1).clamp_min(1e-20)
    return 10 * torch.log10(data_range**2 / mse)


def ssim(x: Tensor, ref: Tensor) -> Tensor:
    """Structural similarity (deepinv's SSIM on images mapped to [0, 1]), per item."""
    _check(x, ref)
    if x.dim() != 4:
        raise ValueError(f"SSIM needs images (B, C, H, W), got shape {tuple(x.shape)}")
    from deepinv.loss.metric import SSIM

    # Small images cannot hold the default 11-pixel window four scales deep.
    return SSIM(max_pixel=1.0)(((x.detach() + 1) / 2).clamp(0, 1).float(),
                               ((ref + 1) / 2).clamp(0, 1).float()).view(-1)


def si_snr(x: Tensor, ref: Tensor) -> Tensor:
    """Scale-invariant SNR in dB over the last axis, averaged over channels, per item."""
    _check(x, ref)
    from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

    return scale_invariant_signal_noise_ratio(x.detach().float(), ref.float()).flatten(1).mean(1)


def si_snri(x: Tensor, ref: Tensor) -> Tensor:
    """SI-SNR improvement of separated sources (channels) over the mixture, per item.

    The mixture is the sum of the reference channels (y = sum of the sources):
    ``SI-SNR(x_k, s_k) - SI-SNR(sum_j s_j, s_k)``, averaged over sources k.
    """
    _check(x, ref)
    mixture = ref.sum(1, keepdim=True).expand_as(ref)
    return si_snr(x, ref) - si_snr(mixture, ref)


def mse(x: Tensor, ref: Tensor) -> Tensor:
    """Mean squared error, per item."""
    _check(x, ref)
    return (x.detach() - ref).flatten(1).pow(2).mean(1)


def phase_retrieval_twin(x: Tensor, ref: Tensor) -> Tensor:
    """``x`` up to the trivial ambiguities of Fourier phase retrieval, aligned to ``ref``.

    ``|F(P x)|`` (the operator ``phase-retrieval``, centred zero padding) is the same for
    ``x``, ``-x`` and their rotations by 180 degrees over the spatial axes (the conjugate
    reflection), so no method can tell them apart from the measurement. Per item, the one of
    the four closest to ``ref`` (least squared error) is returned.
    """
    _check(x, ref)
    x = x.detach()
    spatial = tuple(range(2, x.dim()))
    flipped = torch.flip(x, dims=spatial)
    candidates = torch.stack([x, -x, flipped, -flipped])              # (4, B, ...)
    err = (candidates - ref).flatten(2).pow(2).mean(2)                 # (4, B)
    best = err.argmin(0)
    return candidates[best, torch.arange(x.shape[0])]


def psnr_pr(x: Tensor, ref: Tensor) -> Tensor:
    """PSNR up to phase retrieval's trivial ambiguities (:func:`phase_retrieval_twin`), per item."""
    return psnr(phase_retrieval_twin(x, ref), ref)


def ssim_pr(x: Tensor, ref: Tensor) -> Tensor:
    """SSIM of the :func:`phase_retrieval_twin` of ``x`` (the one :func:`psnr_pr` scores), per item."""
    return ssim(phase_retrieval_twin(x, ref), ref)


#: MSDM's silence threshold on ``||s||_2 / n`` over a window of ``n`` samples.
MSDM_SILENCE = 1.5e-5


def si_snri_windows(x: Tensor, ref: Tensor, sample_rate: int, window_s: float = 4.0,
                    hop_s: float = 2.0, silence_threshold: float = MSDM_SILENCE) -> Tensor:
    """SI-SNR improvement per stem over windows, as MSDM evaluates separation: (B, K).

    ``x`` and ``ref`` are separated and reference sources stacked as channels, (B, K, L);
    the mixture is the sum of the reference sources. The signal is cut into windows of
    ``window_s`` seconds every ``hop_s`` seconds (MSDM: 4 s and 2 s), starting at sample 0;
    there are ``max(1, ceil((L - window + hop) / hop))`` of them, so the last one may be
    shorter than ``window_s``. A reference source is **silent** in a window of ``n`` samples
    when ``||s||_2 / n < silence_threshold`` (MSDM's ``is_silent``, threshold 1.5e-5: for
    4 s at 22050 Hz an RMS below about 4.5e-3, -47 dB re full scale). A window is skipped
    when at most one reference source is non-silent in it. In every kept window, for each
    stem k,

    .. math::

        \\text{SI-SNRi}_k = \\text{SI-SNR}(\\hat x_k, s_k) - \\text{SI-SNR}(\\textstyle\\sum_j s_j, s_k)

    (torchmetrics' SI-SNR, as :func:`si_snr`; it subtracts each signal's mean first, MSDM's
    own does not), and the result is its mean over the kept windows. Every stem of an item
    with no kept window is NaN. A stem silent in a kept window still counts there (as in
    MSDM). MSDM averages over the windows of the whole test set; averaging the per-item
    values weights items equally instead (a pipeline's summary leaves NaN items out).

    :param torch.Tensor x: estimates (B, K, L).
    :param torch.Tensor ref: reference sources (B, K, L).
    :param int sample_rate: samples per second.
    :param float window_s: window length in seconds.
    :param float hop_s: hop between window starts in seconds (``0 < hop <= window``).
    :param float silence_threshold: silence threshold on ``||s||_2 / n``.

    >>> t = torch.linspace(0, 1, 400)
    >>> ref = torch.stack([torch.sin(40 * t), torch.sign(torch.sin(13 * t))])[None]
    >>> si_snri_windows(ref, ref, sample_rate=100).shape        # 4 s windows every 2 s: 1 kept
    torch.Size([1, 2])
    """
    _check(x, ref)
    if x.dim() != 3:
        raise ValueError(f"si_snri_windows needs sources stacked as channels (B, K, L), "
                         f"got shape {tuple(x.shape)}")
    from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio as sisnr

    window, hop = int(round(window_s * sample_rate)), int(round(hop_s * sample_rate))
    if not 0 < hop <= window:
        raise ValueError(f"need 0 < hop <= window, got {hop} and {window} samples "
                         f"(window_s={window_s}, hop_s={hop_s}, sample_rate={sample_rate})")
    length = x.shape[-1]
    count = max(1, math.ceil((length - window + hop) / hop))
    est, src = x.detach().float(), ref.detach().float()
    mix = src.sum(1, keepdim=True).expand_as(src)
    total = torch.zeros(x.shape[:2], dtype=torch.float64, device=x.device)
    kept = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for i in range(count):
        sl = slice(i * hop, min(i * hop + window, length))
        s = src[..., sl]
        active = (s.norm(dim=-1) / s.shape[-1] >= silence_threshold).sum(1)  # (B,)
        keep = active > 1
        gain = sisnr(est[..., sl], s) - sisnr(mix[..., sl], s)  # (B, K)
        total += torch.where(keep[:, None], gain.double(), 0.0)
        kept += keep
    return torch.where(kept[:, None] > 0, total / kept.clamp_min(1)[:, None],
                       torch.full_like(total, math.nan)).to(torch.float32)


def si_snri_msdm(x: Tensor, ref: Tensor, sample_rate: int) -> Tensor:
    """Per-stem SI-SNRi by the MSDM protocol, (B, K): :func:`si_snri_windows` with its defaults."""
    return si_snri_windows(x, ref, sample_rate)


#: Metrics a pipeline may name: ``fn(estimate, reference) -> (B,)``, or ``(B, K)`` per stem;
#: those with a ``sample_rate`` parameter get the item's sample rate.
METRICS: dict[str, Callable[..., Tensor]] = {
    "psnr": psnr, "ssim": ssim, "si_snr": si_snr, "si_snri": si_snri, "mse": mse,
    "si_snri_msdm": si_snri_msdm, "psnr_pr": psnr_pr, "ssim_pr": ssim_pr,
}


def compute(names: list[str], x: Tensor, ref: Tensor, *, sample_rate: int | None = None,
            channel_names: list[str] | None = None) -> dict[str, list[float]]:
    """Named metrics of ``x`` against ``ref``: ``{name: [value per item]}``.

    ``sample_rate`` goes to the metrics that take one (``si_snri_msdm``); naming such a
    metric without it is an error. A per-stem metric, (B, K), gives its mean over the stems
    (NaN stems left out) under ``name`` and each stem under ``name/<channel name>``
    (``channel_names``, one per channel) or ``name/<k>``.
    """
    from .plugins import suggest

    out = {}
    for name in names:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}.{suggest(name, METRICS)} "
                             f"Available: {', '.join(METRICS)}")
        fn = METRICS[name]
        kwargs = {}
        if "sample_rate" in inspect.signature(fn).parameters:
            if sample_rate is None:
                raise ValueError(f"metric {name!r} needs the sample rate of the signals "
                                 f"(audio items carry it)")
            kwargs["sample_rate"] = sample_rate
        values = fn(x, ref, **kwargs)
        if values.dim() == 2:
            labels = (list(channel_names) if channel_names is not None
                      and len(channel_names) == values.shape[1] else range(values.shape[1]))
            out[name] = [float(v) for v in values.nanmean(1)]
            for k, label in enumerate(labels):
                out[f"{name}/{label}"] = [float(v) for v in values[:, k]]
        else:
            out[name] = [float(v) for v in values]
    return out
