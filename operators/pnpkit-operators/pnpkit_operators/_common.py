"""Helpers shared by the operators: settings checks, dtypes, noise models, autograd products.

Only torch and the core (its dtype parser) are imported here; deepinv is imported inside the
functions that need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from pnpkit.priors import DTYPES, torch_dtype

#: Side length the papers' default settings refer to (256 x 256 images).
REFERENCE_SIDE = 256


def as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """The real floating-point torch dtype named by ``dtype`` (``"float32"``, ``torch.float64``...).

    Names are read by the core's parser, :func:`pnpkit.priors.torch_dtype` (the names a
    configuration may use); what is checked here is that the dtype is real floating-point.

    :param str, torch.dtype dtype: a dtype or its name.
    :return: (:class:`torch.dtype`) the dtype.
    """
    try:
        out: torch.dtype | None = torch_dtype(dtype)
    except ValueError:
        out = None
    if out is None or not out.is_floating_point:
        raise ValueError(f"dtype must be a real floating-point type such as 'float32' or "
                         f"'float64' (one of {', '.join(DTYPES)}), got {dtype!r}")
    return out


def complex_of(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype matching the real ``dtype`` (complex128 for float64, else complex64)."""
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def cast_buffers(module: torch.nn.Module, dtype: torch.dtype,
                 device: str | torch.device = "cpu") -> torch.nn.Module:
    """Move a physics module to ``device`` and cast its floating buffers to ``dtype``.

    Unlike :meth:`torch.nn.Module.to`, complex buffers (Fourier transforms of filters) become
    the complex dtype of the same precision instead of losing their imaginary part.

    :param torch.nn.Module module: the physics.
    :param torch.dtype dtype: real dtype of the signals.
    :param str, torch.device device: target device.
    :return: the same module.
    """
    module.to(device)
    cdtype = complex_of(dtype)
    for name, buf in list(module.named_buffers()):
        if buf is None or not (buf.is_floating_point() or buf.is_complex()):
            continue
        owner, _, attr = name.rpartition(".")
        sub = module.get_submodule(owner) if owner else module
        setattr(sub, attr, buf.to(cdtype if buf.is_complex() else dtype))
    return module


def gaussian_noise(sigma_y: float) -> Any:
    """deepinv's :class:`~deepinv.physics.GaussianNoise` with standard deviation ``sigma_y``.

    :param float sigma_y: noise standard deviation, relative to signals in [-1, 1].
    """
    from deepinv.physics import GaussianNoise

    sigma_y = float(sigma_y)
    if not sigma_y >= 0:
        raise ValueError(f"sigma_y must be >= 0 (the noise standard deviation for signals in "
                         f"[-1, 1]), got {sigma_y}")
    return GaussianNoise(sigma=sigma_y)


def need_shape(shape: Sequence[int] | None, operator: str, kind: str = "image") -> tuple[int, ...]:
    """Check ``shape`` (one item, no batch axis) and return it as a tuple of ints.

    :param tuple shape: ``(C, H, W)`` for ``kind="image"``, ``(C, *spatial)`` for ``kind="any"``.
    :param str operator: operator name for the error message.
    :param str kind: ``"image"`` (exactly two spatial axes) or ``"any"`` (at least one).
    """
    example = "(C, H, W), e.g. shape=[3, 256, 256]" if kind == "image" else \
        "(C, *spatial), e.g. shape=[3, 256, 256] or shape=[4, 16000]"
    if shape is None:
        raise ValueError(f"{operator} needs the signal shape: pass shape={example} "
                         "(the pipeline passes it for you)")
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{operator}: shape must be a sequence of ints {example}, "
                         f"got {shape!r}") from None
    ok = len(out) == 3 if kind == "image" else len(out) >= 2
    if not ok or min(out) < 1:
        raise ValueError(f"{operator}: shape must be {example} (one item, no batch axis), "
                         f"got {out}")
    return out


def scaled(value: float, side: int, scale: bool) -> float:
    """``value * side / 256`` when ``scale`` else ``value`` (settings given for 256 x 256 images)."""
    return value * side / REFERENCE_SIDE if scale else value


def odd_size(size: float, limit: int | None = None) -> int:
    """The odd integer nearest to ``size``, at least 3 (and at most ``limit`` when given)."""
    k = max(3, 2 * int(round((size - 1) / 2)) + 1)
    if limit is not None and k > limit:
        k = limit if limit % 2 == 1 else limit - 1
    return k


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (masks and kernels are drawn on the CPU, so they
    are the same on every device)."""
    return torch.Generator().manual_seed(int(seed))


def autograd_vjp(fn: Callable[[Tensor], Tensor], x: Tensor, v: Tensor) -> Tensor:
    r"""Vector-Jacobian product :math:`\left(\frac{\partial f}{\partial x}\right)^{\top} v` by autograd.

    Plain :func:`torch.autograd.grad` (not :func:`torch.func.vjp`), so that any network
    (a VAE decoder with in-place operations, say) can sit inside ``fn``.

    :param Callable fn: the function :math:`f`.
    :param torch.Tensor x: point of evaluation.
    :param torch.Tensor v: vector, shaped as :math:`f(x)`.
    :return: (:class:`torch.Tensor`) the product, shaped as ``x``.
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = fn(xg)
        (g,) = torch.autograd.grad(out, xg, grad_outputs=v.to(out.dtype))
    return g

