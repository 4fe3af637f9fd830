"""Fourier phase retrieval: the magnitude of the oversampled Fourier transform."""

from __future__ import annotations

from typing import Any

import torch
from deepinv.physics import Physics
from torch import Tensor

from ._common import autograd_vjp


class FourierPhaseRetrieval(Physics):
    r"""
    Fourier phase retrieval with oversampling.

    .. math::

        y = \left| \mathcal{F}(P x) \right|

    where :math:`P` zero-pads every spatial axis of length :math:`n` to
    :math:`\mathrm{round}(s\, n)` (``oversampling`` :math:`s`, the signal centred) and
    :math:`\mathcal{F}` is the orthonormal FFT over the spatial axes, per channel. The
    default :math:`s = 1.5` pads :math:`n/4` on each side (256 -> 384, 2.25 times the
    pixels), the padding of the DPS, DCDP and ProjDiff codes (their ``oversample = 2``
    means a pad of :math:`2/8` of the side per side). The operator is nonlinear
    (``linear = False``); its vector-Jacobian product is computed by autograd.

    :meth:`A_dagger` is only an initialisation: the inverse FFT of :math:`y` with zero phase,
    centred and cropped. :meth:`project` is one error-reduction (Gerchberg-Saxton) step, not
    an exact projection (the constraint set is not convex): the Fourier magnitude of
    :math:`P x` is replaced by :math:`y`, then the inverse FFT is taken, its real part kept
    and the padding cropped. It never increases :math:`\| |\mathcal{F} P x| - y \|` and
    leaves any :math:`x` with :math:`|\mathcal{F} P x| = y` unchanged.

    :param tuple[int] img_size: ``(C, *spatial)`` of one item.
    :param float oversampling: padded length over signal length along each spatial axis
        (1.5: the authors' padding).
    :param kwargs: passed to :class:`deepinv.physics.Physics` (``noise_model``).
    """

    linear = False

    def __init__(self, img_size: tuple[int, ...], oversampling: float = 1.5,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.img_size = tuple(int(s) for s in img_size)
        self.oversampling = float(oversampling)
        spatial = self.img_size[1:]
        self.padded = tuple(max(n, int(round(self.oversampling * n))) for n in spatial)
        self.before = tuple((p - n) // 2 for p, n in zip(self.padded, spatial, strict=True))
        self.dims = tuple(range(-len(spatial), 0))

    def equivalent_noise_variance(self, variance: float) -> float:
        r"""The variance in signal space of measurement noise of variance ``variance``.

        ``variance`` times the padded over the original number of pixels, as ProjDiff's code
        takes it for its noisy phase retrieval (``eq_var``: 2.25 ``variance`` at the default
        oversampling of 1.5, 256 -> 384).

        >>> FourierPhaseRetrieval((1, 256, 256)).equivalent_noise_variance(0.01)
        0.0225
        """
        ratio = 1.0
        for p, n in zip(self.padded, self.img_size[1:], strict=True):
            ratio *= p / n
        return float(variance) * ratio

    def pad(self, x: Tensor) -> Tensor:
        """Zero-pad the spatial axes of ``x`` to :attr:`padded`, the signal centred."""
        widths: list[int] = []
        for n, p, b in reversed(list(zip(x.shape[2:], self.padded, self.before, strict=True))):
            widths += [b, p - n - b]
        return torch.nn.functional.pad(x, widths)

    def crop(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`pad`: the centred window of the original size."""
        index = (slice(None), slice(None)) + tuple(
            slice(b, b + n) for b, n in zip(self.before, self.img_size[1:], strict=True))
        return z[index]

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        r"""
        Fourier magnitude :math:`|\mathcal{F}(P x)|` (real, shaped as the padded signal).

        :param torch.Tensor x: signal ``(B, C, *spatial)``.
        """
        return torch.fft.fftn(self.pad(x), dim=self.dims, norm="ortho").abs()

    def A_vjp(self, x: Tensor, v: Tensor, **kwargs: Any) -> Tensor:
        r"""
        :math:`\left(\frac{\partial A}{\partial x}\right)^{\top} v` by autograd.

        :param torch.Tensor x: signal.
        :param torch.Tensor v: vector shaped as :math:`A(x)`.
        """
        return autograd_vjp(self.A, x, v)

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""
        Zero-phase initialisation: :math:`\mathrm{crop}(\mathrm{shift}(\Re\, \mathcal{F}^{-1} y))`.

        Not an inverse (the phase is lost); a symmetric image with the right Fourier
        magnitude up to cropping, centred in the window.

        :param torch.Tensor y: Fourier magnitudes.
        """
        z = torch.fft.ifftn(y.to(torch.promote_types(y.dtype, torch.complex64)),
                            dim=self.dims, norm="ortho").real
        return self.crop(torch.fft.fftshift(z, dim=self.dims))

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        r"""
        Error-reduction step: magnitude replaced by :math:`y`, phase of :math:`\mathcal{F} P x` kept.

        .. math::

            x \mapsto \mathrm{crop}\left(\Re\, \mathcal{F}^{-1}\left(y \odot
            \frac{\mathcal{F} P x}{|\mathcal{F} P x|}\right)\right)

        Where :math:`\mathcal{F} P x` is 0 the phase is taken as 0.

        :param torch.Tensor x: current estimate.
        :param torch.Tensor y: Fourier magnitudes (negative values, from noise, count as 0).
        """
        with torch.no_grad():
            fx = torch.fft.fftn(self.pad(x), dim=self.dims, norm="ortho")
            mag = fx.abs()
            phase = torch.where(mag > 0, fx / mag.clamp_min(torch.finfo(mag.dtype).tiny),
                                torch.ones_like(fx))
            z = torch.fft.ifftn(y.clamp_min(0).to(mag.dtype) * phase, dim=self.dims,
                                norm="ortho").real
            return self.crop(z)
