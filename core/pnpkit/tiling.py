"""Overlapping tiles and windows: run a prior piece by piece and blend the pieces back.

- :func:`tiled` wraps a prior so that its network runs on overlapping square tiles of a
  picture (or windows of a 1-D signal), for a network that cannot run at full size (not
  convolutional: attention at full resolution, a fixed input size) or a picture too large for
  memory. **Memory**: the network's activations are bounded to one tile's (B x C x tile x
  tile, whatever the picture's size); only the blend's output and weight map grow with it.
- :func:`window_starts` and :func:`crossfade` cut a long 1-D signal into overlapping windows
  and cross-fade the solved windows back (the pipeline separates a whole song so, in windows
  of the prior's :attr:`~pnpkit.priors.Prior.fixed_shape`).

**Layout.** Along an axis of length ``L``, the fewest windows of length ``W`` overlapping by
at least ``O`` (:func:`window_starts`), evenly spread from 0 to ``L - W`` (the last one
flush with the end); tiles combine the starts of each axis, in row-major order.

**Blend.** Each piece has a separable weight: 1 inside, and an equal-gain raised-cosine ramp
(:math:`\\sin^2` over ``O`` samples; a fade-out and a fade-in over the same samples sum to 1)
at each side that meets another piece, none at the signal's border. The pieces are averaged
with these weights normalised sample by sample, so that they sum to exactly 1 also where the
last window overlaps more or several meet: a running weighted mean in the layout's order,

.. math:: W \\leftarrow W + w, \\qquad m \\leftarrow m + \\frac{w}{W}\\,(p - m),

so where all pieces agree (a constant signal, a pointwise network) the result is that value
bit for bit, and it does not depend on the order in which the pieces were computed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from .priors import DenoiserPrior, DiffusionPrior, Prior

MIN_TILE = 8  #: the smallest tile: below it, ramps and borders are most of a tile


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_tile(tile: Any, overlap: Any, spatial_shape: Sequence[int] | None = None) -> None:
    """Raise ``ValueError``, in one line naming the fix, for tiling settings that cannot work.

    :param int tile: the tile's side, at least :data:`MIN_TILE`.
    :param int overlap: the least overlap of neighbouring tiles, ``0 <= overlap < tile``.
    :param tuple spatial_shape: the signal's spatial shape (H, W) or (L,); every side must be
        at least ``tile`` (``None``: check the settings alone).

    >>> check_tile(96, 24, (64, 80))
    Traceback (most recent call last):
    ...
    ValueError: [prior] tile = 96 is larger than the image (64 x 80); use tile <= 64 or drop it
    """
    if not _whole(tile):
        raise ValueError(f"[prior] tile must be a whole number, got {tile!r}; use e.g. tile = 64")
    if tile < MIN_TILE:
        raise ValueError(f"[prior] tile = {tile} is too small; use tile >= {MIN_TILE} or drop it")
    if not _whole(overlap) or not 0 <= overlap < tile:
        raise ValueError(f"[prior] overlap = {overlap!r} must be a whole number from 0 to tile - 1 "
                         f"= {tile - 1}; use e.g. overlap = {tile // 4} (the default, tile // 4)")
    if spatial_shape is not None and tile > min(spatial_shape):
        size = " x ".join(str(n) for n in spatial_shape)
        what = f"the image ({size})" if len(spatial_shape) > 1 else f"the signal ({size} samples)"
        raise ValueError(f"[prior] tile = {tile} is larger than {what}; "
                         f"use tile <= {min(spatial_shape)} or drop it")


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """The starts of windows of ``window`` samples that cover ``length``, overlapping by at least
    ``overlap``: the fewest that do, evenly spread, the last one flush with the end.

    :param int length: the signal's length.
    :param int window: the window's length, at most ``length``.
    :param int overlap: the least overlap of neighbours, ``0 <= overlap < window``.
    :raises ValueError: for a window longer than the signal, or an overlap out of range.

    >>> window_starts(10, 4, 1), window_starts(11, 4, 1), window_starts(4, 4, 1)
    ([0, 3, 6], [0, 2, 4, 7], [0])
    """
    if not all(_whole(v) for v in (length, window, overlap)) or window <= 0:
        raise ValueError(f"window_starts needs whole numbers, got {length!r}, {window!r}, "
                         f"{overlap!r}")
    if window > length:
        raise ValueError(f"a window of {window} samples is longer than the signal ({length}); "
                         f"use a window of at most {length}, or a longer signal")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap = {overlap} must be from 0 to window - 1 = {window - 1}")
    span = length - window
    if span == 0:
        return [0]
    gaps = -(-span // (window - overlap))  # ceil: each gap at most window - overlap
    return [i * span // gaps for i in range(gaps + 1)]


def _axis_weight(start: int, size: int, length: int, overlap: int) -> Tensor:
    """A piece's weight along one axis: ramps where it meets another piece (float64)."""
    w = torch.ones(size, dtype=torch.float64)
    n = min(overlap, size)
    # sin^2 at sample centres: never 0, and ramp + flipped ramp = 1 (equal gain)
    ramp = torch.sin(0.5 * math.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n).square()
    if n and start > 0:
        w[:n] *= ramp
    if n and start + size < length:
        w[size - n:] *= ramp.flip(0)
    return w


class _Blend:
    """The running weighted mean of pieces of a (B, C, *spatial) signal (see the module)."""

    def __init__(self, spatial: Sequence[int], overlap: int) -> None:
        self.spatial, self.overlap = tuple(int(s) for s in spatial), int(overlap)
        self.mean: Tensor | None = None
        self.total: Tensor | None = None

    def add(self, starts: Sequence[int], piece: Tensor) -> None:
        sizes = tuple(int(s) for s in piece.shape[2:])
        box = tuple(slice(s, s + n) for s, n in zip(starts, sizes, strict=True))
        if any(b.start < 0 or b.stop > n for b, n in zip(box, self.spatial, strict=True)):
            raise ValueError(f"a piece of {sizes} at {tuple(starts)} lies outside {self.spatial}")
        if self.mean is None or self.total is None:
            # at least float32, so that float16 pieces blend without losing their last bits
            dtype = torch.promote_types(piece.dtype, torch.float32)
            self.mean = piece.new_zeros((*piece.shape[:2], *self.spatial), dtype=dtype)
            self.total = torch.zeros(self.spatial, device=piece.device, dtype=dtype)
        w = torch.ones((), dtype=torch.float64)
        for axis, (s, n, length) in enumerate(zip(starts, sizes, self.spatial, strict=True)):
            view = [n if a == axis else 1 for a in range(len(sizes))]
            w = w * _axis_weight(s, n, length, self.overlap).view(view)
        w = w.to(device=piece.device, dtype=self.mean.dtype)
        self.total[box] += w
        full = (slice(None), slice(None), *box)
        m = self.mean[full]
        self.mean[full] = m + (w / self.total[box]) * (piece.to(self.mean.dtype) - m)

    def result(self, dtype: torch.dtype) -> Tensor:
        if self.mean is None or self.total is None:
            raise ValueError("nothing to blend: no pieces were given")
        if not bool(self.total.all()):
            missing = (self.total == 0).nonzero()[0].tolist()
            raise ValueError(f"the pieces do not cover {self.spatial}: nothing at {missing}")
        return self.mean.to(dtype)


def crossfade(chunks: list[Tensor], starts: list[int], length: int, overlap: int) -> Tensor:
    """Overlap-add solved windows (B, C, window) of a 1-D signal back into (B, C, length).

    Each chunk fades in over its first ``overlap`` samples (unless it starts the signal) and
    out over its last (unless it ends it), equal-gain raised-cosine fades whose weights sum to
    exactly 1 at every sample (see the module).

    :param list chunks: the solved windows, (B, C, n) each.
    :param list starts: where each begins, e.g. from :func:`window_starts`.
    :param int length: the whole signal's length.
    :param int overlap: the length of the fades.
    :raises ValueError: when chunks and starts differ in number, or samples are left uncovered.

    >>> x, starts = torch.full((1, 2, 10), 0.3), window_starts(10, 4, 2)
    >>> torch.equal(crossfade([x[..., s:s + 4] for s in starts], starts, 10, 2), x)
    True
    """
    if len(chunks) != len(starts):
        raise ValueError(f"crossfade got {len(chunks)} chunks but {len(starts)} starts")
    blend = _Blend((length,), overlap)
    for chunk, start in zip(chunks, starts, strict=True):
        blend.add((start,), chunk)
    return blend.result(chunks[0].dtype)


def tile_starts(spatial_shape: Sequence[int], tile: int, overlap: int) -> list[tuple[int, ...]]:
    """The start of every tile, in row-major order (:func:`window_starts` along each axis).

    >>> tile_starts((40, 32), 16, 4)
    [(0, 0), (0, 8), (0, 16), (12, 0), (12, 8), (12, 16), (24, 0), (24, 8), (24, 16)]
    """
    check_tile(tile, overlap, spatial_shape)
    return list(itertools.product(*(window_starts(int(n), tile, overlap) for n in spatial_shape)))


def blend(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int,
          order: Iterable[int] | None = None) -> Tensor:
    """``fn`` applied tile by tile to ``x`` (B, C, *spatial) and the tiles blended back.

    :param callable fn: maps a tile (B, C, tile, ...) to an output of the same shape.
    :param torch.Tensor x: the signals.
    :param int tile: the tiles' side.
    :param int overlap: their least overlap.
    :param list order: the order the tiles are computed in (a permutation of their indices in
        :func:`tile_starts`; default: that order). They are blended in the layout's order
        (an output computed early waits for its turn), so the result is the same at every order.
    """
    starts = tile_starts(tuple(x.shape[2:]), tile, overlap)
    todo = list(range(len(starts))) if order is None else [int(i) for i in order]
    if sorted(todo) != list(range(len(starts))):
        raise ValueError(f"order must be a permutation of the {len(starts)} tiles' indices")
    out = _Blend(tuple(x.shape[2:]), overlap)
    done: dict[int, Tensor] = {}
    turn = 0
    for i in todo:
        box = (slice(None), slice(None), *(slice(s, s + tile) for s in starts[i]))
        done[i] = fn(x[box])
        while turn in done:
            out.add(starts[turn], done.pop(turn))
            turn += 1
    return out.result(x.dtype)


class _Tiled:
    """What the tiled priors share: the wrapped prior, the settings, attribute look-ups."""

    def __init__(self, prior: Prior, tile: int, overlap: int) -> None:
        self.prior, self.tile, self.overlap = prior, tile, overlap

    def __getattr__(self, name: str) -> Any:
        # only reached for what the wrapper lacks (shape, name, device, encode, ...)
        if name == "prior":
            raise AttributeError(name)
        return getattr(self.prior, name)

    def _blend(self, fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        before = self.prior.nfe
        try:
            return blend(fn, x, self.tile, self.overlap)
        finally:
            self.prior.nfe = before  # the whole call counts once, on the wrapper

    def __repr__(self) -> str:
        return f"tiled({self.prior!r}, tile={self.tile}, overlap={self.overlap})"


class TiledDiffusionPrior(_Tiled, DiffusionPrior):
    """A diffusion prior whose noise prediction is computed on overlapping tiles (see :func:`tiled`)."""

    prior: DiffusionPrior

    def __init__(self, prior: DiffusionPrior, tile: int, overlap: int) -> None:
        DiffusionPrior.__init__(self, prior.alphas_cumprod, prior.prediction_type, prior.clip,
                                getattr(prior, "below_floor", "score"))
        _Tiled.__init__(self, prior, tile, overlap)

    def network(self, x_t: Tensor, t: Tensor) -> Tensor:
        # the wrapped prior's run_network: its precision applies to every tile
        return self._blend(lambda part: self.prior.run_network(part, t), x_t)

    def eps(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        tt = self._timesteps(t, x_t)
        self.nfe += 1
        return self._blend(lambda part: self.prior.eps(part, tt), x_t)

    def tweedie_denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        # the wrapped prior's own rule per tile: a continuous-noise prior keeps its levels below
        # the grid's floor; for a grid prior it equals Tweedie on the blended eps (affine in eps)
        self.nfe += 1
        return self._blend(lambda part: self.prior.tweedie_denoise(part, sigma), x)


class TiledDenoiser(_Tiled, DenoiserPrior):
    """A denoiser applied to overlapping tiles (see :func:`tiled`)."""

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        self.nfe += 1
        return self._blend(lambda part: self.prior.denoise(part, sigma), x)


def tiled(prior: Prior, tile: int, overlap: int | None = None) -> Prior:
    """``prior`` with its network run on overlapping tiles of ``tile`` x ``tile``, blended.

    A :class:`~pnpkit.priors.DiffusionPrior` gives a diffusion prior whose ``eps`` (so Tweedie,
    DDIM and ``denoise`` too) blends the wrapped prior's per tile; any other prior, a denoiser
    whose ``denoise`` does. Tiles as :func:`tile_starts` lays them out, blended as the module
    says: the same at every tile order, the untiled result wherever the network is pointwise.
    **NFE**: each call counts one evaluation, whatever the number of tiles (the wrapped prior's
    count is left as it was); it takes the time of one call per tile, and the memory of one.
    Other attributes come from the wrapped prior, untiled (a latent prior's ``encode``).

    :param pnpkit.priors.Prior prior: the prior to wrap.
    :param int tile: the tiles' side (pixels, or samples for 1-D signals), at least 8: the
        prior's :attr:`~pnpkit.priors.Prior.fixed_shape` where it has one.
    :param int overlap: the least overlap of neighbouring tiles (default ``tile // 4``).
    :raises ValueError: for settings :func:`check_tile` refuses, or a tile the prior cannot run.

    >>> from pnpkit.priors import FunctionDenoiser
    >>> half, x = tiled(FunctionDenoiser(lambda x, s: x / 2), tile=16), torch.randn(1, 1, 40, 24)
    >>> torch.equal(half.denoise(x, 0.1), x / 2), half.nfe, half.overlap
    (True, 1, 4)
    """
    if not isinstance(prior, Prior):
        raise TypeError(f"tiled needs a pnpkit Prior, got {type(prior).__name__}")
    if overlap is None and _whole(tile):
        overlap = tile // 4
    check_tile(tile, overlap)
    fixed = prior.fixed_shape
    if fixed is not None and any(s != tile for s in fixed):
        name = getattr(prior, "name", type(prior).__name__)
        size = " x ".join(str(s) for s in fixed)
        fix = f"use tile = {fixed[0]}" if len(set(fixed)) == 1 else "it cannot be tiled in squares"
        raise ValueError(f"prior {name!r} runs at {size} only, not on tiles of {tile}; {fix}")
    assert overlap is not None  # check_tile refused anything else
    if isinstance(prior, DiffusionPrior):
        return TiledDiffusionPrior(prior, tile, overlap)
    return TiledDenoiser(prior, tile, overlap)
