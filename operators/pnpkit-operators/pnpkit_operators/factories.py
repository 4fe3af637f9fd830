"""The registered operator factories.

Each factory builds one operator from keyword settings; the pipeline adds ``shape`` (one
item, ``(C, *spatial)``), ``device`` and ``dtype``. This module is cheap to import: deepinv
and the operator classes are imported inside the factories, so ``pnpkit plugins`` stays fast.
Defaults follow the papers' 256 x 256 settings and scale with the image side where a size
in pixels is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._common import as_dtype, cast_buffers, gaussian_noise, need_shape, odd_size, scaled, seeded

Shape = Sequence[int] | None


def _finish(op: Any, dtype: str, device: str) -> Any:
    return cast_buffers(op, as_dtype(dtype), device)


def _choice(value: str, choices: Sequence[str], setting: str, operator: str) -> str:
    if value not in choices:
        raise ValueError(f"{operator}: {setting} must be one of {', '.join(map(repr, choices))}, "
                         f"got {value!r}")
    return value



def _downsampling_factor(name: str, factor: Any, h: int, w: int) -> int:
    """``factor`` as an int that divides both sides, or one line saying which factors do."""
    if isinstance(factor, bool) or int(factor) != factor or factor < 1:
        raise ValueError(f"{name}: factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    if h % factor or w % factor:
        good = [f for f in range(2, min(h, w) + 1) if h % f == 0 and w % f == 0][:6]
        hint = (f"use a factor that divides both ({', '.join(map(str, good))}...)" if good
                else "no factor > 1 divides both sides")
        raise ValueError(f"{name}: factor {factor} does not divide the image size {h}x{w}; "
                         f"{hint}, or crop/resize the images to a multiple of {factor}")
    return factor

def super_resolution(shape: Shape = None, sigma_y: float = 0.0, factor: int = 4,
                     filter: str = "bicubic", padding: str = "circular", max_iter: int = 100,
                     device: str = "cpu", dtype: str = "float32") -> Any:
    r"""Super-resolution: anti-aliasing filter then keep one pixel in ``factor`` per axis.

    .. math::

        y = S (h * x) + \sigma_y n

    deepinv's :class:`~deepinv.physics.Downsampling`. With ``padding = "circular"`` (the
    default) the pseudo-inverse and the projection are exact closed forms (FFT on the
    low-resolution grid); with ``"reflect"`` / ``"replicate"`` they use deepinv's iterative
    least squares (``max_iter`` iterations).

    :param tuple[int] shape: ``(C, H, W)``; ``factor`` must divide ``H`` and ``W``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param int factor: downsampling factor (4).
    :param str filter: ``"bicubic"`` (default), ``"bilinear"``, ``"gaussian"``, ``"sinc"`` or ``"none"``.
    :param str padding: ``"circular"`` (exact projection), ``"reflect"`` or ``"replicate"``.
    :param int max_iter: iterations of the least-squares pseudo-inverse (non-circular padding).
    :param str device: device of the operator's buffers.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .super_resolution import FILTERS, PADDINGS, SuperResolution

    name = "super-resolution"
    c, h, w = need_shape(shape, name)
    _choice(filter, FILTERS, "filter", name)
    _choice(padding, PADDINGS, "padding", name)
    factor = _downsampling_factor(name, factor, h, w)
    op = SuperResolution((c, h, w), factor=factor, filter=filter, padding=padding,
                         noise_model=gaussian_noise(sigma_y), max_iter=int(max_iter))
    return _finish(op, dtype, device)


def box_inpainting(shape: Shape = None, sigma_y: float = 0.0, box_fraction: float = 100 / 256,
                   position: Sequence[float] | str = (100 / 256, 100 / 256), device: str = "cpu",
                   dtype: str = "float32") -> Any:
    r"""Box inpainting: a box of pixels is missing, the same in every channel.

    .. math::

        y = m \odot x + \sigma_y n

    The box is ``round(H * box_fraction)`` by ``round(W * box_fraction)`` pixels (at least 1):
    100 x 100 at 256 x 256 as in the papers (``box_fraction = 100/256``). Its top-left corner is
    at ``(round(H * top), round(W * left))`` for ``position = [top, left]``, fractions of the
    sides: the default ``[100/256, 100/256]`` is the DCDP code's box, ``mask[..., 100:200,
    100:200]`` of a 256 x 256 image (50:100 at 128, 12:24 at 32). ``position = "centre"``
    centres the box (corner at ``((H - h) // 2, (W - w) // 2)``: 78:178 at 256), the
    placement before this setting existed. On a rectangle each side of the box is the same
    fraction of the image's side, so the box has the image's aspect: 25 x 38 at 64 x 96.
    deepinv's :class:`~deepinv.physics.Inpainting`; the projection is exact.

    :param tuple[int] shape: ``(C, H, W)``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param float box_fraction: box side over image side, in (0, 1).
    :param list[float] position: ``[top, left]``, the box's top-left corner as fractions of
        the height and width (each in [0, 1), the box must fit), or ``"centre"``.
    :param str device: device of the mask.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .inpainting import MaskInpainting, box_mask
    from .shapes import box_placement

    name = "box-inpainting"
    c, h, w = need_shape(shape, name)
    top, left, bh, bw = box_placement(h, w, box_fraction, position)
    op = MaskInpainting((c, h, w), box_mask((c, h, w), (bh, bw), (top, left)),
                        noise_model=gaussian_noise(sigma_y))
    op.box, op.corner = (bh, bw), (top, left)
    return _finish(op, dtype, device)


def random_inpainting(shape: Shape = None, sigma_y: float = 0.0, fraction: float = 0.5,
                      seed: int = 0, device: str = "cpu", dtype: str = "float32") -> Any:
    r"""Random inpainting: a seeded random ``fraction`` of the pixels (samples) is missing.

    .. math::

        y = m \odot x + \sigma_y n

    Exactly ``round(fraction * n)`` of the ``n`` pixels per channel are missing, the same
    pixels in every channel; images ``(C, H, W)`` and audio ``(C, L)`` alike. The mask comes
    from deepinv's mask generator on a CPU generator seeded with ``seed`` (the same mask on
    every device). deepinv's :class:`~deepinv.physics.Inpainting`; the projection is exact.

    :param tuple[int] shape: ``(C, *spatial)``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param float fraction: fraction of missing pixels, in [0, 1).
    :param int seed: seed of the mask.
    :param str device: device of the mask.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .inpainting import MaskInpainting, random_mask

    name = "random-inpainting"
    shape = need_shape(shape, name, kind="any")
    if not 0 <= fraction < 1:
        raise ValueError(f"{name}: fraction is the fraction of missing pixels and must be in "
                         f"[0, 1), got {fraction}")
    op = MaskInpainting(shape, random_mask(shape, float(fraction), int(seed)),
                        noise_model=gaussian_noise(sigma_y))
    return _finish(op, dtype, device)


def _blur(name: str, kernel: Any, shape: tuple[int, int, int], padding: str, sigma_y: float,
          max_iter: int) -> Any:
    from .deblur import PADDINGS, CircularBlur, ConvolutionBlur

    _choice(padding, PADDINGS, "padding", name)
    kh, kw = kernel.shape[-2:]
    _, h, w = shape
    size = f"{kh}" if kh == kw else f"{kh}x{kw}"
    if padding == "circular":
        if kh > h or kw > w:
            raise ValueError(f"{name}: kernel_size {size} is larger than the {h}x{w} image; "
                             f"use kernel_size <= {min(h, w)}")
        return CircularBlur(shape, kernel, noise_model=gaussian_noise(sigma_y))
    if kh // 2 >= h or kw // 2 >= w:
        raise ValueError(f"{name}: kernel_size {size} is too large for a {h}x{w} image with "
                         f"{padding} padding; use kernel_size <= {2 * min(h, w) - 1}")
    return ConvolutionBlur(kernel, padding=padding, noise_model=gaussian_noise(sigma_y),
                           max_iter=int(max_iter))


def _kernel_size(name: str, kernel_size: int, side: int, scale: bool) -> int:
    if isinstance(kernel_size, bool) or int(kernel_size) != kernel_size or kernel_size < 1:
        raise ValueError(f"{name}: kernel_size must be a positive integer, got {kernel_size!r}")
    size = scaled(kernel_size, side, scale)
    if not scale and int(kernel_size) % 2 == 0:
        raise ValueError(f"{name}: kernel_size must be odd (the kernel is centred), got "
                         f"{kernel_size}; use {kernel_size + 1}")
    return odd_size(size) if scale else int(kernel_size)


def gaussian_deblur(shape: Shape = None, sigma_y: float = 0.0, kernel_std: float = 3.0,
                    kernel_size: int = 61, scale_with_size: bool = True,
                    padding: str = "reflect", max_iter: int = 100, device: str = "cpu",
                    dtype: str = "float32") -> Any:
    r"""Gaussian deblurring: convolution with an isotropic Gaussian kernel.

    .. math::

        y = h * x + \sigma_y n, \qquad h \propto e^{-\|u\|^2 / (2 s^2)}

    ``kernel_std`` and ``kernel_size`` are the papers' values at 256 x 256 (3.0 and 61);
    with ``scale_with_size`` (default) both are scaled by ``min(H, W) / 256``, the shorter
    side's (the size to the nearest odd integer, at least 3): std 0.375 and size 7 at 32 x 32,
    std 0.75 and size 15 at 64 x 96 as at 96 x 64. The kernel is deepinv's
    :func:`~deepinv.physics.functional.gaussian_blur`.

    ``padding = "reflect"`` (default, as in the papers) uses deepinv's
    :class:`~deepinv.physics.Blur`: the pseudo-inverse and the projection are iterative
    (``max_iter`` conjugate-gradient iterations) and approximate. ``padding = "circular"``
    uses :class:`~deepinv.physics.BlurFFT`: exact (SVD) pseudo-inverse and projection, fast.

    :param tuple[int] shape: ``(C, H, W)``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param float kernel_std: kernel standard deviation in pixels (at 256 x 256 when scaled).
    :param int kernel_size: kernel side in pixels (at 256 x 256 when scaled; odd otherwise).
    :param bool scale_with_size: scale ``kernel_std`` and ``kernel_size`` by ``min(H, W) / 256``.
    :param str padding: ``"reflect"`` (default), ``"replicate"`` or ``"circular"`` (exact).
    :param int max_iter: iterations of the least-squares pseudo-inverse (non-circular padding).
    :param str device: device of the kernel.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .deblur import gaussian_kernel

    name = "gaussian-deblur"
    c, h, w = need_shape(shape, name)
    if not kernel_std > 0:
        raise ValueError(f"{name}: kernel_std must be > 0 (pixels), got {kernel_std}")
    size = _kernel_size(name, kernel_size, min(h, w), scale_with_size)
    std = scaled(float(kernel_std), min(h, w), scale_with_size)
    op = _blur(name, gaussian_kernel(std, size), (c, h, w), padding, sigma_y, max_iter)
    op.kernel_std, op.kernel_size = std, size
    return _finish(op, dtype, device)


def motion_deblur(shape: Shape = None, sigma_y: float = 0.0, kernel_size: int = 61,
                  intensity: float = 0.5, length_scale: float = 0.3, seed: int = 0,
                  scale_with_size: bool = True, padding: str = "reflect", max_iter: int = 100,
                  device: str = "cpu", dtype: str = "float32") -> Any:
    r"""Motion deblurring: convolution with a seeded random camera-shake kernel.

    .. math::

        y = h * x + \sigma_y n

    The kernel is drawn by deepinv's :class:`~deepinv.physics.generator.MotionBlurGenerator`
    (a Gaussian-process trajectory rasterised on the kernel grid) from a CPU generator seeded
    with ``seed``. ``intensity`` is the trajectory's standard deviation relative to half the
    kernel side (0.5: the trajectory spans most of the kernel, like the papers' intensity-0.5
    kernels), ``length_scale`` its correlation length. ``kernel_size`` is 61 at 256 x 256 and
    scaled by ``min(H, W) / 256`` with ``scale_with_size``. Padding as for ``gaussian-deblur``:
    ``"reflect"`` (default, iterative approximate projection) or ``"circular"`` (exact).

    :param tuple[int] shape: ``(C, H, W)``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param int kernel_size: kernel side in pixels (at 256 x 256 when scaled; odd otherwise).
    :param float intensity: trajectory standard deviation (> 0).
    :param float length_scale: trajectory correlation length (> 0).
    :param int seed: seed of the kernel.
    :param bool scale_with_size: scale ``kernel_size`` by ``min(H, W) / 256``.
    :param str padding: ``"reflect"`` (default), ``"replicate"`` or ``"circular"`` (exact).
    :param int max_iter: iterations of the least-squares pseudo-inverse (non-circular padding).
    :param str device: device of the kernel.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .deblur import motion_kernel

    name = "motion-deblur"
    c, h, w = need_shape(shape, name)
    if not intensity > 0 or not length_scale > 0:
        raise ValueError(f"{name}: intensity and length_scale must be > 0, got "
                         f"{intensity} and {length_scale}")
    size = _kernel_size(name, kernel_size, min(h, w), scale_with_size)
    kernel = motion_kernel(size, float(intensity), float(length_scale), int(seed))
    op = _blur(name, kernel, (c, h, w), padding, sigma_y, max_iter)
    op.kernel_size = size
    return _finish(op, dtype, device)


def sr_avgpool(shape: Shape = None, sigma_y: float = 0.0, factor: int = 4, device: str = "cpu",
               dtype: str = "float32") -> Any:
    r"""Super-resolution by average pooling: each ``factor x factor`` block becomes its mean.

    .. math::

        y = S_{\text{avg}}\, x + \sigma_y n

    The SR operator of the DDRM and ProjDiff papers, decomposable (deepinv's
    :class:`~deepinv.physics.DecomposablePhysics`, an explicit SVD: DDRM runs on it):
    ``A A^T = I / factor^2``, ``A^+ y`` repeats each value over its block, the projection is
    exact. No anti-aliasing filter (unlike ``super-resolution``'s bicubic one).

    :param tuple[int] shape: ``(C, H, W)``; ``factor`` must divide ``H`` and ``W``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param int factor: the block side (4).
    :param str device: device of the operator's buffers.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .decomposable import AveragePoolingSR

    name = "sr-avgpool"
    c, h, w = need_shape(shape, name)
    factor = _downsampling_factor(name, factor, h, w)
    op = AveragePoolingSR((c, h, w), factor, dtype=as_dtype(dtype), noise_model=gaussian_noise(sigma_y))
    return _finish(op, dtype, device)


def separable_gaussian_blur(shape: Shape = None, sigma_y: float = 0.0, kernel_std: float = 10.0,
                            kernel_size: int = 5, scale_with_size: bool = True,
                            svd_threshold: float = 3e-2, drop_last_tap: bool = True,
                            device: str = "cpu", dtype: str = "float32") -> Any:
    r"""Separable Gaussian blur with a zero boundary, the DDRM and ProjDiff papers' deblurring.

    .. math::

        y = M_H\, x\, M_W^{\top} + \sigma_y n, \qquad M[i, j] = k[j - i + \lfloor K/2 \rfloor]

    The 1-D kernel ``k`` is ``exp(-u^2 / (2 s^2))`` at ``u = -K//2 ... K//2``, normalised:
    the authors' ``sigma = 10`` and ``K = 5`` taps at 256 x 256 (nearly flat), both scaled by
    ``min(H, W) / 256`` with ``scale_with_size`` (the size to the nearest odd, at least 3:
    3 taps, std 1.25 at 32 x 32). Decomposable (deepinv's
    :class:`~deepinv.physics.DecomposablePhysics`; DDRM runs on it): the SVD is that of the
    two 1-D matrices, whose singular values below ``svd_threshold`` (the authors' 3e-2) are
    set to 0 in the operator itself, as their code does: the measurement, ``A^+`` and the
    projection (exact) all use the truncated SVD. ``drop_last_tap`` (default, the authors'
    matrix: ``j`` runs over ``[i - K//2, i + K//2)``, so the kernel's last tap is left out);
    ``false`` uses every tap, a symmetric blur.

    :param tuple[int] shape: ``(C, H, W)``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param float kernel_std: the 1-D kernel's standard deviation in pixels (at 256 when scaled).
    :param int kernel_size: its taps (at 256 when scaled; odd otherwise).
    :param bool scale_with_size: scale ``kernel_std`` and ``kernel_size`` by ``min(H, W) / 256``.
    :param float svd_threshold: 1-D singular values below this are set to 0 (0: none).
    :param bool drop_last_tap: leave out the kernel's last tap, as the authors' matrix does.
    :param str device: device of the operator's buffers.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .decomposable import SeparableBlur, gaussian_taps

    name = "separable-gaussian-blur"
    c, h, w = need_shape(shape, name)
    if not kernel_std > 0:
        raise ValueError(f"{name}: kernel_std must be > 0 (pixels), got {kernel_std}")
    if not 0 <= svd_threshold < 1:
        raise ValueError(f"{name}: svd_threshold must be in [0, 1) (1-D singular values below it "
                         f"are set to 0; 0.03 in the authors' code), got {svd_threshold}")
    size = _kernel_size(name, kernel_size, min(h, w), scale_with_size)
    if size // 2 >= min(h, w):
        raise ValueError(f"{name}: kernel_size {size} is too large for a {h}x{w} image; use "
                         f"kernel_size <= {2 * min(h, w) - 1}")
    std = scaled(float(kernel_std), min(h, w), scale_with_size)
    op = SeparableBlur((c, h, w), gaussian_taps(std, size), threshold=float(svd_threshold),
                       drop_last_tap=bool(drop_last_tap), dtype=as_dtype(dtype),
                       noise_model=gaussian_noise(sigma_y))
    op.kernel_std, op.kernel_size = std, size
    return _finish(op, dtype, device)


def phase_retrieval(shape: Shape = None, sigma_y: float = 0.0, oversampling: float = 1.5,
                    device: str = "cpu", dtype: str = "float32") -> Any:
    r"""Fourier phase retrieval: magnitude of the FFT of the zero-padded signal (nonlinear).

    .. math::

        y = |\mathcal{F}(P x)| + \sigma_y n

    :math:`P` pads each spatial axis to ``oversampling`` times its length (1.5: a 256 x 256
    image becomes 384 x 384, a quarter of the side on each side, as the DPS, DCDP and ProjDiff
    codes pad for their ``oversample = 2``), the signal centred; :math:`\mathcal{F}` is the orthonormal FFT
    per channel. ``A_vjp`` by autograd; ``A_dagger`` is a zero-phase initialisation, not an
    inverse; ``project`` is one error-reduction step (magnitude replaced by ``y``, real part,
    crop), which never increases the magnitude misfit but is not an exact projection.

    :param tuple[int] shape: ``(C, *spatial)``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param float oversampling: padded over original length per axis, >= 1.
    :param str device: unused (no buffers); accepted for uniformity.
    :param str dtype: unused (no buffers); accepted for uniformity.
    """
    from .phase_retrieval import FourierPhaseRetrieval

    name = "phase-retrieval"
    shape = need_shape(shape, name, kind="any")
    if not oversampling >= 1:
        raise ValueError(f"{name}: oversampling must be >= 1 (padded length over signal "
                         f"length), got {oversampling}")
    op = FourierPhaseRetrieval(shape, oversampling=float(oversampling),
                               noise_model=gaussian_noise(sigma_y))
    return _finish(op, dtype, device)


def denoising(shape: Shape = None, sigma_y: float = 0.0, device: str = "cpu",
              dtype: str = "float32") -> Any:
    r"""Denoising: the identity operator, :math:`y = x + \sigma_y n`.

    deepinv's :class:`~deepinv.physics.Denoising`. The projection is exact (it returns
    :math:`y`). Set ``sigma_y`` (0 by default, like every operator here).

    :param tuple[int] shape: any; unused.
    :param float sigma_y: noise standard deviation (signals in [-1, 1]).
    :param str device: device of the noise model.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .denoising import Denoising

    op = Denoising(noise_model=gaussian_noise(sigma_y))
    return _finish(op, dtype, device)


#: Largest matrix (entries) compressed-sensing builds: 2**26 (256 MiB in float32).
MAX_CS_ENTRIES = 2**26


def compressed_sensing(shape: Shape = None, sigma_y: float = 0.0, ratio: float = 0.25,
                       seed: int = 0, channelwise: bool = False,
                       signal_shape: Sequence[int] | None = None, device: str = "cpu",
                       dtype: str = "float32") -> Any:
    r"""Compressed sensing: :math:`y = A\,\mathrm{vec}(x) + \sigma_y n` with a seeded Gaussian matrix.

    :math:`A` is :math:`m \times n` with :math:`m = \mathrm{round}(\text{ratio} \cdot n)`,
    entries :math:`\mathcal{N}(0, 1/m)` drawn in float64 from a CPU generator seeded with
    ``seed`` (the same matrix for every dtype and device); deepinv's
    :class:`~deepinv.physics.CompressedSensing`. The pseudo-inverse is stored, so the
    projection is exact. The matrix is dense: signals of up to a few thousand entries
    (32 x 32 RGB: n = 3072); ``channelwise = true`` uses one smaller matrix per channel.

    A measurement vector does not say the signal's shape: to restore a given measurement,
    name it in ``signal_shape`` (the shape rule checks ``m`` against it).

    :param tuple[int] shape: ``(C, *spatial)``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param float ratio: measurements over unknowns, in (0, 1].
    :param int seed: seed of the matrix.
    :param bool channelwise: apply the same matrix to each channel.
    :param list[int] signal_shape: the signal shape ``(C, *spatial)`` of a given measurement
        (optional; when ``shape`` is given too they must agree).
    :param str device: device of the matrices.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .compressed_sensing import CompressedSensing

    name = "compressed-sensing"
    shape = need_shape(shape if shape is not None else signal_shape, name, kind="any")
    if signal_shape is not None and tuple(need_shape(signal_shape, name, kind="any")) != shape:
        raise ValueError(f"{name}: signal_shape = {list(signal_shape)} but the signal has shape "
                         f"{list(shape)}; drop signal_shape or make it {list(shape)}")
    if not 0 < ratio <= 1:
        raise ValueError(f"{name}: ratio (measurements over unknowns) must be in (0, 1], "
                         f"got {ratio}")
    n = 1
    for s in shape[1:] if channelwise else shape:
        n *= s
    m = max(1, int(round(ratio * n)))
    if m * n > MAX_CS_ENTRIES:
        raise ValueError(f"{name}: a dense {m}x{n} matrix for shape {shape} is too large "
                         f"({m * n:,} entries, limit {MAX_CS_ENTRIES:,}); use smaller signals, "
                         "a lower ratio or channelwise = true")
    op = CompressedSensing(m, shape, channelwise=bool(channelwise), rng=seeded(seed),
                           noise_model=gaussian_noise(sigma_y))
    op = _finish(op, dtype, device)
    op.dtype = as_dtype(dtype)
    return op


def _check_sources(name: str, sources: int | None, shape: tuple[int, ...]) -> None:
    if sources is None:
        return
    if isinstance(sources, bool) or int(sources) != sources or sources < 1:
        raise ValueError(f"{name}: sources must be a positive integer, got {sources!r}")
    if int(sources) != shape[0]:
        raise ValueError(f"{name}: sources = {sources} but the signal has {shape[0]} channels "
                         f"(shape {list(shape)}); make sources = {shape[0]} or drop it")


def mixture(shape: Shape = None, sigma_y: float = 0.0, sources: int | None = None,
            device: str = "cpu", dtype: str = "float32") -> Any:
    r"""Source separation: ``K`` sources stacked as channels, observed as their sum.

    .. math::

        y = \sum_{k=1}^{K} x_k + \sigma_y n \quad \text{(shape (B, 1, *spatial))}

    Adjoint: repeat; pseudo-inverse: ``y / K`` on every channel; projection (exact):
    :math:`x + (y - \sum_k x_k)/K` on every channel; closed-form proximal step.

    ``sources`` is ``K``, the channel count of ``shape`` when not given: a mixture
    ``(1, L)`` alone does not say how many stems it holds, so restoring a given mixture needs
    it (``sources = 4`` for the shipped four-stem prior).

    :param tuple[int] shape: ``(K, *spatial)``, e.g. ``(4, L)`` for four stems.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param int sources: the number of sources ``K`` (must match ``shape`` when both are given).
    :param str device: unused (no buffers); accepted for uniformity.
    :param str dtype: unused (no buffers); accepted for uniformity.
    """
    from .mixture import Mixture

    shape = need_shape(shape, "mixture", kind="any")
    _check_sources("mixture", sources, shape)
    op = Mixture(shape[0], noise_model=gaussian_noise(sigma_y))
    return _finish(op, dtype, device)


def source_masking(shape: Shape = None, sigma_y: float = 0.0, known: Sequence[int] = (0, 1),
                   sources: int | None = None, device: str = "cpu",
                   dtype: str = "float32") -> Any:
    r"""Partial generation: the ``known`` stems (channels) are observed, the rest generated.

    .. math::

        y = x_{\mathcal{K}} + \sigma_y n \quad \text{(shape (B, |K|, *spatial))}

    Adjoint and pseudo-inverse put ``y`` back in the known channels (zeros elsewhere); the
    projection (exact) replaces the known channels of ``x`` by ``y``.

    :param tuple[int] shape: ``(C, *spatial)``, e.g. ``(4, L)``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param list[int] known: indices of the known channels (distinct, in ``[0, C)``).
    :param int sources: the number of stems ``C`` (must match ``shape`` when both are given;
        restoring a given measurement of the known stems needs it).
    :param str device: unused (no buffers); accepted for uniformity.
    :param str dtype: unused (no buffers); accepted for uniformity.
    """
    from .source_masking import SourceMasking

    name = "source-masking"
    shape = need_shape(shape, name, kind="any")
    _check_sources(name, sources, shape)
    channels = shape[0]
    if isinstance(known, (int, str)) or not all(
            isinstance(k, int) and not isinstance(k, bool) for k in known):
        raise ValueError(f"{name}: known must be a list of channel indices, e.g. known = [0, 1], "
                         f"got {known!r}")
    known = list(known)
    bad = [k for k in known if not 0 <= k < channels]
    if not known or bad or len(set(known)) != len(known):
        raise ValueError(f"{name}: known must list distinct channel indices in [0, {channels - 1}] "
                         f"for a signal with {channels} channels, got {known}")
    op = SourceMasking(channels, known, noise_model=gaussian_noise(sigma_y))
    return _finish(op, dtype, device)
