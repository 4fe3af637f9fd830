"""Super-resolution: filtered downsampling (deepinv's :class:`~deepinv.physics.Downsampling`)."""

from __future__ import annotations

from typing import Any

import torch
from deepinv.physics import Downsampling
from deepinv.physics.functional import filter_fft
from torch import Tensor

#: Anti-aliasing filters deepinv builds by name ("none": plain decimation).
FILTERS = ("bicubic", "bilinear", "gaussian", "sinc", "none")
PADDINGS = ("circular", "reflect", "replicate")


class SuperResolution(Downsampling):
    r"""
    Downsampling by an integer factor after an anti-aliasing filter.

    .. math::

        y = S (h * x)

    where :math:`h` is the filter (bicubic by default) and :math:`S` keeps one pixel in
    ``factor`` along each spatial axis. With circular padding the pseudo-inverse has a
    closed form: :math:`A A^{\top}` is a Fourier multiplier on the low-resolution grid, the
    mean of :math:`|\hat h|^2` over the ``factor**2`` aliases of each frequency, so

    .. math::

        A^{\dagger} y = A^{\top} \mathcal{F}^{-1}\left(\frac{\mathcal{F} y}
        {\frac{1}{f^2}\sum_{j} |\hat h(\omega + j)|^2}\right)

    and :meth:`project` is exact. Other paddings use deepinv's iterative least-squares
    pseudo-inverse.

    :param tuple[int] img_size: ``(C, H, W)`` of the high-resolution image.
    :param int factor: downsampling factor; must divide ``H`` and ``W``.
    :param str filter: ``"bicubic"``, ``"bilinear"``, ``"gaussian"``, ``"sinc"`` or ``"none"``.
    :param str padding: ``"circular"`` (exact projection), ``"reflect"`` or ``"replicate"``.
    :param kwargs: passed to :class:`deepinv.physics.Downsampling` (``noise_model``,
        ``max_iter``, ``tol``, ``device``).
    """

    linear = True

    def __init__(self, img_size: tuple[int, int, int], factor: int = 4, filter: str = "bicubic",
                 padding: str = "circular", **kwargs: Any) -> None:
        super().__init__(img_size=tuple(img_size), factor=factor,
                         filter=None if filter == "none" else filter, padding=padding, **kwargs)
        self.filter_name = filter

    def gram(self) -> Tensor:
        r"""
        The Fourier multiplier of :math:`A A^{\top}` on the low-resolution grid (circular padding).

        The mean of :math:`|\hat h|^2` over the ``factor**2`` frequencies of the image grid
        that alias to each low-resolution frequency, computed in the filter's precision.

        :return: (:class:`torch.Tensor`) real tensor ``(1, 1 or C, H / factor, W / factor)``;
            without a filter :math:`A A^{\top} = I` and this is not needed.
        """
        _, height, width = self.imsize
        h, w = height // self.factor, width // self.factor
        fh2 = filter_fft(self.filter, self.imsize, real_fft=False).abs().square()
        return fh2.reshape(*fh2.shape[:-2], self.factor, h, self.factor, w).mean(dim=(-4, -2))

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""
        Pseudo-inverse :math:`A^{\dagger} y = A^{\top} (A A^{\top})^{-1} y`.

        Closed form (Fourier division on the low-resolution grid) for circular padding,
        deepinv's least-squares solver otherwise.

        :param torch.Tensor y: low-resolution image ``(B, C, H / factor, W / factor)``.
        :return: (:class:`torch.Tensor`) the minimum-norm image with ``A x = y``.
        """
        if self.padding != "circular":
            return super().A_dagger(y, **kwargs)
        if self.filter is None:  # plain decimation: A A^T = I
            return self.A_adjoint(y)
        z = torch.fft.ifft2(torch.fft.fft2(y) / self.gram().to(y.dtype)).real
        return self.A_adjoint(z)

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        r"""
        Projection onto :math:`\{x : A x = y\}`: :math:`x + A^{\dagger}(y - A x)`.

        Exact for circular padding, as accurate as the iterative pseudo-inverse otherwise.

        :param torch.Tensor x: image to project.
        :param torch.Tensor y: measurement.
        """
        with torch.no_grad():
            return x + self.A_dagger(y - self.A(x))
