"""Quality metrics, per item (each returns a tensor of shape (B,), or (B, K) per stem).

The core's generic metrics (registered by its built-in plugin through ``register_metrics``);
:func:`compute` finds every metric, the plugins' included, through the plugin manager.
Signals are in pnpkit's range [-1, 1] (a dynamic range of 2). PSNR is computed here (it is
logged at every iteration and must stay cheap); SSIM is deepinv's, SI-SNR torchmetrics'.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

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


def get(name: str) -> Callable[..., Tensor]:
    """The metric function registered as ``name`` (bare or ``plugin:name``).

    Metrics come from the ``register_metrics`` hook: the core's built-in plugin registers the
    generic ones above, plugins their own (``psnr_pr`` / ``ssim_pr``: pnpkit-operators,
    ``si_snri_msdm``: pnpkit-msdm).

    :raises ValueError: for a name no loaded plugin registers (the closest one suggested), or a
        bare name two plugins register (the qualified names listed).
    """
    from .plugins import PluginError, get_manager, suggest

    manager = get_manager()
    try:
        return manager.get("metric", name).factory
    except PluginError as exc:
        names = manager.names("metric")
        if name not in manager.registries["metric"].claims and name not in names:
            raise ValueError(f"unknown metric {name!r}.{suggest(name, names)} Available: "
                             f"{', '.join(names)}. `pnpkit plugins` shows what registers "
                             f"them") from None
        raise ValueError(str(exc)) from None


def compute(names: list[str], x: Tensor, ref: Tensor, *, sample_rate: int | None = None,
            channel_names: list[str] | None = None) -> dict[str, list[float]]:
    """Named metrics of ``x`` against ``ref``: ``{name: [value per item]}``.

    ``names`` are registered metrics (:func:`get`). ``sample_rate`` goes to the metrics that
    take one (``si_snri_msdm``); naming such a metric without it is an error. A per-stem
    metric, (B, K), gives its mean over the stems
    (NaN stems left out) under ``name`` and each stem under ``name/<channel name>``
    (``channel_names``, one per channel) or ``name/<k>``.
    """
    out = {}
    for name in names:
        fn = get(name)
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
