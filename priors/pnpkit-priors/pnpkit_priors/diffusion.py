"""Pixel-space diffusion priors from diffusers checkpoints (``UNet2DModel`` / ``UNet1DModel``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pnpkit.priors import DiffusionPrior

from .loading import UNET_CLASSES, load_pretrained, loading_docs
from .network import UNetNetwork

#: Bytes one network call keeps per byte of its leaf layers' outputs: with gradients
#: (activations saved for the backward pass, and the gradients' buffers) and without (the skip
#: connections and a few live tensors). Measured on CPU (resident-set peaks of one call at
#: 128 x 128, random weights): ADM FFHQ 256 0.90 / 0.16 (0.86 / 0.14 at 256), a diffusers
#: UNet2DModel of google/ddpm-celebahq-256's configuration 1.00 / 0.20.
GRAD_FACTOR = 1.0
NOGRAD_FACTOR = 0.25
#: What each ``precision`` does to activation memory (autocast halves most activations).
PRECISION_SCALE = {None: 1.0, "bf16": 0.6, "fp16": 0.6}


def available_memory(device: torch.device) -> int | None:
    """Free bytes on ``device``: CUDA's free memory, or on CPU the system's available memory
    (``MemAvailable``) within the process's cgroup limit; ``None`` where it cannot be told.

    :param torch.device device: where the network runs.
    """
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    if device.type != "cpu":
        return None
    free: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except OSError:
        return None
    try:  # a container's limit (cgroup v2)
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        used = int(open("/sys/fs/cgroup/memory.current").read().strip())
        if limit != "max" and free is not None:
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


class MemoryCheck:
    """Whether one call of a network fits in its device's memory, told before the call runs.

    The call is replayed once per input shape on meta tensors (no memory, no arithmetic),
    counting the elements every leaf layer outputs; the activations of a call are that count
    times :data:`GRAD_FACTOR` (gradients enabled: kept for a backward pass) or
    :data:`NOGRAD_FACTOR` bytes per element byte, scaled by the precision. When they exceed
    the device's free memory (:func:`available_memory`), :meth:`check` raises one line
    naming both and settings that fit. ``PNPKIT_MEMORY_CHECK=0`` turns the check off.

    :param torch.nn.Module model: the network.
    :param str name: the prior's name in messages.
    :param callable meta_call: ``shape -> (args, kwargs)``: the model's ``forward`` inputs for
        signals of ``shape``, as meta tensors.
    """

    def __init__(self, model: torch.nn.Module, name: str,
                 meta_call: Callable[[tuple[int, ...]], tuple[tuple[Any, ...], dict[str, Any]]]
                 ) -> None:
        self.model = model
        self.name = name
        self.meta_call = meta_call
        self._elements: dict[tuple[int, ...], tuple[int, int]] = {}
        self._checked: set[tuple[Any, ...]] = set()

    def elements(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """``(sum, element bytes)`` of the leaf layers' outputs of one call on ``shape``."""
        if shape not in self._elements:
            from torch.func import functional_call

            counts: list[tuple[int, int]] = []

            def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
                if isinstance(output, Tensor):
                    counts.append((output.numel(), output.element_size()))

            state = {k: torch.empty_like(v, device="meta")
                     for k, v in [*self.model.named_parameters(), *self.model.named_buffers()]}
            leaves = [m for m in self.model.modules() if not any(True for _ in m.children())]
            handles = [m.register_forward_hook(hook) for m in leaves]
            try:
                args, kwargs = self.meta_call(shape)
                with torch.no_grad():
                    functional_call(self.model, state, args, kwargs)
            finally:
                for h in handles:
                    h.remove()
            total = sum(n for n, _ in counts)
            size = max((b for _, b in counts), default=4)
            self._elements[shape] = (total, size)
        return self._elements[shape]

    def estimate(self, shape: tuple[int, ...], grad: bool, precision: str | None = None) -> int:
        """Bytes one call on ``shape`` needs beyond the weights (an estimate).

        :param tuple shape: the network input's shape (B, C, *spatial).
        :param bool grad: whether the call keeps its activations for a backward pass.
        :param str precision: ``"bf16"``/``"fp16"`` (autocast) or None.
        """
        total, size = self.elements(shape)
        factor = GRAD_FACTOR if grad else NOGRAD_FACTOR
        return int(total * size * factor * PRECISION_SCALE.get(precision, 1.0))

    def check(self, shape: tuple[int, ...], grad: bool, precision: str | None = None,
              tile: int | None = None) -> None:
        """Raise ``MemoryError`` when one call on ``shape`` needs more than the device has free.

        Checked once per shape, gradient mode and precision.

        :param tuple shape: the network input's shape.
        :param bool grad: whether the call keeps its activations for a backward pass.
        :param str precision: the prior's precision.
        :param int tile: the network's own size, suggested as a tile for larger signals.
        """
        key = (shape, grad, precision)
        if key in self._checked or os.environ.get("PNPKIT_MEMORY_CHECK", "1") == "0":
            return
        device = next(self.model.parameters()).device
        free = available_memory(device)
        if free is None:
            self._checked.add(key)
            return
        try:
            need = self.estimate(shape, grad, precision)
        except Exception:  # a network the meta replay cannot run: no estimate, no check
            self._checked.add(key)
            return
        if need <= free:
            self._checked.add(key)
            return
        fits = []
        if precision is None and self.estimate(shape, grad, "bf16") <= free:
            fits.append('precision = "bf16"')
        if tile and len(shape) == 4 and max(shape[2:]) > tile:
            small = (*shape[:2], tile, tile)
            if self.estimate(small, grad, precision) <= free:
                fits.append(f"[prior] tile = {tile}")
        if shape[0] > 1 and self.estimate((1, *shape[1:]), grad, precision) <= free:
            fits.append("one item at a time (a batch of 1)")
        fix = ("; " + " or ".join(fits) + " would fit" if fits
               else "; use a device with more memory (device = \"cuda\") or smaller signals")
        params = sum(p.numel() for p in self.model.parameters())
        raise MemoryError(
            f"prior {self.name!r} needs about {_size(need)} for one network call "
            f"{'with gradients ' if grad else ''}on {' x '.join(map(str, shape))} inputs "
            f"({params / 1e6:.1f} M parameters, activations estimated from the architecture) but "
            f"{device} has {_size(free)} free{fix} (PNPKIT_MEMORY_CHECK=0 runs it anyway)")


def _size(n: int) -> str:
    """Bytes in words: ``"1.8 GiB"``, ``"310 MiB"``.

    >>> _size(3 * 2**29), _size(310 * 2**20)
    ('1.5 GiB', '310 MiB')
    """
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def unet_meta_call(net: UNetNetwork) -> Callable[[tuple[int, ...]], tuple[tuple[Any, ...], dict[str, Any]]]:
    """The ``forward`` inputs of ``net``'s model for signals of a shape, padded as they run,
    on meta tensors (what :class:`MemoryCheck` replays).

    :param UNetNetwork net: the wrapped diffusers UNet.
    """

    def call(shape: tuple[int, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        spatial = [s + (-s) % net.factor for s in shape[2:]]
        x = torch.empty(*shape[:2], *spatial, device="meta", dtype=net.dtype)
        t = torch.zeros(shape[0], device="meta")
        kwargs: dict[str, Any] = {"return_dict": False}
        if net.class_label is not None:
            kwargs["class_labels"] = torch.zeros(shape[0], dtype=torch.long, device="meta")
        return (x, t), kwargs

    return call


def check_unet_memory(memory: MemoryCheck, net: UNetNetwork, shape: tuple[int, ...],
                      grad: bool | None, precision: str | None) -> None:
    """:meth:`MemoryCheck.check` for a diffusers UNet, its training size offered as a tile."""
    spatial = net.shape[1:]
    tile = int(spatial[0]) if len(spatial) == 2 and spatial[0] is not None else None
    memory.check(tuple(shape), torch.is_grad_enabled() if grad is None else grad, precision,
                 tile=tile)


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
    :param bool channels_last: run a 2-D network channels-last
        (:func:`~pnpkit_priors.network.to_channels_last`: converts ``unet`` in place; faster on
        CPUs, the same result to float rounding). Off here, on for loaded checkpoints
        (:meth:`from_pretrained`, the ``diffusers`` prior and the default priors).
    """

    what = "signals"
    #: The network's spatial dimensions (``None``: 1 for ``UNet1DModel``, else 2).
    dims: int | None = None
    #: The network classes :meth:`from_pretrained` loads (see :func:`~pnpkit_priors.loading.load_model`).
    unet_classes: tuple[str, ...] | dict[str, type] = UNET_CLASSES

    def __init__(self, unet: torch.nn.Module, scheduler: Any, name: str = "diffusers",
                 clip: float | None = 1.0, check_size: bool = True,
                 class_label: int | None = None, channels_last: bool = False) -> None:
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
                               what=self.what, dims=self.dims, channels_last=channels_last)
        self.memory = MemoryCheck(unet, name, unet_meta_call(self.net))

    def check_memory(self, shape: tuple[int, ...], grad: bool | None = None) -> None:
        """Raise ``MemoryError`` (one line) when one network call on ``shape`` cannot fit.

        See :class:`MemoryCheck`; called before the network's first call on each shape.

        :param tuple shape: the signals' (B, C, *spatial).
        :param bool grad: whether the call keeps its activations for a backward pass
            (default: whether gradients are enabled now).
        """
        check_unet_memory(self.memory, self.net, shape, grad, self.precision)

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
        self.net.check(x_t)
        check_unet_memory(self.memory, self.net, tuple(x_t.shape), None, self.precision)
        return self.net(x_t, t)

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, device: str | torch.device = "cpu",
                        dtype: str = "float32", *, check_size: bool = True,
                        class_label: int | None = None, clip: float | None = 1.0,
                        name: str | None = None, channels_last: bool = True,
                        **load: Any) -> DiffusersPrior:
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
        :param bool channels_last: run a 2-D network channels-last (the default; see the class).
        :param load: the loading options of :func:`pnpkit_priors.loading.load_pretrained`
            (``scheduler``, ``model_dtype``, ``variant``, ``cache_dir``, ``revision``).
        :raises FileNotFoundError: for a missing folder or a folder without the expected files.
        :raises ValueError: for a model class other than ``UNet2DModel`` / ``UNet1DModel``.
        """
        load.setdefault("unet_classes", cls.unet_classes)
        parts = load_pretrained(path_or_id, device, dtype, name=name, **load)
        return cls(parts.unet, parts.scheduler, name=parts.name, clip=clip,
                   check_size=check_size, class_label=class_label, channels_last=channels_last)


@loading_docs
def diffusers_prior(path: str, scheduler: str | None = None, model_dtype: str | None = None,
                    variant: str | None = None, check_size: bool = True,
                    class_label: int | None = None, clip: float = 1.0,
                    cache_dir: str | None = None, channels_last: bool = True,
                    device: str = "cpu", dtype: str = "float32") -> DiffusersPrior:
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
                                          clip=clip, cache_dir=cache_dir,
                                          channels_last=channels_last)
