"""Super-resolution: filtered downsampling (deepinv's :class:`~deepinv.physics.Downsampling`).

deepinv filters the image at full resolution and then keeps one pixel in ``factor**2``; here
the forward operator computes only the kept pixels, as one convolution of the image's
``factor**2`` phases, and the adjoint is its transposed convolution (``factor**2`` times less
arithmetic, the same operator:
``tests/test_super_resolution.py`` checks both against deepinv's to float precision).
``benchmarks/cost_vs_size.py`` measures what this changes in a solve.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
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

    :meth:`A` filters the kept pixels only (a polyphase convolution) and, with circular
    padding, :meth:`A_adjoint` is its transposed convolution with the padding folded back;
    other paddings use deepinv's adjoint.

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

    def _kernel(self, x: Tensor) -> Tensor | None:
        """The filter flipped for :func:`torch.nn.functional.conv2d` (a convolution, as deepinv's)."""
        if self.filter is None:
            return None
        kernel = self.filter.to(device=x.device, dtype=x.dtype)
        if kernel.shape[:2] != (1, 1):
            return None  # per-image or per-channel filters: deepinv's general path
        return kernel.flip(-2, -1)

    def _pad(self, kernel: Tensor) -> tuple[int, int, int, int]:
        """deepinv's "same" padding for a kernel of this size: (left, right, top, bottom)."""
        h, w = kernel.shape[-2:]
        return (w // 2 - (w - 1) % 2, w // 2, h // 2 - (h - 1) % 2, h // 2)

    def _polyphase(self, kernel: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The kernel as ``factor**2`` phases, ``(1, factor**2, kh / factor, kw / factor)``.

        ``S (h * x)`` is then one dense convolution of the image's ``factor**2`` phases
        (:func:`torch.nn.functional.pixel_unshuffle`) with these: the kept pixels only, as a
        small multi-channel convolution, which CPUs run several times faster than a strided one.
        Returns the phases and the zero rows and columns the kernel was padded with.
        """
        f = self.factor
        kh, kw = kernel.shape[-2:]
        extra = (-kh % f, -kw % f)
        padded = F.pad(kernel, (0, extra[1], 0, extra[0]))
        return F.pixel_unshuffle(padded, f), extra

    def A(self, x: Tensor, filter: Any = None, factor: Any = None, **kwargs: Any) -> Tensor:
        r"""
        :math:`S (h * x)` computed at the kept pixels only (a polyphase convolution).

        :param torch.Tensor x: image ``(B, C, H, W)``.
        :param filter: a new filter (deepinv's signature; the general path is used then).
        :param factor: a new factor (idem).
        :return: (:class:`torch.Tensor`) ``(B, C, H / factor, W / factor)``.
        """
        kernel = self._kernel(x)
        if filter is not None or factor is not None or kwargs or kernel is None \
                or self.padding == "valid":
            return super().A(x, filter=filter, factor=factor, **kwargs)
        b, c, height, width = x.shape
        f = self.factor
        self.imsize_dynamic = x.shape[-3:]
        padded = F.pad(x.reshape(b * c, 1, height, width), self._pad(kernel), mode=self.padding)
        # zeros up to a multiple of the factor: they meet only the kernel's zero padding
        padded = F.pad(padded, (0, -padded.shape[-1] % f, 0, -padded.shape[-2] % f))
        phases, _ = self._polyphase(kernel)
        out = F.conv2d(F.pixel_unshuffle(padded, f), phases)[..., :height // f, :width // f]
        return out.reshape(b, c, height // f, width // f)

    def A_adjoint(self, y: Tensor, filter: Any = None, factor: Any = None, **kwargs: Any) -> Tensor:
        r"""
        :math:`h^{\top} * (S^{\top} y)`: the transposed polyphase convolution (circular padding).

        :param torch.Tensor y: low-resolution image ``(B, C, H / factor, W / factor)``.
        :param filter: a new filter (deepinv's signature; the general path is used then).
        :param factor: a new factor (idem).
        :return: (:class:`torch.Tensor`) ``(B, C, H, W)``.
        """
        kernel = self._kernel(y)
        if filter is not None or factor is not None or kwargs or kernel is None \
                or self.padding != "circular":
            return super().A_adjoint(y, filter=filter, factor=factor, **kwargs)
        b, c, h, w = y.shape
        f = self.factor
        height, width = h * f, w * f
        left, right, top, bottom = self._pad(kernel)
        full = (height + top + bottom, width + left + right)  # the circularly padded image
        phases, _ = self._polyphase(kernel)
        grid = (-(-full[0] // f), -(-full[1] // f))  # its phases' side
        out = (grid[0] - phases.shape[-2] + 1, grid[1] - phases.shape[-1] + 1)
        z = F.pad(y.reshape(b * c, 1, h, w), (0, out[1] - w, 0, out[0] - h))
        padded = F.pixel_shuffle(F.conv_transpose2d(z, phases), f)[..., :full[0], :full[1]]
        x = _fold_circular(padded, (top, bottom), (left, right), (height, width))
        return x.reshape(b, c, height, width)

    def gram(self, dtype: torch.dtype | None = None) -> Tensor:
        r"""
        The Fourier multiplier of :math:`A A^{\top}` on the low-resolution grid (circular padding).

        The mean of :math:`|\hat h|^2` over the ``factor**2`` frequencies of the image grid
        that alias to each low-resolution frequency, computed in the filter's precision (or in
        ``dtype``: the filter's values cast to it, as :meth:`A` casts them to its input's).

        :param dtype: the precision to compute in (default: the filter's).
        :return: (:class:`torch.Tensor`) real tensor ``(1, 1 or C, H / factor, W / factor)``;
            without a filter :math:`A A^{\top} = I` and this is not needed.
        """
        _, height, width = self.imsize
        h, w = height // self.factor, width // self.factor
        kernel = self.filter if dtype is None else self.filter.to(dtype)
        fh2 = filter_fft(kernel, self.imsize, real_fft=False).abs().square()
        return fh2.reshape(*fh2.shape[:-2], self.factor, h, self.factor, w).mean(dim=(-4, -2))

    def spectrum(self, dtype: torch.dtype = torch.float64) -> Tensor | None:
        r"""
        The singular values of :math:`A` per low-resolution frequency (circular padding).

        With circular padding :math:`A A^{\top} = F^{H} \operatorname{diag}(s^2) F`, with
        :math:`F` the orthonormal 2-D DFT of the low-resolution grid and :math:`s^2` the
        multiplier :meth:`gram`: the SVD :math:`A = U \operatorname{diag}(s) V^{\top}` has the
        low-resolution Fourier modes as left singular vectors and :math:`V = A^{\top} U
        \operatorname{diag}(1 / s)` on the row space, at any image size without forming a
        matrix (pnpkit-projdiff's ``FFTSpectral`` uses it). The filter is real, so
        :math:`s` is symmetric in :math:`\pm` frequency.

        :param dtype: the precision (float64 by default).
        :return: (:class:`torch.Tensor` or None) real ``(1, 1 or C, H / factor, W / factor)``:
            :math:`\sqrt{\text{gram}}`, ones without a filter; None for other paddings (then
            :math:`A A^{\top}` is no Fourier multiplier), for per-image filters, and for a
            filter larger than the image.
        """
        if self.padding != "circular":
            return None
        _, height, width = self.imsize
        h, w = height // self.factor, width // self.factor
        if self.filter is None:
            return torch.ones(1, 1, h, w, dtype=dtype)
        if self.filter.shape[0] != 1 or self.filter.shape[-2] > height or self.filter.shape[-1] > width:
            return None
        return self.gram(dtype).clamp_min(0).sqrt()

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


def _fold_circular(padded: Tensor, rows: tuple[int, int], cols: tuple[int, int],
                   size: tuple[int, int]) -> Tensor:
    """Adjoint of circular padding: add each padded border onto the side it was copied from."""
    top, bottom = rows
    left, right = cols
    height, width = size
    x = padded[..., top:top + height, :].clone()
    if top:
        x[..., height - top:, :] += padded[..., :top, :]
    if bottom:
        x[..., :bottom, :] += padded[..., top + height:, :]
    out = x[..., left:left + width].clone()
    if left:
        out[..., width - left:] += x[..., :left]
    if right:
        out[..., :right] += x[..., left + width:]
    return out
