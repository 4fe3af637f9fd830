"""Pixel-space diffusion priors from diffusers checkpoints (``UNet2DModel`` / ``UNet1DModel``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pnpkit.priors import DiffusionPrior

from .loading import UNET_CLASSES, load_pretrained, loading_docs
from .network import UNetNetwork


class DiffusersPrior(DiffusionPrior):
    r"""A diffusers denoising network and its variance-preserving schedule as a pnpkit prior.

    The network is a ``UNet2DModel`` (images, (B, C, H, W)) or a ``UNet1DModel`` (audio and
    other 1-D signals, (B, C, L)) trained on data in [-1, 1]; the schedule
    :math:`\bar\alpha_t` and the parametrisation (``"epsilon"``, ``"v_prediction"`` or
    ``"sample"``) come from its diffusers scheduler (``DDPMScheduler``, ``DDIMScheduler`` or
    any other that holds ``alphas_cumprod``). :class:`pnpkit.priors.DiffusionPrior` turns the
    raw output into :math:`\epsilon`, Tweedie estimates, DDIM and denoising, and counts the
    network evaluations.

    Most users load a checkpoint with :meth:`from_pretrained`.

    :param torch.nn.Module unet: the network (``UNet2DModel`` or ``UNet1DModel``).
    :param scheduler: the diffusers scheduler it was trained with.
    :param str name: the prior's name in messages.
    :param float clip: Tweedie estimates are clipped to ``[-clip, clip]`` where solvers ask.
    :param bool check_size: whether signals must have the network's ``sample_size`` (the
        default for a checkpoint: a network with attention at full resolution may not
        generalise to other sizes); ``False`` runs any size, reflect-padded to the next multiple
        of the network's down-sampling factor and cropped back.
    :param int class_label: the class to condition a class-conditional network on.
    """

    what = "signals"
    #: The network's spatial dimensions (``None``: 1 for ``UNet1DModel``, else 2).
    dims: int | None = None
    #: The network classes :meth:`from_pretrained` loads (see :func:`~pnpkit_priors.loading.load_model`).
    unet_classes: tuple[str, ...] | dict[str, type] = UNET_CLASSES

    def __init__(self, unet: torch.nn.Module, scheduler: Any, name: str = "diffusers",
                 clip: float | None = 1.0, check_size: bool = True,
                 class_label: int | None = None) -> None:
        alphas = getattr(scheduler, "alphas_cumprod", None)
        if alphas is None:
            raise ValueError(f"scheduler {type(scheduler).__name__} has no alphas_cumprod: "
                             f"prior {name!r} needs a variance-preserving scheduler such as "
                             "DDPMScheduler or DDIMScheduler (consistency models load with "
                             "ConsistencyPrior)")
        prediction_type = scheduler.config.get("prediction_type", "epsilon")
        super().__init__(torch.as_tensor(alphas), prediction_type=prediction_type, clip=clip)
        self.name = name
        self.unet = unet
        self.scheduler = scheduler
        self.net = UNetNetwork(unet, name, check_size=check_size, class_label=class_label,
                               what=self.what, dims=self.dims)

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The (C, *spatial) shape of the network's training signals."""
        return self.net.shape

    @property
    def fixed_shape(self) -> tuple[int, ...] | None:
        """The network's ``sample_size`` when ``check_size`` holds; ``None`` (any size) otherwise.

        Without the size check a signal of any size runs: it is reflect-padded to the next
        multiple of the network's down-sampling factor and cropped back (see
        :class:`~pnpkit_priors.network.UNetNetwork`).
        """
        return self.net.fixed_shape

    @property
    def num_parameters(self) -> int:
        """The number of parameters of the network."""
        return self.net.num_parameters

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return self.net.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the network's weights."""
        return self.net.dtype

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, shape={self.shape}, "
                f"parameters={self.num_parameters}, dtype={self.dtype}, device={self.device})")

    def network(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Raw network output for ``x_t`` at integer timesteps ``t`` (shape (B,)).

        :param torch.Tensor x_t: noisy signals (B, C, *spatial).
        :param torch.Tensor t: integer timesteps, shape (B,).
        :return: the network's prediction (in its parametrisation), like ``x_t``.
        """
        return self.net(x_t, t)

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, device: str | torch.device = "cpu",
                        dtype: str = "float32", *, check_size: bool = True,
                        class_label: int | None = None, clip: float | None = 1.0,
                        name: str | None = None, **load: Any) -> DiffusersPrior:
        """Load a saved checkpoint, offline.

        :param str path_or_id: a folder (a saved diffusers pipeline, a folder with ``unet/`` and
            ``scheduler/``, or a model folder with a scheduler configuration), or a hub id found
            in the local Hugging Face cache.
        :param str device: where the network runs.
        :param str dtype: the dtype of the signals (``"float32"`` or ``"float64"``); the network
            runs in it unless ``model_dtype`` says otherwise.
        :param bool check_size: whether signals must have the network's ``sample_size``.
        :param int class_label: the class to condition a class-conditional network on.
        :param float clip: Tweedie estimates are clipped to ``[-clip, clip]`` where asked.
        :param str name: the prior's name in messages (default: the folder's name).
        :param load: the loading options of :func:`pnpkit_priors.loading.load_pretrained`
            (``scheduler``, ``model_dtype``, ``variant``, ``cache_dir``, ``revision``).
        :raises FileNotFoundError: for a missing folder or a folder without the expected files.
        :raises ValueError: for a model class other than ``UNet2DModel`` / ``UNet1DModel``.
        """
        load.setdefault("unet_classes", cls.unet_classes)
        parts = load_pretrained(path_or_id, device, dtype, name=name, **load)
        return cls(parts.unet, parts.scheduler, name=parts.name, clip=clip,
                   check_size=check_size, class_label=class_label)


@loading_docs
def diffusers_prior(path: str, scheduler: str | None = None, model_dtype: str | None = None,
                    variant: str | None = None, check_size: bool = True,
                    class_label: int | None = None, clip: float = 1.0,
                    cache_dir: str | None = None, device: str = "cpu",
                    dtype: str = "float32") -> DiffusersPrior:
    """A pixel-space diffusion prior from a diffusers checkpoint (``UNet2DModel`` or ``UNet1DModel``).

    :param str path: a saved diffusers pipeline folder, a folder with ``unet/`` and
        ``scheduler/``, a model folder with ``scheduler_config.json``, or a hub id in the local
        Hugging Face cache (nothing is downloaded).
    :param float clip: range of clipped Tweedie estimates.
    {loading}
    """
    return DiffusersPrior.from_pretrained(path, device=device, dtype=dtype, scheduler=scheduler,
                                          model_dtype=model_dtype, variant=variant,
                                          check_size=check_size, class_label=class_label,
                                          clip=clip, cache_dir=cache_dir)
