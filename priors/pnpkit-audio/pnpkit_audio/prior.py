"""The multi-source music diffusion prior: one DDPM over the stems stacked as channels.

As in MSDM (Mariani et al., "Multi-Source Diffusion Models for Simultaneous Music
Generation and Separation", ICLR 2024), a single network models the joint distribution of
the four stems (bass, drums, guitar, piano) of a piece, stacked as the channels of a (B, 4, L)
signal in [-1, 1]; the mixture is their sum. The network is an
:class:`~pnpkit_audio.network.AudioUNet1DModel` trained with epsilon prediction on the
1000-step linear schedule of DDPM (betas from 1e-4 to 0.02), held by a diffusers
``DDPMScheduler``. It is a diffusers-backed prior of pnpkit-priors
(:class:`pnpkit_priors.diffusion.DiffusersPrior`, with the 1-D network among its loadable
classes), so every pnpkit solver uses it through :class:`pnpkit.priors.DiffusionPrior`
unchanged (``eps``, Tweedie ``x0``, ``noise``, ``ddim``, ``denoise``); what is its own is
the music: the stems' layout and the length rule in :meth:`AudioDiffusionPrior.check`.

A checkpoint is a folder with ``unet/`` (``config.json`` and
``diffusion_pytorch_model.safetensors``) and ``scheduler/`` (``scheduler_config.json``), as
:mod:`pnpkit_audio.train` writes it; it loads offline with
:meth:`AudioDiffusionPrior.from_pretrained`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pnpkit.priors import torch_dtype
from pnpkit_priors.diffusion import DiffusersPrior
from pnpkit_priors.edm import EDMPrecond, EDMPrior, load_edm
from pnpkit_priors.loading import build_scheduler as scheduler_from_config
from pnpkit_priors.loading import check_folder, load_model, scheduler_config
from pnpkit_priors.trainer import ddpm_scheduler as build_scheduler

from . import SEGMENT, STEMS
from .network import AudioUNet1DModel

__all__ = ["AudioDiffusionPrior", "AudioEDMPrior", "audio_prior", "build_scheduler", "is_edm_folder",
           "load_audio_prior"]

WEIGHTS = "diffusion_pytorch_model.safetensors"
LAYOUT = ("a folder with unet/ (config.json and diffusion_pytorch_model.safetensors) and "
          "scheduler/ (scheduler_config.json), as `pnpkit train-audio-prior` writes it")
#: The files a checkpoint folder must hold, per subfolder.
PARTS = {"unet": ("config.json", WEIGHTS), "scheduler": ("scheduler_config.json",)}


class AudioDiffusionPrior(DiffusersPrior):
    r"""A multi-source audio diffusion prior: (B, C, L) stems in [-1, 1], one DDPM over all of them.

    The forward process is variance preserving,

    .. math:: x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, z,
              \qquad z \sim \mathcal N(0, I),

    with :math:`\bar\alpha_t` from the scheduler (the DDPM linear schedule for the project's
    checkpoints) and the network predicting :math:`\epsilon` from :math:`(x_t, t)` for all
    stems at once, as in MSDM (Mariani et al., ICLR 2024). The signal's channels are the
    stems in :data:`pnpkit_audio.STEMS` order; its length must be a multiple of the network's
    total down-sampling factor (256 for the default network). Signals are moved to the
    network's device and dtype and the output comes back in theirs, so a float16 network
    serves float32 solvers (all of it inherited from
    :class:`~pnpkit_priors.diffusion.DiffusersPrior`).

    Most users load a checkpoint with :meth:`from_pretrained`.

    :param AudioUNet1DModel unet: the noise-prediction network.
    :param scheduler: the diffusers scheduler it was trained with (``alphas_cumprod`` and
        ``prediction_type`` are read from it).
    :param str name: the prior's name in messages.
    :param float clip: Tweedie estimates are clipped to ``[-clip, clip]`` where solvers ask.
    :param int segment: the window, in samples, a longer signal is solved in (its
        :attr:`fixed_shape`; a multiple of :attr:`length_multiple`); default :data:`pnpkit_audio.SEGMENT`
        (rounded down to a multiple of :attr:`length_multiple`).
    :param int sample_rate: the rate, in Hz, the network was trained at (``pnpkit run`` resamples
        a measured song to it); None when unknown.
    :param str below_floor: :meth:`denoise` below the schedule's smallest level, about 0.01
        (:class:`pnpkit.priors.DiffusionPrior`): ``"floor"`` (default here) the network's
        estimate at that level, ``"score"`` the score held at it. On the shipped 4-stem prior,
        MSDM's Dirac sampler (50 levels down to 1e-4) separates four test excerpts at
        +1.77 / +2.82 / +3.58 / -1.37 dB mean per-stem SI-SNRi with ``"floor"`` against
        +0.87 / +2.37 / +2.64 / -1.77 with ``"score"`` (see its model card).

    |sep|

    :Example:

    >>> import torch
    >>> from pnpkit_audio.network import AudioUNet1DModel
    >>> from pnpkit_audio.prior import AudioDiffusionPrior, build_scheduler
    >>> net = AudioUNet1DModel(channels=(8, 16, 16), down_factors=(4, 4))
    >>> prior = AudioDiffusionPrior(net, build_scheduler(), name="tiny")
    >>> prior.shape, prior.num_timesteps, prior.fixed_shape
    ((4, None), 1000, (65536,))
    >>> prior.denoise(torch.zeros(1, 4, 64), 0.1).shape, prior.nfe
    (torch.Size([1, 4, 64]), 1)
    """

    dims = 1
    unet_classes = {AudioUNet1DModel.__name__: AudioUNet1DModel}

    def __init__(self, unet: AudioUNet1DModel, scheduler: Any, name: str = "audio",
                 clip: float | None = 1.0, segment: int | None = None,
                 sample_rate: int | None = None, below_floor: str = "floor") -> None:
        # Any multiple of the down-sampling factor works, so the training length is not checked.
        super().__init__(unet, scheduler, name=name, clip=clip, check_size=False)
        self.set_below_floor(below_floor)
        f = self.length_multiple
        if segment is None:
            segment = max(f, SEGMENT // f * f)
        if isinstance(segment, bool) or not isinstance(segment, int) or segment <= 0 or segment % f:
            try:
                near = max(f, round(float(segment) / f) * f)
            except (TypeError, ValueError):
                near = max(f, SEGMENT // f * f)
            raise ValueError(f"prior {name!r}: segment = {segment!r} must be a positive multiple "
                             f"of {f} samples (the network's down-sampling factor); use e.g. "
                             f"segment = {near}")
        self.segment = segment
        self.sample_rate = sample_rate

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The (C, L) shape of its signals: the channel count, and ``None`` (any valid length)."""
        return (int(self.unet.config.in_channels), None)

    @property
    def stems(self) -> tuple[str, ...] | None:
        """The stems' names in channel order (:data:`pnpkit_audio.STEMS` for a four-channel
        network, None otherwise): ``pnpkit run`` names the WAV of each after them."""
        return STEMS if self.shape[0] == len(STEMS) else None

    @property
    def fixed_shape(self) -> tuple[int, ...]:
        """``(segment,)``: the window a longer song is separated in, window by window.

        The network runs on any multiple of :attr:`length_multiple`, but its memory and time
        grow with the length and its GroupNorm statistics span the whole signal, so a whole
        song goes through it in overlapping windows of this length, cross-faded
        (:func:`pnpkit.tiling.window_starts`, :func:`pnpkit.tiling.crossfade`).
        """
        return (self.segment,)

    @property
    def length_multiple(self) -> int:
        """Signal lengths must be multiples of this (the network's total down-sampling factor)."""
        return self.unet.total_factor

    def check(self, x: Tensor) -> None:
        """Raise ``ValueError`` when ``x`` is not a batch of signals this prior models.

        :param torch.Tensor x: signals, expected (B, C, L) with C the network's channels and L
            a multiple of :attr:`length_multiple`.
        """
        channels, f = self.shape[0], self.length_multiple
        stems = f" ({', '.join(STEMS)} stacked as channels)" if channels == len(STEMS) else ""
        want = f"(B, {channels}, L){stems} with L a multiple of {f}"
        got = tuple(int(s) for s in x.shape)
        if x.dim() != 3 or got[1] != channels:
            # A hint that works: [data] channels only down-mixes (channels = 1).
            how = ("e.g. [data] channels = 1 down-mixes a file" if channels == 1 else
                   "a file with one channel per stem, or to separate a mixture: [data] measurement "
                   "= \"song.wav\" with [operator] name = \"mixture\"")
            raise ValueError(f"prior {self.name!r} models {want}, but got signals of shape "
                             f"{got}; give it {channels}-channel audio ({how})")
        n = got[2]
        if n == 0 or n % f:
            up = (n // f + 1) * f
            near = f"{n // f * f} or {up}" if n >= f else str(up)
            raise ValueError(f"prior {self.name!r} models {want}, but got length {n}; pad or crop "
                             f"the signal to a multiple of {f} (the nearest: {near})")

    def network(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Raw network output (the predicted noise) for ``x_t`` at integer timesteps ``t``.

        :param torch.Tensor x_t: noisy signals (B, C, L).
        :param torch.Tensor t: integer timesteps, shape (B,).
        :return: the prediction, shaped and typed like ``x_t``.
        """
        self.check(x_t)
        return super().network(x_t, t)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu",
                        dtype: str | torch.dtype = "float32", *, name: str | None = None,
                        clip: float | None = 1.0, segment: int | None = None,
                        sample_rate: int | None = None,
                        below_floor: str = "floor") -> AudioDiffusionPrior:
        """Load a checkpoint folder (``unet/`` + ``scheduler/``), offline.

        The folder is checked and the network loaded by pnpkit-priors' loaders
        (:func:`~pnpkit_priors.loading.check_folder`, :func:`~pnpkit_priors.loading.load_model`).

        :param str folder: the checkpoint folder.
        :param str device: where the network runs.
        :param str dtype: the network's dtype: ``"float32"`` (default), ``"float16"`` (on a
            GPU), ``"bfloat16"`` or ``"float64"``; signals of any floating dtype are cast to it
            and the outputs back.
        :param str name: the prior's name in messages (default: the folder's name).
        :param float clip: Tweedie estimates are clipped to ``[-clip, clip]`` where asked.
        :param int segment: the window a longer signal is solved in (see :attr:`fixed_shape`).
        :param int sample_rate: the network's sample rate (default: the ``data.sample_rate`` of
            the folder's ``card.json``, which `pnpkit train-audio-prior` writes, if there is one).
        :param str below_floor: ``"floor"`` or ``"score"`` (see the class).
        :raises FileNotFoundError: for a missing folder or missing files, naming what is there.
        :raises ValueError: for a network of another class, or a segment that is not a multiple
            of its down-sampling factor; for a single file, e.g. MSDM's released Lightning
            checkpoint, one line saying why it cannot be used
            (:func:`pnpkit_audio.msdm.describe_checkpoint`).
        """
        if Path(folder).is_file():  # e.g. MSDM's Lightning .ckpt: say why it cannot be used
            from .msdm import describe_checkpoint

            error = describe_checkpoint(folder)
            if error is not None:
                raise error
        root = check_folder(folder, "audio prior folder", LAYOUT, PARTS)
        unet = load_model(root / "unet", cls.unet_classes, device, torch_dtype(dtype),
                          hint=" networks (diffusers' own UNets load with the `diffusers` prior "
                               "of pnpkit-priors)")
        scheduler = scheduler_from_config(scheduler_config(root / "scheduler"))
        if sample_rate is None and (root / "card.json").is_file():
            import json

            sample_rate = json.loads((root / "card.json").read_text()).get("data", {}).get("sample_rate")
        return cls(unet, scheduler, name=name or root.resolve().name, clip=clip, segment=segment,
                   sample_rate=sample_rate, below_floor=below_floor)


def audio_prior(path: str, device: str = "cpu", dtype: str = "float32",
                clip: float = 1.0, segment: int = SEGMENT,
                below_floor: str = "floor") -> AudioDiffusionPrior | AudioEDMPrior:
    """The multi-source audio diffusion prior of a checkpoint folder (a factory for plugins).

    :param str path: the checkpoint folder (``unet/`` and ``scheduler/``).
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline (the network's dtype).
    :param float clip: range of clipped Tweedie estimates.
    :param int segment: the window, in samples, a longer song is separated in.
    :param str below_floor: ``"floor"`` (default) or ``"score"``: the denoiser below the
        schedule's smallest level (see :class:`AudioDiffusionPrior`).
    """
    return load_audio_prior(path, device=device, dtype=dtype, clip=clip, segment=segment,
                            below_floor=below_floor)


class AudioEDMPrior(EDMPrior):
    """A multi-source audio prior in EDM's parametrisation: pnpkit-audio's network as the
    backbone of :class:`pnpkit_priors.edm.EDMPrecond`, a denoiser ``D(x, sigma)`` for any sigma
    in its ``[sigma_min, sigma_max]`` (what ``pnpkit train-audio-prior --parametrisation edm``
    writes: ``config.json`` + ``model.safetensors``).

    It is a :class:`pnpkit_priors.edm.EDMPrior` (a :class:`pnpkit.priors.ContinuousDiffusionPrior`,
    so every solver runs on it unchanged) with the music of :class:`AudioDiffusionPrior`: the
    stems' names, the window a longer song is separated in (:attr:`fixed_shape`) and the
    network's sample rate.

    :param EDMPrecond model: the network.
    :param str name: the prior's name in messages.
    :param float clip: Tweedie estimates are clipped to ``[-clip, clip]`` where solvers ask.
    :param int segment: the window, in samples, a longer signal is solved in (a multiple of
        the network's down-sampling factor; default :data:`pnpkit_audio.SEGMENT`).
    :param int sample_rate: the network's rate in Hz, or None.
    :param str below_floor: ``"floor"`` (default, as :class:`AudioDiffusionPrior`) or ``"score"``.
    """

    def __init__(self, model: EDMPrecond, name: str = "audio-edm", clip: float | None = 1.0,
                 segment: int | None = None, sample_rate: int | None = None,
                 below_floor: str = "floor") -> None:
        super().__init__(model, name=name, clip=clip, below_floor=below_floor)
        f = self.length_multiple
        segment = max(f, SEGMENT // f * f) if segment is None else segment
        if isinstance(segment, bool) or not isinstance(segment, int) or segment <= 0 or segment % f:
            raise ValueError(f"prior {name!r}: segment = {segment!r} must be a positive multiple "
                             f"of {f} samples (the network's down-sampling factor); use e.g. "
                             f"segment = {max(f, SEGMENT // f * f)}")
        self.segment = segment
        self.sample_rate = sample_rate

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The (C, L) shape of its signals: the channel count, and ``None`` (any length)."""
        return (self.channels, None)

    @property
    def stems(self) -> tuple[str, ...] | None:
        """The stems' names in channel order (four-channel networks), else None."""
        return STEMS if self.channels == len(STEMS) else None

    @property
    def fixed_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        """``(segment,)``: the window a longer song is separated in (see :class:`AudioDiffusionPrior`)."""
        return (self.segment,)

    @property
    def length_multiple(self) -> int:
        """The network's total down-sampling factor (other lengths are padded and cropped back)."""
        return int(self.model.backbone.total_factor)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu",
             dtype: str | torch.dtype = "float32", *, name: str | None = None,
             clip: float | None = 1.0, segment: int | None = None,
             below_floor: str = "floor") -> AudioEDMPrior:
        """Load an EDM checkpoint folder (``config.json`` + ``model.safetensors``), offline.

        The sample rate is read from the folder's ``card.json`` when there is one.
        """
        root = Path(folder)
        model = load_edm(root, device, torch_dtype(dtype))
        if not isinstance(model.backbone, AudioUNet1DModel):
            raise ValueError(f"{root / 'config.json'}: the backbone is "
                             f"{type(model.backbone).__name__}, not pnpkit-audio's "
                             "AudioUNet1DModel; load it with [prior] name = \"edm\"")
        return cls(model, name=name or root.resolve().name, clip=clip, segment=segment,
                   sample_rate=_card_rate(root), below_floor=below_floor)


def _card_rate(root: Path) -> int | None:
    if (root / "card.json").is_file():
        import json

        rate = json.loads((root / "card.json").read_text()).get("data", {}).get("sample_rate")
        return int(rate) if rate else None
    return None


def is_edm_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds an EDM checkpoint (``config.json`` naming ``EDMPrecond``)."""
    import json

    config = Path(folder) / "config.json"
    try:
        return bool(config.is_file() and json.loads(config.read_text()).get("_class_name")
                    == "EDMPrecond")
    except (OSError, ValueError):
        return False


def load_audio_prior(path: str | Path, device: str | torch.device = "cpu",
                     dtype: str | torch.dtype = "float32", *, name: str | None = None,
                     clip: float | None = 1.0, segment: int | None = None,
                     below_floor: str = "floor") -> AudioDiffusionPrior | AudioEDMPrior:
    """The audio prior of a folder, whichever parametrisation wrote it: ``config.json`` +
    ``model.safetensors`` (EDM, :class:`AudioEDMPrior`) or ``unet/`` + ``scheduler/`` (DDPM,
    :class:`AudioDiffusionPrior`). A single file (e.g. MSDM's released ``.ckpt``) is refused in
    one line saying why (:func:`pnpkit_audio.msdm.describe_checkpoint`).
    """
    if is_edm_folder(path):
        return AudioEDMPrior.load(path, device, dtype, name=name, clip=clip, segment=segment,
                                  below_floor=below_floor)
    return AudioDiffusionPrior.from_pretrained(path, device, dtype, name=name, clip=clip,
                                               segment=segment, below_floor=below_floor)
