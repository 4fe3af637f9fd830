"""Denoising: the identity (deepinv's :class:`~deepinv.physics.Denoising`)."""

from __future__ import annotations

from typing import Any

from deepinv.physics import Denoising as _Denoising
from torch import Tensor


class Denoising(_Denoising):
    r"""
    Denoising: :math:`y = x + \sigma_y n`.

    The forward operator is the identity, so the projection onto :math:`\{x : A x = y\}`
    is exact and trivial: :math:`P(x) = y`.

    :param kwargs: passed to :class:`deepinv.physics.Denoising` (``noise_model``, ``device``).
    """

    linear = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        """Exact projection: the measurement itself.

        :param torch.Tensor x: signal (ignored but for its dtype).
        :param torch.Tensor y: measurement.
        """
        return y.to(x.dtype).clone()
