"""Quality metrics, per item (each returns a tensor of shape (B,)).

Signals are in pnpkit's range [-1, 1] (a dynamic range of 2). PSNR is computed here (it is
logged at every iteration and must stay cheap); SSIM is deepinv's, SI-SNR torchmetrics'.
"""

from __future__ import annotations

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


#: Metrics a pipeline may name: ``fn(estimate, reference) -> (B,)``.
METRICS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "psnr": psnr, "ssim": ssim, "si_snr": si_snr, "si_snri": si_snri, "mse": mse,
}


def compute(names: list[str], x: Tensor, ref: Tensor) -> dict[str, list[float]]:
    """Named metrics of ``x`` against ``ref``: ``{name: [value per item]}``."""
    from .plugins import suggest

    out = {}
    for name in names:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}.{suggest(name, METRICS)} "
                             f"Available: {', '.join(METRICS)}")
        out[name] = [float(v) for v in METRICS[name](x, ref)]
    return out
