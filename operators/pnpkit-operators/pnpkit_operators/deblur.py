"""Deblurring: a fixed blur kernel (deepinv's :class:`~deepinv.physics.Blur` and
:class:`~deepinv.physics.BlurFFT`), Gaussian or motion kernels from deepinv."""

from __future__ import annotations

from typing import Any

import torch
from deepinv.physics import Blur, BlurFFT
from torch import Tensor

PADDINGS = ("reflect", "circular", "replicate")
#: Kernels larger than this use deepinv's FFT convolution (faster for large kernels).
FFT_ABOVE = 15


class ConvolutionBlur(Blur):
    r"""
    Convolution with a fixed kernel :math:`h` and a non-circular boundary (reflect by default).

    .. math::

        y = h * x

    The pseudo-inverse is deepinv's iterative least-squares solver (conjugate gradient on
    the normal equations, ``max_iter`` iterations), so :meth:`project` is approximate: its
    accuracy is that of the solver, and blurs are badly conditioned.

    :param torch.Tensor filter: kernel of shape ``(1, 1, k, k)``.
    :param str padding: ``"reflect"`` or ``"replicate"``.
    :param kwargs: passed to :class:`deepinv.physics.Blur` (``noise_model``, ``max_iter``,
        ``tol``, ``device``).
    """

    linear = True

    def __init__(self, filter: Tensor, padding: str = "reflect", **kwargs: Any) -> None:
        super().__init__(filter=filter, padding=padding,
                         use_fft=filter.shape[-1] > FFT_ABOVE, **kwargs)

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        r"""
        Approximate projection :math:`x + A^{\dagger}(y - A x)` with the iterative pseudo-inverse.

        :param torch.Tensor x: image to project.
        :param torch.Tensor y: measurement.
        """
        with torch.no_grad():
            return x + self.A_dagger(y - self.A(x))


class CircularBlur(BlurFFT):
    r"""
    Circular convolution with a fixed kernel, diagonalised by the FFT.

    .. math::

        y = h \circledast x = U \,\mathrm{diag}(|\hat h|)\, V^{\top} x

    deepinv's SVD gives the pseudo-inverse (singular values below 1e-5 are treated as zero),
    so :meth:`project` is exact on the range of :math:`A`.

    :param tuple[int] img_size: ``(C, H, W)``.
    :param torch.Tensor filter: kernel of shape ``(1, 1, k, k)``.
    :param kwargs: passed to :class:`deepinv.physics.BlurFFT` (``noise_model``, ``device``).
    """

    linear = True

    def __init__(self, img_size: tuple[int, int, int], filter: Tensor, **kwargs: Any) -> None:
        super().__init__(img_size=tuple(img_size), filter=filter, **kwargs)

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        r"""
        Exact projection :math:`x + A^{\dagger}(y - A x)` through the SVD.

        :param torch.Tensor x: image to project.
        :param torch.Tensor y: measurement.
        """
        with torch.no_grad():
            return x + self.A_dagger(y - self.A(x))


def gaussian_kernel(std: float, size: int) -> Tensor:
    """An isotropic Gaussian kernel ``(1, 1, size, size)`` summing to 1
    (:func:`deepinv.physics.functional.gaussian_blur`).

    :param float std: standard deviation in pixels.
    :param int size: odd side length.
    """
    from deepinv.physics.functional import gaussian_blur

    k = gaussian_blur(psf_size=(size, size), sigma=(std, std)).reshape(1, 1, size, size)
    return k / k.sum()


def motion_kernel(size: int, intensity: float, length_scale: float, seed: int) -> Tensor:
    """A seeded motion-blur kernel ``(1, 1, size, size)`` summing to 1.

    Drawn by deepinv's :class:`~deepinv.physics.generator.MotionBlurGenerator`: a camera
    trajectory from a Gaussian process with Matérn covariance, rasterised on the kernel grid
    that spans [-1, 1]. ``intensity`` is the process's standard deviation (how far the
    trajectory wanders, relative to half the kernel side) and ``length_scale`` its
    correlation length (how straight it is).

    :param int size: kernel side.
    :param float intensity: trajectory standard deviation.
    :param float length_scale: trajectory correlation length.
    :param int seed: random seed.
    """
    from deepinv.physics.generator import MotionBlurGenerator

    gen = MotionBlurGenerator((size, size), rng=torch.Generator().manual_seed(seed),
                              sigma=intensity, l=length_scale)
    k = gen.step(batch_size=1, seed=seed)["filter"].reshape(1, 1, size, size)
    return k / k.sum()


def kernel_std(kernel: Tensor) -> float:
    """Standard deviation (per axis, averaged) of a kernel seen as a distribution of mass."""
    k = kernel.reshape(kernel.shape[-2:]).double()
    k = k / k.sum()
    h, w = k.shape
    yy = torch.arange(h, dtype=k.dtype)
    xx = torch.arange(w, dtype=k.dtype)
    my, mx = (k.sum(1) * yy).sum(), (k.sum(0) * xx).sum()
    vy = (k.sum(1) * (yy - my) ** 2).sum()
    vx = (k.sum(0) * (xx - mx) ** 2).sum()
    return float(((vy + vx) / 2).sqrt())
