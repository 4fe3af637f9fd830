"""Audio source separation: the mixture of K sources stacked as channels."""

from __future__ import annotations

from typing import Any

import torch
from deepinv.physics import LinearPhysics
from torch import Tensor


class Mixture(LinearPhysics):
    r"""
    Sum of the channels: :math:`K` sources :math:`x = (x_1, \dots, x_K)` stacked as channels
    ``(B, K, *spatial)`` give the mixture ``(B, 1, *spatial)``

    .. math::

        y = \sum_{k=1}^{K} x_k.

    Its adjoint repeats :math:`y` on every channel, :math:`A A^{\top} = K I`, hence

    .. math::

        A^{\dagger} y = \frac{1}{K} A^{\top} y, \qquad
        P(x) = x + \frac{1}{K}\left(y - \sum_k x_k\right) \text{ on every channel,}

    an exact projection, and the proximal step has a closed form (Sherman-Morrison).

    :param int sources: the number of sources :math:`K`.
    :param kwargs: passed to :class:`deepinv.physics.LinearPhysics` (``noise_model``, ``device``).
    """

    linear = True

    def __init__(self, sources: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sources = int(sources)

    def _check(self, x: Tensor) -> None:
        if x.shape[1] != self.sources:
            raise ValueError(f"mixture expects {self.sources} sources stacked as channels, "
                             f"got a signal of shape {tuple(x.shape)}")

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        r"""
        The mixture :math:`\sum_k x_k`, shape ``(B, 1, *spatial)``.

        :param torch.Tensor x: sources ``(B, K, *spatial)``.
        """
        self._check(x)
        return x.sum(dim=1, keepdim=True)

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""
        :math:`A^{\top} y`: the mixture repeated on the :math:`K` channels.

        :param torch.Tensor y: mixture ``(B, 1, *spatial)``.
        """
        return y.expand(y.shape[0], self.sources, *y.shape[2:]).clone()

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""
        :math:`A^{\dagger} y = A^{\top} y / K`: every source gets an equal share.

        :param torch.Tensor y: mixture.
        """
        return self.A_adjoint(y) / self.sources

    def A_A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`A A^{\top} y = K y`."""
        return self.sources * y

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        r"""
        Exact projection :math:`x + (y - \sum_k x_k) / K`, the correction broadcast to every channel.

        :param torch.Tensor x: sources.
        :param torch.Tensor y: mixture.
        """
        return x + (y.to(x.dtype) - self.A(x)) / self.sources

    def prox_l2(self, z: Tensor, y: Tensor, gamma: float, **kwargs: Any) -> Tensor:
        r"""
        :math:`\arg\min_x \frac{\gamma}{2}\|A x - y\|^2 + \frac{1}{2}\|x - z\|^2` in closed form.

        With :math:`A^{\top} A = \mathbf{1}\mathbf{1}^{\top}` per sample, the solution is
        :math:`z + \frac{\gamma}{1 + K \gamma} A^{\top}(y - A z)`.

        :param torch.Tensor z: centre.
        :param torch.Tensor y: mixture.
        :param float gamma: weight of the data term.
        """
        gamma_t = torch.as_tensor(gamma, dtype=z.dtype, device=z.device)
        if gamma_t.dim() > 0:
            gamma_t = gamma_t.reshape(-1, *([1] * (z.dim() - 1)))
        return z + gamma_t / (1 + self.sources * gamma_t) * self.A_adjoint(y.to(z.dtype) - self.A(z))
