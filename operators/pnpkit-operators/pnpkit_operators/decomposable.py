"""Operators with an explicit SVD (deepinv's :class:`~deepinv.physics.DecomposablePhysics`):
average-pooling super-resolution and the separable blur of the DDRM and ProjDiff papers.

``A = U diag(s) V^T``: ``V_adjoint`` maps a signal to its coordinates (a tensor of the same
number of entries), ``mask`` holds the singular values ``s`` on those coordinates (zero on
the null space), ``U`` keeps the range coordinates and maps them to the measurement.
deepinv's DDRM runs on them (it reads ``mask``, ``U_adjoint``, ``V`` and ``V_adjoint``), and
so does every other solver: ``A_dagger`` and ``project`` are exact through the SVD.
"""

from __future__ import annotations

from typing import Any

import torch
from deepinv.physics import DecomposablePhysics
from torch import Tensor


def block_basis(k: int) -> Tensor:
    """An orthonormal ``(k, k)`` basis whose first column is the constant ``1 / sqrt(k)``.

    The QR factorisation of ``[1, e_2, ..., e_k]`` (float64), signs fixed so that the
    diagonal of R is positive: a fixed basis of the block's mean and its zero-mean rest.
    """
    a = torch.eye(k, dtype=torch.float64)
    a[:, 0] = 1.0
    q, r = torch.linalg.qr(a)
    sign = torch.sign(torch.diagonal(r))
    sign[sign == 0] = 1
    return q * sign


class AveragePoolingSR(DecomposablePhysics):
    r"""
    Super-resolution by average pooling: each ``factor x factor`` block becomes its mean.

    .. math::

        y = S_{\text{avg}}\, x = U\,\mathrm{diag}(s)\,V^{\top} x

    The operator of the DDRM and ProjDiff papers' SR. Per channel and block, ``V^T``
    applies the orthonormal basis :func:`block_basis` to the block's ``factor^2`` pixels
    (coordinates ``(B, C, factor^2, H / factor, W / factor)``): the first coordinate is
    ``factor`` times the block mean, the only one with a non-zero singular value, ``1 /
    factor``; ``U`` keeps it. So ``A A^T = I / factor^2``, ``A^+ y`` repeats each value over
    its block, and :meth:`project` is exact.

    :param tuple[int] img_size: ``(C, H, W)``, ``factor`` dividing ``H`` and ``W``.
    :param int factor: the block side.
    :param torch.dtype dtype: of the singular values and the basis.
    :param kwargs: passed to :class:`deepinv.physics.DecomposablePhysics` (``noise_model``).
    """

    linear = True

    def __init__(self, img_size: tuple[int, int, int], factor: int,
                 dtype: torch.dtype = torch.float32, **kwargs: Any) -> None:
        c, h, w = img_size
        r = int(factor)
        mask = torch.zeros(1, c, r * r, h // r, w // r, dtype=dtype)
        mask[:, :, 0] = 1.0 / r
        super().__init__(mask=mask, img_size=tuple(img_size), **kwargs)
        self.factor = r
        self.register_buffer("basis", block_basis(r * r).to(dtype))

    def _blocks(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        r = self.factor
        return x.reshape(b, c, h // r, r, w // r, r).permute(0, 1, 3, 5, 2, 4).reshape(
            b, c, r * r, h // r, w // r)

    def _image(self, blocks: Tensor) -> Tensor:
        b, c, _, hh, ww = blocks.shape
        r = self.factor
        return blocks.reshape(b, c, r, r, hh, ww).permute(0, 1, 4, 2, 5, 3).reshape(
            b, c, hh * r, ww * r)

    def V_adjoint(self, x: Tensor) -> Tensor:
        """The coordinates ``V^T x``: the basis applied to each block, ``(B, C, r^2, h, w)``."""
        return torch.einsum("jk,bcjhw->bckhw", self.basis.to(x.dtype), self._blocks(x))

    def V(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``V c``: the image of the coordinates ``c``."""
        return self._image(torch.einsum("jk,bckhw->bcjhw", self.basis.to(x.dtype), x))

    def U(self, x: Tensor) -> Tensor:
        """The measurement of the coordinates: the first (the block-mean) one."""
        return x[:, :, 0]

    def U_adjoint(self, x: Tensor, **kwargs: Any) -> Tensor:
        """The coordinates of a measurement: it in the first, zeros in the others."""
        b, c, hh, ww = x.shape
        out = x.new_zeros(b, c, self.factor ** 2, hh, ww)
        out[:, :, 0] = x
        return out

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        r"""
        Exact projection :math:`x + A^{\dagger}(y - A x)`: each block shifted to the mean ``y``.

        :param torch.Tensor x: image to project.
        :param torch.Tensor y: measurement.
        """
        with torch.no_grad():
            return x + self.A_dagger(y - self.A(x))


def conv_matrix(kernel: Tensor, n: int, drop_last_tap: bool = False) -> Tensor:
    """The ``(n, n)`` matrix of the 1-D convolution with ``kernel`` and a zero boundary.

    ``M[i, j] = kernel[j - i + k // 2]`` for ``|j - i| <= k // 2`` (``k`` taps, odd). With
    ``drop_last_tap`` the band is ``j - i`` in ``[-(k // 2), k // 2)``, as the DDRM and
    ProjDiff codes build it (``range(i - k // 2, i + k // 2)``): the last tap is left out.
    """
    k = kernel.numel()
    m = torch.zeros(n, n, dtype=torch.float64)
    hi = k // 2 if drop_last_tap else k // 2 + 1
    for offset in range(-(k // 2), hi):
        m += torch.diag(torch.full((n - abs(offset),), float(kernel[offset + k // 2]),
                                   dtype=torch.float64), offset)
    return m


class SeparableBlur(DecomposablePhysics):
    r"""
    Separable blur with a zero boundary: ``y = M_H x M_W^T`` per channel.

    .. math::

        M_H = U_H\,\mathrm{diag}(s_H)\,V_H^{\top}, \quad M_W = U_W\,\mathrm{diag}(s_W)\,V_W^{\top},
        \quad A = (U_H \otimes U_W)\,\mathrm{diag}(s_H \otimes s_W)\,(V_H \otimes V_W)^{\top}

    The blur of the DDRM and ProjDiff papers' Gaussian deblurring. The SVDs of the two 1-D
    matrices (:func:`conv_matrix`) give the SVD of ``A``; 1-D singular values below
    ``threshold`` are set to 0, in ``A`` itself as in the authors' code (their ``ZERO =
    3e-2``): the measurement, the adjoint, ``A_dagger`` and the projection all use the
    truncated SVD, so ``A^+`` does not amplify the components the blur all but removes.
    The coordinates ``V^T x`` are ``(B, C, H, W)``.

    :param tuple[int] img_size: ``(C, H, W)``.
    :param torch.Tensor kernel: the 1-D kernel (``k`` taps, odd).
    :param float threshold: 1-D singular values below this are set to 0 (0: none).
    :param bool drop_last_tap: build the 1-D matrices as the authors' code does.
    :param torch.dtype dtype: of the singular values and vectors (computed in float64).
    :param kwargs: passed to :class:`deepinv.physics.DecomposablePhysics` (``noise_model``).
    """

    linear = True

    def __init__(self, img_size: tuple[int, int, int], kernel: Tensor, threshold: float = 3e-2,
                 drop_last_tap: bool = True, dtype: torch.dtype = torch.float32,
                 **kwargs: Any) -> None:
        c, h, w = img_size
        factors = []
        for n in (h, w):
            u, s, vh = torch.linalg.svd(conv_matrix(kernel, n, drop_last_tap))
            s = torch.where(s < threshold, torch.zeros_like(s), s)
            factors.append((u, s, vh.T))
        (uh, sh, vh_), (uw, sw, vw) = factors
        mask = (sh[:, None] * sw[None, :]).expand(c, h, w).unsqueeze(0).contiguous()
        super().__init__(mask=mask.to(dtype), img_size=tuple(img_size), **kwargs)
        self.svd_threshold, self.drop_last_tap = float(threshold), bool(drop_last_tap)
        self.kernel_1d = kernel.to(torch.float64)
        for name, t in (("u_h", uh), ("v_h", vh_), ("u_w", uw), ("v_w", vw)):
            self.register_buffer(name, t.to(dtype))

    @staticmethod
    def _sides(left: Tensor, x: Tensor, right: Tensor) -> Tensor:
        return left.to(x.dtype) @ x @ right.to(x.dtype)

    def V_adjoint(self, x: Tensor) -> Tensor:
        """``V_H^T x V_W`` per channel."""
        return self._sides(self.v_h.T, x, self.v_w)

    def V(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``V_H c V_W^T`` per channel."""
        return self._sides(self.v_h, x, self.v_w.T)

    def U(self, x: Tensor) -> Tensor:
        """``U_H c U_W^T`` per channel."""
        return self._sides(self.u_h, x, self.u_w.T)

    def U_adjoint(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``U_H^T y U_W`` per channel."""
        return self._sides(self.u_h.T, x, self.u_w)

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        r"""
        Exact projection :math:`x + A^{\dagger}(y - A x)` through the (truncated) SVD.

        :param torch.Tensor x: image to project.
        :param torch.Tensor y: measurement.
        """
        with torch.no_grad():
            return x + self.A_dagger(y - self.A(x))


def gaussian_taps(std: float, size: int) -> Tensor:
    """The 1-D Gaussian kernel of ``size`` taps (odd) and standard deviation ``std``, summing to 1
    (the DDRM and ProjDiff codes' ``exp(-x^2 / (2 std^2))`` at ``x = -size // 2 ... size // 2``)."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    k = torch.exp(-0.5 * (x / std) ** 2)
    return k / k.sum()
