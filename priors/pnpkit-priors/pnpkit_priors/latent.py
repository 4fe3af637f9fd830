"""Latent diffusion priors: a diffusers autoencoder and a diffusion model of its latents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .diffusion import DiffusersPrior
from .loading import find_parts, load_pretrained, loading_docs, resolve


class LatentDiffusionPrior(DiffusersPrior):
    r"""A diffusion prior on the latents of a diffusers ``AutoencoderKL`` or ``VQModel``.

    The diffusion interface (``eps``, ``x0``, ``noise``, ``ddim``, ``denoise``) works on latents
    :math:`z = s\,E(x)`, where :math:`s` is the autoencoder's ``scaling_factor``;
    :meth:`encode` and :meth:`decode` go between signals in [-1, 1] and latents, so a latent
    solver can write its data term as :math:`\|A\,\mathrm{decode}(z) - y\|^2`. Both are
    differentiable. Only the network's evaluations count in :attr:`nfe`.

    :param torch.nn.Module unet: the latent network (``UNet2DModel``).
    :param scheduler: its diffusers scheduler.
    :param torch.nn.Module vae: the autoencoder (``AutoencoderKL`` or ``VQModel``).
    :param float scaling_factor: latent scale (default: the autoencoder's ``scaling_factor``).
    :param str name: the prior's name in messages.
    :param bool check_size: whether latents must have the network's ``sample_size``.
    :param int class_label: the class to condition a class-conditional network on.
    :param bool channels_last: run the latent network channels-last (converts ``unet`` in place;
        see :func:`~pnpkit_priors.network.to_channels_last`). Off here, on in :meth:`from_pretrained`.
    """

    what = "latents"

    def __init__(self, unet: torch.nn.Module, scheduler: Any, vae: torch.nn.Module,
                 scaling_factor: float | None = None, name: str = "latent-diffusion",
                 check_size: bool = True, class_label: int | None = None,
                 channels_last: bool = False) -> None:
        super().__init__(unet, scheduler, name=name, clip=None, check_size=check_size,
                         class_label=class_label, channels_last=channels_last)
        self.vae = vae
        if scaling_factor is None:
            scaling_factor = vae.config.get("scaling_factor") or 1.0
        self.scaling_factor = float(scaling_factor)
        self.is_vq = type(vae).__name__ == "VQModel"

    @property
    def fixed_shape(self) -> tuple[int, ...] | None:
        """The signals' spatial shape when latents are checked against the network's size, else
        ``None``: the latent ``sample_size`` times the autoencoder's down-sampling factor."""
        latent = self.net.fixed_shape
        if latent is None:
            return None
        scale = 2 ** (len(self.vae.config.get("block_out_channels") or [0]) - 1)
        return tuple(s * scale for s in latent)

    def check_memory(self, shape: tuple[int, ...], grad: bool | None = None) -> None:
        """Raise ``MemoryError`` when one call of the latent network on the latents of signals
        of ``shape`` cannot fit (see :class:`~pnpkit_priors.diffusion.MemoryCheck`; the
        autoencoder is not counted). Each network call checks its own latents too.

        :param tuple shape: the signals' (B, C, H, W); their latents are the autoencoder's
            down-sampling smaller.
        :param bool grad: whether the call keeps its activations for a backward pass.
        """
        f = 2 ** (len(self.vae.config.get("block_out_channels") or [0]) - 1)
        latents = (shape[0], int(self.net.shape[0]), *(-(-int(s) // f) for s in shape[2:]))
        super().check_memory(latents, grad)

    def _vae_in(self, x: Tensor) -> Tensor:
        p = next(self.vae.parameters())
        return x.to(device=p.device, dtype=p.dtype)

    def encode(self, x: Tensor) -> Tensor:
        """Latents of signals: the autoencoder's mean (or VQ pre-quantisation) code times the scale.

        :param torch.Tensor x: signals (B, C, H, W) in [-1, 1].
        :return: latents (B, latent_channels, h, w), in ``x``'s dtype and device.
        """
        with self.autocast(x):  # the prior's precision (none: the weights' dtype)
            out = self.vae.encode(self._vae_in(x))
            z = out.latents if self.is_vq else out.latent_dist.mode()
        return (z * self.scaling_factor).to(device=x.device, dtype=x.dtype)

    def decode(self, z: Tensor) -> Tensor:
        """Signals of latents (the inverse scaling, then the autoencoder's decoder).

        :param torch.Tensor z: latents (B, latent_channels, h, w).
        :return: signals (B, C, H, W), roughly in [-1, 1], in ``z``'s dtype and device.
        """
        with self.autocast(z):
            x = self.vae.decode(self._vae_in(z / self.scaling_factor)).sample
        return x.to(device=z.device, dtype=z.dtype)

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, device: str | torch.device = "cpu",
                        dtype: str = "float32", *, check_size: bool = True,
                        class_label: int | None = None, scaling_factor: float | None = None,
                        name: str | None = None, channels_last: bool = True,
                        **load: Any) -> LatentDiffusionPrior:
        """Load a folder with ``vae/`` (or ``vqvae/``), ``unet/`` and ``scheduler/``, offline.

        :param str path_or_id: a saved diffusers pipeline or a folder with the three parts, or a
            hub id in the local Hugging Face cache.
        :param str device: where the networks run.
        :param str dtype: the dtype of signals and latents; the networks run in it unless
            ``model_dtype`` says otherwise.
        :param bool check_size: whether latents must have the network's ``sample_size``.
        :param int class_label: the class of a class-conditional network.
        :param float scaling_factor: latent scale (default: the autoencoder's).
        :param str name: the prior's name in messages.
        :param bool channels_last: run the latent network channels-last (the default).
        :param load: the loading options of :func:`pnpkit_priors.loading.load_pretrained`
            (``scheduler``, ``model_dtype``, ``variant`` (of the latent network), ``cache_dir``,
            ``revision``).
        """
        load.setdefault("unet_classes", cls.unet_classes)
        _refuse_text_conditional(path_or_id, load)
        parts = load_pretrained(path_or_id, device, dtype, name=name, need_vae=True, **load)
        return cls(parts.unet, parts.scheduler, parts.vae, scaling_factor=scaling_factor,
                   name=parts.name, check_size=check_size, class_label=class_label,
                   channels_last=channels_last)


def _refuse_text_conditional(path_or_id: str | Path, load: dict[str, Any]) -> None:
    """One line for a text-to-image checkpoint (Stable Diffusion's ``UNet2DConditionModel``)."""
    try:
        root = resolve(path_or_id, cache_dir=load.get("cache_dir"), revision=load.get("revision"))
        unet = find_parts(root, scheduler=load.get("scheduler"), variant=load.get("variant")).unet
        kind = json.loads((unet / "config.json").read_text()).get("_class_name")
    except (OSError, ValueError):
        return  # load_pretrained says what is wrong with the folder
    if kind == "UNet2DConditionModel":
        raise ValueError(f"{root.name}: unet/ holds a UNet2DConditionModel, a text-conditional "
                         "network (Stable Diffusion's): the latent-diffusion prior runs "
                         "unconditional UNet2DModel networks on the autoencoder's latents (as the "
                         "CelebA-HQ LDM's, CompVis/ldm-celebahq-256); pnpkit has no text conditioning")


@loading_docs
def latent_diffusion_prior(path: str, scheduler: str | None = None, model_dtype: str | None = None,
                           variant: str | None = None, check_size: bool = True,
                           class_label: int | None = None, scaling_factor: float | None = None,
                           cache_dir: str | None = None, channels_last: bool = True,
                           device: str = "cpu", dtype: str = "float32") -> LatentDiffusionPrior:
    """A latent diffusion prior: a diffusers ``AutoencoderKL``/``VQModel`` and a latent ``UNet2DModel``.

    Its diffusion interface works on latents; ``encode``/``decode`` map signals to latents and
    back (``check_size`` and ``variant`` are about the latent network; ``model_dtype`` is the
    dtype of both networks).

    :param str path: a folder with ``vae/`` (or ``vqvae/``), ``unet/`` and ``scheduler/`` (or a
        saved pipeline), or a hub id in the local Hugging Face cache (nothing is downloaded).
    :param float scaling_factor: latent scale (default: the autoencoder's ``scaling_factor``).
    {loading}
    """
    return LatentDiffusionPrior.from_pretrained(
        path, device=device, dtype=dtype, scheduler=scheduler, model_dtype=model_dtype,
        variant=variant, check_size=check_size, class_label=class_label,
        scaling_factor=scaling_factor, cache_dir=cache_dir, channels_last=channels_last)
