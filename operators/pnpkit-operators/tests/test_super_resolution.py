"""The strided super-resolution operator is deepinv's Downsampling, computed factor**2 cheaper."""

import pytest
import torch
from deepinv.physics import Downsampling

from pnpkit_operators.super_resolution import FILTERS, PADDINGS, SuperResolution

SHAPES = [(1, 64, 96, 4), (3, 32, 32, 2), (2, 48, 24, 3)]


@pytest.mark.parametrize("filter", FILTERS)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forward_and_adjoint_match_deepinv(filter, padding, shape):
    c, h, w, factor = shape
    torch.manual_seed(0)
    op = SuperResolution((c, h, w), factor=factor, filter=filter, padding=padding)
    ref = Downsampling(img_size=(c, h, w), factor=factor,
                       filter=None if filter == "none" else filter, padding=padding)
    x = torch.randn(2, c, h, w)
    y = torch.randn(2, c, h // factor, w // factor)
    assert op.A(x).shape == (2, c, h // factor, w // factor)
    torch.testing.assert_close(op.A(x), ref.A(x), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(op.A_adjoint(y), ref.A_adjoint(y), atol=2e-6, rtol=1e-5)
    # <A x, y> = <x, A^T y>: the adjoint is the adjoint.
    lhs, rhs = (op.A(x) * y).sum(), (x * op.A_adjoint(y)).sum()
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs).clamp(min=1)


def test_gradients_flow_through_the_strided_forward():
    op = SuperResolution((1, 32, 32), factor=4)
    x = torch.randn(1, 1, 32, 32, requires_grad=True)
    y = torch.randn(1, 1, 8, 8)
    (0.5 * (op.A(x) - y).square().sum()).backward()
    torch.testing.assert_close(x.grad, op.A_adjoint(op.A(x.detach()) - y), atol=1e-5, rtol=1e-5)


def test_circular_projection_stays_exact():
    op = SuperResolution((3, 32, 48), factor=4)
    x, z = torch.randn(1, 3, 32, 48), torch.randn(1, 3, 32, 48)
    y = op.A(x)
    torch.testing.assert_close(op.A(op.project(z, y)), y, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("factor", [2, 4])
def test_circular_spectrum_is_the_singular_values_per_low_resolution_frequency(factor):
    # A A^T = F^H diag(s^2) F: the dense A A^T's eigenvalues are s^2, each Fourier mode an eigenvector.
    op = SuperResolution((1, 16, 16), factor=factor)
    eye = torch.eye(256, dtype=torch.float64).view(256, 1, 16, 16)
    matrix = op.A(eye).reshape(256, -1).T
    s = op.spectrum()
    h = 16 // factor
    assert s.shape == (1, 1, h, h) and s.dtype == torch.float64
    torch.testing.assert_close(torch.linalg.eigvalsh(matrix @ matrix.T), s.reshape(-1).square().sort().values,
                               rtol=0, atol=1e-12)
    mode = torch.zeros(1, 1, h, h, dtype=torch.complex128)
    mode[..., 1, 2] = 1
    u = torch.fft.ifft2(mode, norm="ortho")  # a low-resolution Fourier mode
    aat = (matrix @ matrix.T).to(torch.complex128)
    torch.testing.assert_close((aat @ u.reshape(-1)).view_as(u), float(s[..., 1, 2]) ** 2 * u,
                               rtol=0, atol=1e-12)


def test_spectrum_only_where_a_a_t_is_a_fourier_multiplier():
    assert SuperResolution((1, 16, 16), factor=2, padding="reflect").spectrum() is None
    assert torch.equal(SuperResolution((1, 16, 16), factor=2, filter="none").spectrum(),
                       torch.ones(1, 1, 8, 8, dtype=torch.float64))
