"""The decomposable operators (average-pooling SR, the separable blur of the DDRM and ProjDiff
papers): each against its definition, its SVD against a dense one, and the authors' matrix."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import pnpkit
from pnpkit import operators as ops
from pnpkit_operators import conv_matrix
from pnpkit_operators.decomposable import block_basis, gaussian_taps


def make(name: str, **settings: Any) -> Any:
    return pnpkit.create("operator", name, **settings)


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


def dense(op: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """The (m, n) matrix of ``op`` on one item of ``shape`` (A applied to the unit signals)."""
    n = 1
    for s in shape:
        n *= s
    eye = torch.eye(n, dtype=torch.float64).view(n, *shape)
    return op.A(eye).reshape(n, -1).T


def test_block_basis_is_orthonormal_with_the_mean_first():
    q = block_basis(9)
    torch.testing.assert_close(q.T @ q, torch.eye(9, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(q[:, 0], torch.full((9,), 1 / 3, dtype=torch.float64))


def test_average_pooling_is_the_block_mean_and_its_svd():
    op = make("sr-avgpool", shape=(3, 16, 24), dtype="float64")
    x = rand(2, 3, 16, 24)
    torch.testing.assert_close(op.A(x), F.avg_pool2d(x, 4), rtol=0, atol=1e-12)
    y = rand(2, 3, 4, 6, seed=1)
    # A^+ y repeats each value over its block; A A^T = I / 16; the projection is exact
    up = y.repeat_interleave(4, -2).repeat_interleave(4, -1)
    torch.testing.assert_close(op.A_dagger(y), up, rtol=0, atol=1e-12)
    torch.testing.assert_close(op.A(op.A_adjoint(y)), y / 16, rtol=0, atol=1e-12)
    p = op.project(x, y)
    torch.testing.assert_close(op.A(p), y, rtol=0, atol=1e-12)
    torch.testing.assert_close(p - x, op.A_dagger(y - op.A(x)), rtol=0, atol=1e-12)
    # V is orthonormal, U U^T = I, and A = U diag(mask) V^T
    c = op.V_adjoint(x)
    assert c.shape == (2, 3, 16, 4, 6) and op.mask.shape == (1, 3, 16, 4, 6)
    torch.testing.assert_close(op.V(c), x, rtol=0, atol=1e-12)
    assert float((c.pow(2).sum() - x.pow(2).sum()).abs()) < 1e-9
    torch.testing.assert_close(op.U(op.U_adjoint(y)), y, rtol=0, atol=0)
    torch.testing.assert_close(op.U(op.mask * c), op.A(x), rtol=0, atol=1e-12)
    # the singular values: those of the dense matrix (96 of 1/4, the rest 0)
    s = torch.linalg.svdvals(dense(make("sr-avgpool", shape=(1, 8, 12), factor=2, dtype="float64"),
                                   (1, 8, 12)))
    torch.testing.assert_close(s, torch.full((24,), 0.5, dtype=torch.float64), rtol=0, atol=1e-12)
    kept = op.mask[op.mask > 0]
    assert kept.numel() == 3 * 4 * 6 and bool((kept == 0.25).all())


def authors_matrix(kernel: torch.Tensor, n: int) -> torch.Tensor:
    """The DDRM / ProjDiff codes' 1-D blur matrix, their loop written out."""
    k = kernel.numel()
    h = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(i - k // 2, i + k // 2):
            if 0 <= j < n:
                h[i, j] = kernel[j - i + k // 2]
    return h


def test_the_separable_blur_is_the_authors_matrix_and_its_svd():
    # The authors' kernel: exp(-x^2 / (2 * 10^2)) at x = -2..2, normalised (at 256 x 256).
    taps = gaussian_taps(10.0, 5)
    ref = torch.exp(-0.5 * (torch.arange(-2, 3, dtype=torch.float64) / 10) ** 2)
    torch.testing.assert_close(taps, ref / ref.sum(), rtol=0, atol=1e-15)
    torch.testing.assert_close(conv_matrix(taps, 12, drop_last_tap=True), authors_matrix(taps, 12))
    op = make("separable-gaussian-blur", shape=(1, 12, 12), scale_with_size=False, svd_threshold=0.0,
              dtype="float64")
    m = authors_matrix(taps, 12)
    torch.testing.assert_close(dense(op, (1, 12, 12)), torch.kron(m, m), rtol=0, atol=1e-6)
    # the mask is the SVD of the dense matrix: the same singular values
    s = torch.linalg.svdvals(torch.kron(m, m))
    torch.testing.assert_close(op.mask.flatten().double().sort(descending=True).values, s,
                               rtol=0, atol=1e-6)


def test_every_tap_gives_the_zero_padded_convolution():
    op = make("separable-gaussian-blur", shape=(2, 10, 14), kernel_size=5, kernel_std=1.5,
              scale_with_size=False, svd_threshold=0.0, drop_last_tap=False, dtype="float64")
    k1 = gaussian_taps(1.5, 5)
    x = rand(2, 2, 10, 14)
    ref = F.conv2d(x.reshape(4, 1, 10, 14), torch.outer(k1, k1).view(1, 1, 5, 5), padding=2)
    torch.testing.assert_close(op.A(x), ref.view(2, 2, 10, 14), rtol=0, atol=1e-6)


def test_the_authors_threshold_truncates_the_operator_itself():
    # 1-D singular values under 3e-2 are 0 in A (their H uses the truncated SVD): the blur of a
    # signal along those singular vectors is 0, and A^+ never divides by less than 3e-2 squared.
    op = make("separable-gaussian-blur", shape=(1, 32, 32), kernel_size=9, kernel_std=3.0,
              scale_with_size=False, dtype="float64")
    mh = conv_matrix(gaussian_taps(3.0, 9), 32, drop_last_tap=True)
    u, s, vh = torch.linalg.svd(mh)
    assert (s < 3e-2).any() and (s >= 3e-2).any()
    cut = torch.where(s < 3e-2, torch.zeros_like(s), s)
    truncated = u @ torch.diag(cut) @ vh
    torch.testing.assert_close(dense(op, (1, 32, 32)), torch.kron(truncated, truncated), rtol=0,
                               atol=1e-6)
    kept = op.mask[op.mask > 0]
    assert float(kept.min()) >= 9e-4 - 1e-9
    x = rand(1, 1, 32, 32)
    y = op.A(x)
    p = op.project(torch.zeros_like(x), y)
    torch.testing.assert_close(op.A(p), y, rtol=0, atol=1e-6)
    # A^+ y is the minimum-norm solution: orthogonal to the null space, so no larger than x
    assert float(ops.pseudo_inverse(op, y).norm()) <= float(x.norm()) + 1e-6


def test_sizes_scale_and_bad_settings_say_what_to_change():
    assert make("separable-gaussian-blur", shape=(1, 256, 256)).kernel_size == 5
    small = make("separable-gaussian-blur", shape=(1, 32, 32))
    assert small.kernel_size == 3 and small.kernel_std == pytest.approx(1.25)
    with pytest.raises(ValueError, match=r"sr-avgpool: factor 4 does not divide the image size "
                       r"30x30; use a factor that divides both \(2, 3, 5"):
        make("sr-avgpool", shape=(1, 30, 30))
    with pytest.raises(ValueError, match=r"separable-gaussian-blur: svd_threshold must be in \[0, 1\)"):
        make("separable-gaussian-blur", shape=(1, 32, 32), svd_threshold=-1)
    with pytest.raises(ValueError, match=r"separable-gaussian-blur: kernel_size 41 is too large for "
                       r"a 16x16 image; use kernel_size <= 31"):
        make("separable-gaussian-blur", shape=(1, 16, 16), kernel_size=41, scale_with_size=False)


def test_they_are_deepinv_decomposable_physics():
    import deepinv

    for name in ("sr-avgpool", "separable-gaussian-blur"):
        op = make(name, shape=(3, 32, 32))
        assert isinstance(op, deepinv.physics.DecomposablePhysics) and op.linear
        x = rand(2, 3, 32, 32, dtype=torch.float32)
        y = op.A(x)
        # deepinv's closed-form proximal step agrees with conjugate gradient on the same problem
        z = rand(2, 3, 32, 32, seed=3, dtype=torch.float32)
        ref = deepinv.physics.LinearPhysics(A=op.A, A_adjoint=op.A_adjoint, max_iter=500,
                                            tol=1e-7).prox_l2(z, y, 0.5)
        torch.testing.assert_close(op.prox_l2(z, y, 0.5), ref, rtol=1e-3, atol=1e-3)
