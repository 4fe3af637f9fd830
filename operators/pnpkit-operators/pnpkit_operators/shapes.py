"""The signal shape each registered operator maps to a given measurement shape.

Each rule is ``f(measurement_shape, **settings) -> signal_shape`` (shapes without the batch
axis), registered as the operator's ``signal_shape`` metadata and called by
:func:`pnpkit.operators.infer_signal_shape` with the settings it names (their defaults are
the factories' defaults). A rule raises :class:`ValueError` naming both shapes and the
reason when no signal gives that measurement. This module imports nothing but the standard
library: the pipeline calls it before any operator is built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Shape = tuple[int, ...]


def _fmt(shape: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _none(operator: str, measurement: Sequence[int], reason: str) -> ValueError:
    return ValueError(f"{operator}: no signal gives a measurement of shape {_fmt(measurement)}; "
                      f"{reason}")


def _image(operator: str, measurement: Sequence[int]) -> Shape:
    m = tuple(int(s) for s in measurement)
    if len(m) != 3:
        raise _none(operator, m, "it must be an image (C, H, W), e.g. (3, 64, 96)")
    return m


def _positive_int(value: Any, setting: str, operator: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value \
            or value < 1:
        raise ValueError(f"{operator}: {setting} must be a positive integer, got {value!r}")
    return int(value)


def super_resolution(measurement_shape: Sequence[int], factor: int = 4) -> Shape:
    """``(C, h, w) -> (C, factor h, factor w)``: the high-resolution image of a low-resolution one.

    >>> super_resolution((1, 64, 96))
    (1, 256, 384)
    """
    name = f"super-resolution (factor {factor})"
    factor = _positive_int(factor, "factor", "super-resolution")
    c, h, w = _image(name, measurement_shape)
    return (c, h * factor, w * factor)


#: The DCDP code's box, ``[100:200, 100:200]`` of a 256 x 256 image, as fractions of the side.
BOX_FRACTION = 100 / 256
BOX_POSITION = (100 / 256, 100 / 256)
_CENTRE = ("centre", "center")


def box_placement(height: int, width: int, box_fraction: float = BOX_FRACTION,
                  position: Any = BOX_POSITION) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of the missing box of ``box-inpainting`` on a ``height x width`` image.

    The box is ``round(H * box_fraction)`` by ``round(W * box_fraction)`` pixels (at least 1).
    ``position = [top, left]`` puts its top-left corner at ``round(H * top)``,
    ``round(W * left)`` (fractions of the sides; the default ``[100/256, 100/256]`` is the DCDP
    code's box, rows and columns 100:200 at 256 x 256); ``position = "centre"`` centres it
    (corner at ``((H - h) // 2, (W - w) // 2)``).

    >>> box_placement(256, 256)
    (100, 100, 100, 100)
    >>> box_placement(256, 256, position="centre")
    (78, 78, 100, 100)
    """
    name = "box-inpainting"
    if isinstance(box_fraction, bool) or not isinstance(box_fraction, (int, float)) \
            or not 0 < box_fraction < 1:
        raise ValueError(f"{name}: box_fraction must be in (0, 1) (box side over image side; "
                         f"100/256 = {100 / 256:.4f} in the papers), got {box_fraction!r}")
    h = max(1, int(round(height * box_fraction)))
    w = max(1, int(round(width * box_fraction)))
    if isinstance(position, str) and position.lower() in _CENTRE:
        return (height - h) // 2, (width - w) // 2, h, w
    hint = (f"position must be [top, left] (the box's top-left corner as fractions of the height "
            f"and width; [{100 / 256:.6f}, {100 / 256:.6f}] = 100/256, the DCDP code's box) or "
            f"\"centre\"")
    if isinstance(position, (str, bytes)) or not isinstance(position, Sequence) or len(position) != 2 \
            or not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in position):
        raise ValueError(f"{name}: {hint}, got {position!r}")
    top_f, left_f = (float(p) for p in position)
    if not (0 <= top_f < 1 and 0 <= left_f < 1):
        raise ValueError(f"{name}: {hint}, each in [0, 1), got {list(position)}")
    top, left = int(round(height * top_f)), int(round(width * left_f))
    if top + h > height or left + w > width:
        raise ValueError(f"{name}: the {h}x{w} box at row {top}, column {left} does not fit the "
                         f"{height}x{width} image; use position = [top, left] with top <= "
                         f"{(height - h) / height:.4f} and left <= {(width - w) / width:.4f}, "
                         f"a smaller box_fraction, or position = \"centre\"")
    return top, left, h, w


def box_inpainting(measurement_shape: Sequence[int], box_fraction: float = BOX_FRACTION,
                   position: Any = BOX_POSITION) -> Shape:
    """``(C, H, W) -> (C, H, W)``: the measurement is the image with its box zeroed; the box
    must fit the image (:func:`box_placement`)."""
    c, height, width = _image("box-inpainting", measurement_shape)
    box_placement(height, width, box_fraction, position)
    return (c, height, width)


def sr_avgpool(measurement_shape: Sequence[int], factor: int = 4) -> Shape:
    """``(C, h, w) -> (C, factor h, factor w)``: the image whose ``factor x factor`` block means
    it holds.

    >>> sr_avgpool((3, 8, 8))
    (3, 32, 32)
    """
    name = f"sr-avgpool (factor {factor})"
    factor = _positive_int(factor, "factor", "sr-avgpool")
    c, h, w = _image(name, measurement_shape)
    return (c, h * factor, w * factor)


def separable_gaussian_blur(measurement_shape: Sequence[int]) -> Shape:
    """``(C, H, W) -> (C, H, W)``: a same-size blur (zero boundary)."""
    return _image("separable-gaussian-blur", measurement_shape)


def gaussian_deblur(measurement_shape: Sequence[int]) -> Shape:
    """``(C, H, W) -> (C, H, W)``: a same-size blur (reflect, replicate or circular padding)."""
    return _image("gaussian-deblur", measurement_shape)


def motion_deblur(measurement_shape: Sequence[int]) -> Shape:
    """``(C, H, W) -> (C, H, W)``: a same-size blur (reflect, replicate or circular padding)."""
    return _image("motion-deblur", measurement_shape)


def blur(measurement_shape: Sequence[int]) -> Shape:
    """``(C, H, W) -> (C, H, W)``: a same-size blur by the given kernel."""
    return _image("blur", measurement_shape)


def inpainting(measurement_shape: Sequence[int]) -> Shape:
    """``(C, H, W) -> (C, H, W)``: the image with its unobserved pixels zeroed (the mask is
    checked against the image when the operator is built)."""
    return _image("inpainting", measurement_shape)


def _any(operator: str, measurement: Sequence[int]) -> Shape:
    m = tuple(int(s) for s in measurement)
    if len(m) < 2:
        raise _none(operator, m, "it must be (C, *spatial), e.g. (3, 64, 96) or (1, 65536)")
    return m


def random_inpainting(measurement_shape: Sequence[int]) -> Shape:
    """``(C, *spatial) -> (C, *spatial)``, images and audio alike."""
    return _any("random-inpainting", measurement_shape)


def denoising(measurement_shape: Sequence[int]) -> Shape:
    """``(C, *spatial) -> (C, *spatial)``: the identity."""
    return _any("denoising", measurement_shape)


def _unpadded(padded: int, oversampling: float) -> int | None:
    """The side ``n`` with ``max(n, round(oversampling * n)) == padded`` (the operator's rule;
    unique for ``oversampling >= 1``), or None."""
    guess = padded / oversampling
    for n in range(max(1, math.floor(guess) - 2), math.ceil(guess) + 3):
        if max(n, int(round(oversampling * n))) == padded:
            return n
    return None


def phase_retrieval(measurement_shape: Sequence[int], oversampling: float = 1.5) -> Shape:
    """``(C, *padded) -> (C, *spatial)``: the signal whose zero-padded Fourier magnitude it is,
    each side ``n`` padded to ``round(oversampling * n)``.

    >>> phase_retrieval((1, 96, 144))
    (1, 64, 96)
    """
    if not isinstance(oversampling, (int, float)) or not oversampling >= 1:
        raise ValueError(f"phase-retrieval: oversampling must be >= 1 (padded length over "
                         f"signal length), got {oversampling!r}")
    name = f"phase-retrieval (oversampling {oversampling:g})"
    m = _any(name, measurement_shape)
    sides = [_unpadded(p, float(oversampling)) for p in m[1:]]
    bad = [p for p, n in zip(m[1:], sides, strict=True) if n is None]
    if bad:
        raise _none(name, m, f"each spatial side is round({oversampling:g} x the signal's side), "
                             f"and no side gives {', '.join(map(str, bad))}")
    return (m[0], *(int(n) for n in sides if n is not None))


def compressed_sensing(measurement_shape: Sequence[int], ratio: float = 0.25,
                       channelwise: bool = False,
                       signal_shape: Sequence[int] | None = None) -> Shape:
    """The signal shape of a compressed-sensing measurement: only from the ``signal_shape``
    setting (``m = round(ratio * n)`` values say neither the channels nor the image size),
    checked against ``m``.

    >>> compressed_sensing((256,), signal_shape=[1, 32, 32])
    (1, 32, 32)
    """
    name = f"compressed-sensing (ratio {ratio:g})"
    m = tuple(int(s) for s in measurement_shape)
    form = "(C, m)" if channelwise else "(m,)"
    if len(m) != (2 if channelwise else 1):
        raise _none(name, m, f"with channelwise = {str(bool(channelwise)).lower()} it is a "
                             f"vector of shape {form}")
    if signal_shape is None:
        raise ValueError(f"{name}: the signal shape cannot be inferred from a measurement of "
                         f"shape {_fmt(m)} (its m = round(ratio x n) values say neither the "
                         "channels nor the size); set [operator] signal_shape = [C, H, W], "
                         "e.g. [1, 32, 32]")
    shape = tuple(_positive_int(s, "signal_shape", "compressed-sensing") for s in signal_shape)
    n = math.prod(shape[1:] if channelwise else shape)
    expected = max(1, int(round(ratio * n)))
    if (channelwise and (m[0] != shape[0] or m[1] != expected)) or \
            (not channelwise and m[0] != expected):
        want = (shape[0], expected) if channelwise else (expected,)
        raise _none(name, m, f"signal_shape = {list(shape)} gives {_fmt(want)}")
    return shape


def _sources(operator: str, sources: Any, measurement: Shape, example: str) -> int:
    if sources is None:
        raise ValueError(f"{operator}: the number of sources cannot be read from a measurement "
                         f"of shape {_fmt(measurement)}; set [operator] sources = K ({example})")
    return _positive_int(sources, "sources", operator)


def mixture(measurement_shape: Sequence[int], sources: int | None = None) -> Shape:
    """``(1, *spatial) -> (sources, *spatial)``: the stems of a mixture.

    >>> mixture((1, 65536), sources=4)
    (4, 65536)
    """
    m = _any("mixture", measurement_shape)
    if m[0] != 1:
        raise _none("mixture", m, f"a mixture has one channel, not {m[0]} (down-mix a stereo "
                                  "file to mono)")
    k = _sources("mixture", sources, m, "4 for the shipped four-stem prior")
    return (k, *m[1:])


def source_masking(measurement_shape: Sequence[int], known: Sequence[int] = (0, 1),
                   sources: int | None = None) -> Shape:
    """``(len(known), *spatial) -> (sources, *spatial)``: every stem, given the known ones.

    >>> source_masking((2, 65536), known=[0, 2], sources=4)
    (4, 65536)
    """
    m = _any("source-masking", measurement_shape)
    known = list(known)
    if m[0] != len(known):
        raise _none("source-masking", m, f"it holds the {len(known)} known stems {known}, so it "
                                         f"has {len(known)} channels, not {m[0]}")
    k = _sources("source-masking", sources, m, "the stems of the signal, e.g. 4")
    if known and max(known) >= k:
        raise ValueError(f"source-masking: known = {known} names stem {max(known)} but sources = "
                         f"{k}; use indices in [0, {k - 1}]")
    return (k, *m[1:])
