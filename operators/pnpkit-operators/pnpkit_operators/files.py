"""Operators from the user's own files: ``blur`` by a given point-spread function, and
``inpainting`` with a given mask.

A kernel or a mask is a file (``.npy``, read with ``allow_pickle=False``; or an image such
as a PNG, read as greyscale) or an array / tensor passed directly from Python. Paths are
used as given: the pipeline resolves them relative to the configuration file before
passing them. Every bad input is a :class:`ValueError` of one line naming the file and the
fix. Like :mod:`pnpkit_operators.factories`, this module imports torch and deepinv inside
the factories only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import as_dtype, cast_buffers, gaussian_noise, need_shape

Source = str | Path | Any


def _label(source: Source) -> str:
    return f"{str(source)!r}" if isinstance(source, (str, Path)) else "the array given"


def _read_array(source: Source, what: str, operator: str) -> Any:
    """``source`` as a float64 numpy array: a ``.npy`` file, an image file, or array-like."""
    import numpy as np

    if not isinstance(source, (str, Path)):
        try:
            if hasattr(source, "detach"):  # a torch tensor, on any device
                source = source.detach().cpu().double().numpy()
            array = np.asarray(source, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{operator}: the {what} given is not a numeric array ({exc}); "
                             f"pass a 2-D array, a tensor or a file path") from None
        return array
    path = Path(source)
    hint = f"give the path of a PNG or .npy {what} (relative paths are from the configuration file)"
    if not path.is_file():
        raise ValueError(f"{operator}: cannot read the {what} file {str(path)!r} (no such file); "
                         f"{hint}")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise ValueError(
                    f"{operator}: the {what} file {str(path)!r} holds pickled Python objects, "
                    f"which are refused (loading them can run code); save a plain numeric "
                    f"array instead: np.save(path, np.asarray({what}, dtype=float))") from None
            raise ValueError(f"{operator}: cannot read the {what} file {str(path)!r} as a .npy "
                             f"array ({exc}); save it with np.save") from None
        except OSError as exc:
            raise ValueError(f"{operator}: cannot read the {what} file {str(path)!r} ({exc}); "
                             f"{hint}") from None
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{operator}: the {what} file {str(path)!r} holds {array.dtype} "
                             f"values; save a real numeric array (np.save(path, "
                             f"np.asarray({what}, dtype=float)))")
        return array.astype(np.float64)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float greyscale
                bits = {"I;16": 16, "I;16B": 16, "I;16L": 16}.get(img.mode)
                array = np.asarray(img.convert("F"), dtype=np.float64)
                return array / (2**bits - 1) if bits else array
            return np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"{operator}: cannot read the {what} file {str(path)!r} as an image "
                         f"({type(exc).__name__}); {hint}") from None


def _plane(array: Any, what: str, label: str, operator: str) -> Any:
    """The 2-D plane of ``array`` (leading axes of length 1 dropped)."""
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"{operator}: the {what} {label} has shape {tuple(array.shape)}; it must "
                         f"be 2-D (height, width)")
    return array


def read_kernel(source: Source, operator: str = "blur") -> Any:
    """A blur kernel ``(1, 1, kh, kw)`` (float64 tensor) summing to 1, from a file or an array.

    Any 2-D kernel, odd or even sized, square or not; an image file is read as greyscale.
    Negative entries are kept (the kernel is divided by its sum).

    :param source: a ``.npy`` or image path, or a 2-D array / tensor.
    :param str operator: the operator named in the errors.
    :return: (:class:`torch.Tensor`) the normalised kernel.
    """
    import numpy as np
    import torch

    label = _label(source)
    k = _plane(_read_array(source, "kernel", operator), "kernel", label, operator)
    if k.size == 0:
        raise ValueError(f"{operator}: the kernel {label} is empty (shape {tuple(k.shape)}); "
                         f"give a kernel with at least one entry, e.g. a 5x5 PSF")
    if not np.isfinite(k).all():
        raise ValueError(f"{operator}: the kernel {label} has NaN or infinite entries; "
                         f"give finite values")
    if not k.any():
        raise ValueError(f"{operator}: the kernel {label} is all zeros; a PSF needs positive "
                         f"mass (the brightest pixel at the centre of the blur)")
    total = float(k.sum())
    if not total > 0:
        raise ValueError(f"{operator}: the kernel {label} sums to {total:.4g}; it must sum to a "
                         f"positive value to be normalised (negate it if its sign is flipped)")
    return torch.from_numpy(np.ascontiguousarray(k / total)).reshape(1, 1, *k.shape)


def read_mask(source: Source, spatial: Sequence[int], operator: str = "inpainting") -> Any:
    """A mask ``(1, *spatial)`` of 0 and 1 (float tensor), 1 where observed: white, > 0.5.

    :param source: an image or ``.npy`` path, or an array / tensor with values in [0, 1].
    :param tuple[int] spatial: the image's (or signal's) spatial shape, which the mask must have.
    :param str operator: the operator named in the errors.
    :return: (:class:`torch.Tensor`) the mask.
    """
    import numpy as np
    import torch

    label = _label(source)
    array = _read_array(source, "mask", operator)
    spatial = tuple(int(s) for s in spatial)
    while array.ndim > len(spatial) and array.shape[0] == 1:
        array = array[0]
    if tuple(array.shape) != spatial:
        size = " x ".join(map(str, array.shape)) or "a scalar"
        want = " x ".join(map(str, spatial))
        raise ValueError(f"{operator}: the mask {label} is {size} but the image is {want}; "
                         f"give a mask of the image's size {want} (white = observed)")
    mask = np.asarray(array > 0.5, dtype=np.float32)
    if not mask.any():
        raise ValueError(f"{operator}: the mask {label} observes no pixel (nothing above 0.5); "
                         f"white (1) marks the observed pixels, black (0) the missing ones")
    return torch.from_numpy(mask).reshape(1, *spatial)


def blur(shape: Sequence[int] | None = None, sigma_y: float = 0.0, kernel: Source = None,
         padding: str = "reflect", max_iter: int = 100, device: str = "cpu",
         dtype: str = "float32") -> Any:
    r"""Deblurring with a given point-spread function: :math:`y = h * x + \sigma_y n`.

    ``kernel`` is a ``.npy`` file (read with ``allow_pickle=False``), an image file (a PNG,
    read as greyscale) or a 2-D array / tensor; any size, odd or even, square or not, no
    larger than the image. Its centre is the entry ``(kh // 2, kw // 2)`` (the middle one of
    an odd side, the one after the middle of an even side), whatever the padding. It is
    normalised to sum 1. Every channel of a colour image is blurred by the same kernel.
    ``padding`` as for ``gaussian-deblur``: ``"reflect"`` (default: deepinv's
    :class:`~deepinv.physics.Blur`, iterative approximate projection), ``"replicate"`` or
    ``"circular"`` (:class:`~deepinv.physics.BlurFFT`, exact projection).

    :param tuple[int] shape: ``(C, H, W)``.
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param kernel: the point-spread function: a path (``"psf.png"``, ``"psf.npy"``) or an array.
    :param str padding: ``"reflect"`` (default), ``"replicate"`` or ``"circular"`` (exact).
    :param int max_iter: iterations of the least-squares pseudo-inverse (non-circular padding).
    :param str device: device of the kernel.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .deblur import PADDINGS, CircularBlur, ConvolutionBlur
    from .factories import _choice

    name = "blur"
    if kernel is None:
        raise ValueError(f"{name} needs a kernel: kernel = \"psf.png\" or \"psf.npy\" (or an "
                         "array from Python)")
    c, h, w = need_shape(shape, name)
    _choice(padding, PADDINGS, "padding", name)
    k = read_kernel(kernel, name)
    kh, kw = k.shape[-2:]
    if kh > h or kw > w:
        raise ValueError(f"{name}: the kernel {_label(kernel)} is {kh} x {kw}, larger than the "
                         f"{h} x {w} image; crop the kernel to at most {h} x {w}")
    noise = gaussian_noise(sigma_y)
    if padding == "circular":
        op = CircularBlur((c, h, w), k, noise_model=noise)
    else:
        op = ConvolutionBlur(k, padding=padding, noise_model=noise, max_iter=int(max_iter))
    op.kernel_size = (kh, kw)
    return cast_buffers(op, as_dtype(dtype), device)


def inpainting(shape: Sequence[int] | None = None, sigma_y: float = 0.0, mask: Source = None,
               device: str = "cpu", dtype: str = "float32") -> Any:
    r"""Inpainting with a given mask: :math:`y = m \odot x + \sigma_y n`.

    ``mask`` is an image file (a PNG, read as greyscale: white = observed, black = missing,
    thresholded at 0.5), a ``.npy`` file or an array / tensor with values in [0, 1], of the
    image's height and width; one mask for every channel. deepinv's
    :class:`~deepinv.physics.Inpainting`; the projection is exact.

    :param tuple[int] shape: ``(C, H, W)`` (or ``(C, *spatial)`` with an array mask).
    :param float sigma_y: measurement noise standard deviation (signals in [-1, 1]).
    :param mask: the observed pixels: a path (``"mask.png"``) or an array.
    :param str device: device of the mask.
    :param str dtype: ``"float32"`` or ``"float64"``.
    """
    from .inpainting import MaskInpainting

    name = "inpainting"
    if mask is None:
        raise ValueError(f"{name} needs a mask: mask = \"mask.png\" (white = observed), or an "
                         "array from Python")
    shape = need_shape(shape, name, kind="any")
    op = MaskInpainting(shape, read_mask(mask, shape[1:], name),
                        noise_model=gaussian_noise(sigma_y))
    return cast_buffers(op, as_dtype(dtype), device)
