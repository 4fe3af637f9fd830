"""Inpainting: a binary mask shared by every channel (deepinv's :class:`~deepinv.physics.Inpainting`)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from deepinv.physics import Inpainting
from deepinv.physics.generator import BernoulliSplittingMaskGenerator
from torch import Tensor


class MaskInpainting(Inpainting):
    r"""
    Inpainting with a fixed mask :math:`m \in \{0, 1\}^n` shared across channels.

    .. math::

        y = m \odot x

    The operator is its own adjoint and pseudo-inverse, and the projection onto
    :math:`\{x : A x = y\}` is exact: observed pixels are taken from :math:`y`, the others
    kept from :math:`x`,

    .. math::

        P(x) = (1 - m) \odot x + m \odot y.

    :param tuple[int] img_size: ``(C, *spatial)`` of one item.
    :param torch.Tensor mask: mask of shape ``(1, *spatial)``: 1 where observed, 0 where missing.
    :param kwargs: passed to :class:`deepinv.physics.Inpainting` (``noise_model``, ``device``).
    """

    linear = True

    def __init__(self, img_size: tuple[int, ...], mask: Tensor, **kwargs: Any) -> None:
        super().__init__(img_size=tuple(img_size), mask=mask, **kwargs)

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        r"""
        Exact projection :math:`(1 - m) \odot x + m \odot y`.

        :param torch.Tensor x: signal to project.
        :param torch.Tensor y: measurement.
        """
        m = self.mask.to(x.dtype)
        return x * (1 - m) + y.to(x.dtype) * m

    @property
    def missing_fraction(self) -> float:
        """Fraction of the pixels (of one channel) that are not observed."""
        return float(1 - self.mask.float().mean())


def box_mask(shape: tuple[int, ...], box: tuple[int, int],
             corner: tuple[int, int] | None = None) -> Tensor:
    """A ``(1, H, W)`` mask of ones with a ``box = (h, w)`` of zeros (the missing part).

    :param tuple[int] shape: ``(C, H, W)``.
    :param tuple[int] box: height and width of the missing box.
    :param tuple[int] corner: its top-left pixel ``(top, left)``; None centres it.
    """
    _, height, width = shape
    h, w = box
    top, left = ((height - h) // 2, (width - w) // 2) if corner is None else corner
    mask = torch.ones(1, height, width)
    mask[:, top:top + h, left:left + w] = 0
    return mask


def random_mask(shape: tuple[int, ...], fraction: float, seed: int) -> Tensor:
    """A ``(1, *spatial)`` mask with exactly ``round(fraction * n)`` of its ``n`` entries missing.

    Drawn by deepinv's :class:`~deepinv.physics.generator.BernoulliSplittingMaskGenerator`
    (splitting a full mask, which keeps an exact count) with a CPU generator seeded by
    ``seed``; the same mask for every channel.

    :param tuple[int] shape: ``(C, *spatial)``.
    :param float fraction: fraction of missing entries, in [0, 1).
    :param int seed: random seed.
    """
    spatial = tuple(shape[1:])
    n = 1
    for s in spatial:
        n *= s
    keep = n - int(round(fraction * n))
    # the generator keeps int(split_ratio * n) entries: aim at the middle of that integer
    gen = BernoulliSplittingMaskGenerator(img_size=(1, *spatial), split_ratio=(keep + 0.5) / n,
                                          pixelwise=False, rng=torch.Generator().manual_seed(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = gen.step(batch_size=None, input_mask=torch.ones(1, *spatial), seed=seed)["mask"]
    return mask.reshape(1, *spatial).float()
