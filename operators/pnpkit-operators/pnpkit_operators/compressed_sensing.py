"""Compressed sensing: a seeded Gaussian matrix (deepinv's :class:`~deepinv.physics.CompressedSensing`)."""

from __future__ import annotations

import math
from typing import Any

import torch
from deepinv.physics import CompressedSensing as _CompressedSensing
from deepinv.physics import LinearPhysics
from torch import Tensor


def pseudo_inverse(a: Tensor) -> Tensor:
    r"""
    Pseudo-inverse of a wide matrix :math:`a` (m <= n) of full row rank.

    .. math::

        a^{\dagger} = a^{\top} (a a^{\top})^{-1}

    through a Cholesky factorisation of the Gram matrix; an SVD-based pseudo-inverse when the
    Gram matrix is not numerically positive definite.

    :param torch.Tensor a: ``(m, n)`` matrix.
    :return: (:class:`torch.Tensor`) ``(n, m)`` pseudo-inverse.
    """
    if a.shape[0] <= a.shape[1]:
        chol, info = torch.linalg.cholesky_ex(a @ a.T)
        if int(info) == 0:
            return torch.cholesky_solve(a, chol).T
    return torch.linalg.pinv(a)


class CompressedSensing(_CompressedSensing):
    r"""
    Compressed sensing with an i.i.d. Gaussian matrix :math:`A \in \mathbb{R}^{m \times n}`,
    :math:`A_{ij} \sim \mathcal{N}(0, 1/m)`.

    .. math::

        y = A\, \mathrm{vec}(x)

    The pseudo-inverse :math:`A^{\dagger} = A^{\top}(A A^{\top})^{-1}` is computed once in
    float64 and stored as deepinv does, so the projection :math:`x + A^{\dagger}(y - A x)`
    is exact: :math:`A A^{\dagger} = I` for the full-row-rank matrices drawn. Any signal
    shape ``(C, *spatial)`` works (deepinv's own adjoint assumes images).

    :param int m: number of measurements (per channel when ``channelwise``).
    :param tuple[int] img_size: ``(C, *spatial)`` of one item.
    :param bool channelwise: one matrix applied to each channel separately.
    :param torch.Generator rng: generator the matrix is drawn from (float64, on the CPU).
    :param kwargs: passed to :class:`deepinv.physics.LinearPhysics` (``noise_model``).
    """

    linear = True

    def __init__(self, m: int, img_size: tuple[int, ...], channelwise: bool = False,
                 rng: torch.Generator | None = None, **kwargs: Any) -> None:
        # deepinv's constructor computes the pseudo-inverse by an SVD, ten times slower than
        # needed for these full-row-rank matrices: set up the same buffers here instead
        LinearPhysics.__init__(self, **kwargs)
        self.name = f"CS_m{m}"
        self.img_size = tuple(img_size)
        self.channelwise = channelwise
        self.dtype = torch.float64
        self.rng = rng if rng is not None else torch.Generator()
        self.register_buffer("initial_random_state", self.rng.get_state())
        n = math.prod(self.img_size[1:] if channelwise else self.img_size)
        # the matrix deepinv draws: N(0, 1/m) entries from rng
        a = torch.randn((m, n), generator=self.rng, dtype=torch.float64) / math.sqrt(m)
        self.register_buffer("_A", a)
        self.register_buffer("_A_dagger", pseudo_inverse(a))
        self.register_buffer("_A_adjoint", a.T)

    def _back(self, y: Tensor, matrix: Tensor) -> Tensor:
        n = y.shape[0]
        y = y.to(matrix.dtype)
        y = y.reshape(n * self.img_size[0], -1) if self.channelwise else y.reshape(n, -1)
        return (y @ matrix).reshape(n, *self.img_size)

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""
        Adjoint :math:`A^{\top} y`, shaped as the signal.

        :param torch.Tensor y: measurements ``(B, m)`` (``(B, C, m)`` when channelwise).
        """
        return self._back(y, self._A)

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""
        Pseudo-inverse :math:`A^{\dagger} y` (minimum-norm solution of :math:`A x = y`).

        :param torch.Tensor y: measurements.
        """
        return self._back(y, self._A_dagger.T)

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        r"""
        Exact projection :math:`x + A^{\dagger}(y - A x)`.

        :param torch.Tensor x: signal to project.
        :param torch.Tensor y: measurements.
        """
        with torch.no_grad():
            return x + self.A_dagger(y - self.A(x)).to(x.dtype)
