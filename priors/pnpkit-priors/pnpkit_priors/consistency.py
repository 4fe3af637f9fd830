"""Consistency models (diffusers ``CMStochasticIterativeScheduler`` conventions) as denoisers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pnpkit.priors import DenoiserPrior, randn_like

from .diffusion import MemoryCheck, check_unet_memory, unet_meta_call
from .loading import load_pretrained, loading_docs
from .network import UNetNetwork


class ConsistencyPrior(DenoiserPrior):
    r"""A consistency model: one network evaluation maps a noisy signal to a clean estimate.

    With the variance-exploding noise :math:`x_\sigma = x_0 + \sigma n` on the Karras schedule
    :math:`\sigma \in [\sigma_{\min}, \sigma_{\max}]` of diffusers'
    ``CMStochasticIterativeScheduler``, the consistency function is

    .. math::

        f(x_\sigma, \sigma) = c_{\mathrm{skip}}(\sigma)\, x_\sigma
            + c_{\mathrm{out}}(\sigma)\,
              F_\theta\big(c_{\mathrm{in}}(\sigma)\, x_\sigma,\; t(\sigma)\big),

    with :math:`c_{\mathrm{skip}} = \sigma_d^2 / ((\sigma - \sigma_{\min})^2 + \sigma_d^2)`,
    :math:`c_{\mathrm{out}} = (\sigma - \sigma_{\min})\sigma_d / \sqrt{\sigma^2 + \sigma_d^2}`,
    :math:`c_{\mathrm{in}} = 1 / \sqrt{\sigma^2 + \sigma_d^2}` (:math:`\sigma_d` is
    ``sigma_data``, 0.5) and the network's time input :math:`t(\sigma)` given by the
    scheduler's ``sigma_to_t``. So :math:`f(x, \sigma_{\min}) = x`. :meth:`denoise` is
    :math:`f` (noise levels are clamped to the schedule's range); each call is one network
    evaluation, counted in :attr:`nfe`. :meth:`f` is differentiable.

    :param torch.nn.Module unet: the consistency network (``UNet2DModel`` or ``UNet1DModel``).
    :param scheduler: a ``CMStochasticIterativeScheduler`` (or one with the same methods).
    :param str name: the prior's name in messages.
    :param bool clip: clip estimates to [-1, 1] (default: the scheduler's ``clip_denoised``).
    :param bool check_size: whether signals must have the network's ``sample_size``.
    :param int class_label: the class to condition a class-conditional network on.
    :param bool channels_last: run a 2-D network channels-last (converts ``unet`` in place; see
        :func:`~pnpkit_priors.network.to_channels_last`). Off here, on in :meth:`from_pretrained`.
    """

    def __init__(self, unet: torch.nn.Module, scheduler: Any, name: str = "consistency",
                 clip: bool | None = None, check_size: bool = True,
                 class_label: int | None = None, channels_last: bool = False) -> None:
        needed = ("sigma_to_t", "get_scalings_for_boundary_condition")
        if not all(hasattr(scheduler, m) for m in needed):
            raise ValueError(f"prior {name!r}: scheduler {type(scheduler).__name__} is not a "
                             "consistency-model scheduler; expected CMStochasticIterativeScheduler")
        self.name = name
        self.unet = unet
        self.scheduler = scheduler
        config = scheduler.config
        self.sigma_min = float(config["sigma_min"])
        self.sigma_max = float(config["sigma_max"])
        self.sigma_data = float(config["sigma_data"])
        self.clip = bool(config.get("clip_denoised", True)) if clip is None else bool(clip)
        #: The Karras noise levels of the training schedule, largest first.
        self.sigmas = torch.as_tensor(scheduler.sigmas, dtype=torch.float64)
        self.net = UNetNetwork(unet, name, check_size=check_size, class_label=class_label,
                               channels_last=channels_last)
        self.memory = MemoryCheck(unet, name, unet_meta_call(self.net))

    def check_memory(self, shape: tuple[int, ...], grad: bool | None = None) -> None:
        """Raise ``MemoryError`` (one line) when one network call on ``shape`` cannot fit.

        See :class:`~pnpkit_priors.diffusion.MemoryCheck`; called before the network's first
        call on each shape.

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
        """The network's ``sample_size`` when ``check_size`` holds; ``None`` (any size) otherwise."""
        return self.net.fixed_shape

    def _levels(self, sigma: float | Tensor, like: Tensor) -> Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu().reshape(-1)
        if s.numel() == 1:
            s = s.expand(like.shape[0])
        if s.numel() != like.shape[0]:
            raise ValueError(f"sigma must be a number or hold one level per item, got "
                             f"{s.numel()} levels for {like.shape[0]} items")
        return s.clamp(self.sigma_min, self.sigma_max)

    def scalings(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in)`` at noise levels ``sigma``.

        ``c_skip`` and ``c_out`` are the scheduler's boundary-condition scalings.

        :param torch.Tensor sigma: noise levels.
        """
        c_skip, c_out = self.scheduler.get_scalings_for_boundary_condition(sigma)
        c_in = 1.0 / (sigma**2 + self.sigma_data**2).sqrt()
        return c_skip, c_out, c_in

    def f(self, x_t: Tensor, sigma: float | Tensor) -> Tensor:
        """The consistency function: a clean estimate of ``x_t = x0 + sigma n`` in one evaluation.

        :param torch.Tensor x_t: noisy signals (B, C, *spatial).
        :param float, torch.Tensor sigma: the noise level, or one per item (shape (B,)).
        :return: the estimate of ``x0``, like ``x_t``.
        """
        s = self._levels(sigma, x_t)
        c_skip, c_out, c_in = self.scalings(s)
        t = torch.as_tensor(self.scheduler.sigma_to_t(s.numpy()), dtype=torch.float32)

        def view(v: Tensor) -> Tensor:
            return v.to(device=x_t.device, dtype=x_t.dtype).view(-1, *([1] * (x_t.dim() - 1)))

        self.nfe += 1
        self.net.check(x_t)
        self.check_memory(tuple(x_t.shape))
        out = self.at_precision(self.net, view(c_in) * x_t, t)  # the prior's precision
        x0 = view(c_skip) * x_t + view(c_out) * out
        return x0.clamp(-1, 1) if self.clip else x0

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Denoise ``x = x0 + sigma n``: :meth:`f` at the noise level ``sigma``.

        :param torch.Tensor x: noisy signals.
        :param float, torch.Tensor sigma: the noise level (a number or one per item).
        """
        return self.f(x, sigma)

    @torch.no_grad()
    def sample(self, shape: tuple[int, ...], sigmas: list[float] | None = None,
               generator: torch.Generator | None = None, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> Tensor:
        """Multistep consistency sampling: one evaluation per noise level.

        Start from :math:`\\sigma_{\\max} n`, then alternate :math:`f` and re-noising to the next
        level with :math:`\\sqrt{\\sigma^2 - \\sigma_{\\min}^2}\\, n`.

        :param tuple shape: (B, C, *spatial).
        :param list sigmas: the later noise levels, decreasing (default: none, one step).
        :param torch.Generator generator: the random generator.
        :param str device: where the samples are made.
        :param torch.dtype dtype: their dtype.
        """
        x = torch.zeros(shape, device=device, dtype=dtype)
        x = self.sigma_max * randn_like(x, generator)
        x0 = self.f(x, self.sigma_max)
        for s in sigmas or []:
            s = min(max(float(s), self.sigma_min), self.sigma_max)
            x = x0 + (s**2 - self.sigma_min**2) ** 0.5 * randn_like(x0, generator)
            x0 = self.f(x, s)
        return x0

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, device: str | torch.device = "cpu",
                        dtype: str = "float32", *, check_size: bool = True,
                        class_label: int | None = None, clip: bool | None = None,
                        name: str | None = None, channels_last: bool = True,
                        **load: Any) -> ConsistencyPrior:
        """Load a consistency-model checkpoint (network + ``CMStochasticIterativeScheduler``), offline.

        :param str path_or_id: a saved diffusers pipeline, a folder with ``unet/`` and
            ``scheduler/``, a model folder with a scheduler configuration, or a hub id in the
            local Hugging Face cache.
        :param str device: where the network runs.
        :param str dtype: the signals' dtype; the network runs in it unless ``model_dtype`` is given.
        :param bool check_size: whether signals must have the network's ``sample_size``.
        :param int class_label: the class of a class-conditional network.
        :param bool clip: clip estimates to [-1, 1] (default: the scheduler's ``clip_denoised``).
        :param str name: the prior's name in messages.
        :param bool channels_last: run a 2-D network channels-last (the default; see the class).
        :param load: the loading options of :func:`pnpkit_priors.loading.load_pretrained`
            (``scheduler``, ``model_dtype``, ``variant``, ``cache_dir``, ``revision``).
        """
        parts = load_pretrained(path_or_id, device, dtype, name=name, **load)
        return cls(parts.unet, parts.scheduler, name=parts.name, clip=clip, check_size=check_size,
                   class_label=class_label, channels_last=channels_last)


@loading_docs
def consistency_prior(path: str, scheduler: str | None = None, model_dtype: str | None = None,
                      variant: str | None = None, check_size: bool = True,
                      class_label: int | None = None, clip: bool | None = None,
                      cache_dir: str | None = None, channels_last: bool = True,
                      device: str = "cpu", dtype: str = "float32") -> ConsistencyPrior:
    """A consistency model (diffusers ``CMStochasticIterativeScheduler``) as a one-step denoiser.

    :param str path: a saved pipeline, a folder with ``unet/`` and ``scheduler/``, or a hub id
        in the local Hugging Face cache (nothing is downloaded).
    :param bool clip: clip estimates to [-1, 1] (default: the scheduler's ``clip_denoised``).
    {loading}
    """
    return ConsistencyPrior.from_pretrained(path, device=device, dtype=dtype, scheduler=scheduler,
                                            model_dtype=model_dtype, variant=variant,
                                            check_size=check_size, class_label=class_label,
                                            clip=clip, cache_dir=cache_dir,
                                            channels_last=channels_last)
