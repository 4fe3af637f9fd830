"""Partial generation: some stems (channels) are known, the others are to be generated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from deepinv.physics import LinearPhysics
from torch import Tensor


class SourceMasking(LinearPhysics):
    r"""
    Observation of the known channels: :math:`y = x_{\mathcal{K}}`, shape ``(B, |K|, *spatial)``.

    The rows of :math:`A` are distinct rows of the identity, so :math:`A A^{\top} = I`,
    :math:`A^{\dagger} = A^{\top}` (known channels from :math:`y`, zeros elsewhere) and the
    projection is exact: the known channels of :math:`x` are replaced by :math:`y`. The
    proximal step has a closed form too.

    :param int channels: number of channels :math:`C` of the signal.
    :param Sequence[int] known: indices of the observed channels (distinct, in ``[0, C)``).
    :param kwargs: passed to :class:`deepinv.physics.LinearPhysics` (``noise_model``, ``device``).
    """

    linear = True

    def __init__(self, channels: int, known: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.known = [int(k) for k in known]

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        r"""
        The known channels :math:`x_{\mathcal{K}}`.

        :param torch.Tensor x: signal ``(B, C, *spatial)``.
        """
        if x.shape[1] != self.channels:
            raise ValueError(f"source-masking expects {self.channels} channels, got a signal "
                             f"of shape {tuple(x.shape)}")
        return x[:, self.known]

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""
        :math:`A^{\top} y`: ``y`` in the known channels, zeros in the others.

        :param torch.Tensor y: known channels ``(B, |K|, *spatial)``.
        """
        x = y.new_zeros(y.shape[0], self.channels, *y.shape[2:])
        x[:, self.known] = y
        return x

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`A^{\dagger} = A^{\top}` (orthonormal rows)."""
        return self.A_adjoint(y)

    def A_A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`A A^{\top} y = y`."""
        return y

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        r"""
        Exact projection: the known channels of :math:`x` replaced by :math:`y`.

        :param torch.Tensor x: signal.
        :param torch.Tensor y: known channels.
        """
        out = x.clone()
        out[:, self.known] = y.to(x.dtype)
        return out

    def prox_l2(self, z: Tensor, y: Tensor, gamma: float, **kwargs: Any) -> Tensor:
        r"""
        :math:`\arg\min_x \frac{\gamma}{2}\|A x - y\|^2 + \frac{1}{2}\|x - z\|^2` in closed form:
        :math:`(\gamma y + z_{\mathcal{K}}) / (1 + \gamma)` on the known channels, :math:`z` elsewhere.

        :param torch.Tensor z: centre.
        :param torch.Tensor y: known channels.
        :param float gamma: weight of the data term.
        """
        gamma_t = torch.as_tensor(gamma, dtype=z.dtype, device=z.device)
        if gamma_t.dim() > 0:
            gamma_t = gamma_t.reshape(-1, *([1] * (z.dim() - 1)))
        out = z.clone()
        out[:, self.known] = (gamma_t * y.to(z.dtype) + z[:, self.known]) / (1 + gamma_t)
        return out
