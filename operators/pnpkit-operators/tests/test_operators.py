"""Behaviour of each operator, checked on numbers: projections, sizes, kernels, noise, seeds,
phase retrieval, the latent operator and the error messages."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit import operators as ops
from pnpkit.operators import MatrixOperator
from pnpkit.testing import TikhonovPrior
from pnpkit_operators import LatentOperator, kernel_std


def make(name: str, **settings: Any) -> Any:
    return pnpkit.create("operator", name, **settings)


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=dtype) * 2 - 1)


def randn_like(t: torch.Tensor, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t.shape, generator=g, dtype=t.dtype)


# -- projections -------------------------------------------------------------------------------
SURJECTIVE = [  # A is onto: every y is reachable, so A(P(x, y)) == y for any y
    ("mixture", (4, 256), {}),
    ("mixture", (3, 32, 32), {}),
    ("source-masking", (4, 256), {"known": [0, 2]}),
    ("denoising", (3, 32, 32), {}),
    ("compressed-sensing", (1, 32, 32), {}),
    ("compressed-sensing", (4, 256), {"ratio": 0.5, "channelwise": True}),
    ("super-resolution", (3, 32, 32), {}),
    ("super-resolution", (1, 32, 32), {"filter": "bilinear", "factor": 2}),
]


@pytest.mark.parametrize("name,shape,settings", SURJECTIVE,
                         ids=[f"{n}-{'x'.join(map(str, s))}" for n, s, _ in SURJECTIVE])
def test_exact_projection_reaches_any_measurement(name, shape, settings):
    op = make(name, shape=shape, **settings)
    x = rand(3, *shape)
    y = randn_like(op.A(x))  # an arbitrary measurement, not A of anything known
    p = op.project(x, y)
    assert p.shape == x.shape
    assert float((op.A(p) - y).abs().max()) < 1e-5
    # a projection: idempotent, and x - P(x) is orthogonal to the constraint set's directions
    torch.testing.assert_close(op.project(p, y), p, rtol=0, atol=1e-5)
    q = op.project(rand(3, *shape, seed=5), y)
    inner = float(((x - p) * (q - p)).sum())
    assert abs(inner) < 1e-4 * float((x - p).norm() * (q - p).norm() + 1)


@pytest.mark.parametrize("name,settings", [("box-inpainting", {}), ("random-inpainting", {}),
                                           ("gaussian-deblur", {"padding": "circular"}),
                                           ("motion-deblur", {"padding": "circular"})])
def test_exact_projection_on_the_range(name, settings):
    op = make(name, shape=(3, 32, 32), **settings)
    y = op.A(rand(2, 3, 32, 32, seed=3))
    x = rand(2, 3, 32, 32)
    p = op.project(x, y)
    assert float((op.A(p) - y).abs().max()) < 1e-5
    if "inpainting" in name:  # observed pixels from y, the others untouched
        m = op.mask.bool().expand_as(x)
        assert torch.equal(p[m], y[m]) and torch.equal(p[~m], x[~m])


def test_denoising_projection_is_the_measurement():
    op = make("denoising", shape=(1, 8, 8), sigma_y=0.1)
    y = rand(2, 1, 8, 8, seed=4)
    assert torch.equal(op.project(rand(2, 1, 8, 8), y), y)
    assert torch.equal(op.A_dagger(y), y)


def test_reflect_blur_projection_is_approximate_but_close():
    op = make("gaussian-deblur", shape=(1, 32, 32))
    y = op.A(rand(1, 1, 32, 32, seed=2))
    p = op.project(torch.zeros(1, 1, 32, 32), y)
    assert float(ops.residual(op, p, y)) < 1e-3


def test_mixture_pseudo_inverse_and_adjoint():
    op = make("mixture", shape=(4, 100))
    y = rand(2, 1, 100)
    torch.testing.assert_close(op.A_dagger(y), y.repeat(1, 4, 1) / 4)
    torch.testing.assert_close(op.A_adjoint(y), y.repeat(1, 4, 1))
    with pytest.raises(ValueError, match="expects 4 sources"):
        op.A(rand(1, 3, 100))


@pytest.mark.parametrize("name,shape,settings", [("mixture", (4, 64), {}),
                                                 ("source-masking", (4, 64), {"known": [1, 3]})])
def test_closed_form_prox_solves_its_problem(name, shape, settings):
    op = make(name, shape=shape, dtype="float64", **settings)
    z = rand(2, *shape, dtype=torch.float64)
    y = randn_like(op.A(z), seed=7)
    for gamma in (0.1, 3.0):
        x = op.prox_l2(z, y, gamma)
        grad = gamma * op.A_adjoint(op.A(x) - y) + (x - z)  # optimality condition
        assert float(grad.abs().max()) < 1e-12
        # pnpkit's gamma convention is the same
        torch.testing.assert_close(ops.prox_data(op, z, y, gamma), x)


def test_source_masking_observes_the_known_stems():
    op = make("source-masking", shape=(4, 50), known=[2, 0])
    x = rand(2, 4, 50)
    torch.testing.assert_close(op.A(x), x[:, [2, 0]])
    back = op.A_dagger(op.A(x))
    assert torch.equal(back[:, [0, 2]], x[:, [0, 2]]) and not back[:, [1, 3]].any()
    p = op.project(x, torch.zeros(2, 2, 50))
    assert not p[:, [0, 2]].any() and torch.equal(p[:, [1, 3]], x[:, [1, 3]])


# -- sizes and kernels ------------------------------------------------------------------------
def _box_rows_cols(op: Any) -> tuple[int, int, int, int]:
    missing = op.mask[0, 0] == 0
    rows, cols = missing.any(1).nonzero().flatten(), missing.any(0).nonzero().flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@pytest.mark.parametrize("side,box,start", [(256, 100, 100), (128, 50, 50), (64, 25, 25),
                                            (32, 12, 12)])
def test_box_is_the_dcdp_box_at_256_and_scales(side, box, start):
    # The DCDP code's mask: mask[:, :, 100:200, 100:200] = 0 on 256 x 256, as fractions elsewhere.
    op = make("box-inpainting", shape=(3, side, side))
    assert op.box == (box, box) and op.corner == (start, start)
    missing = op.mask[0, 0] == 0
    assert int(missing.sum()) == box * box and op.mask.shape == (1, 1, side, side)
    assert _box_rows_cols(op) == (start, start + box, start, start + box)
    if side == 256:
        ref = torch.ones(1, 3, 256, 256)
        ref[:, :, 100:200, 100:200] = 0
        assert torch.equal(op.A(torch.ones(1, 3, 256, 256)), ref)


@pytest.mark.parametrize("side,box", [(256, 100), (128, 50), (64, 25), (32, 12)])
def test_a_centred_box_is_an_option(side, box):
    op = make("box-inpainting", shape=(3, side, side), position="centre")
    top = (side - box) // 2
    assert op.box == (box, box) and op.corner == (top, top)
    assert _box_rows_cols(op) == (top, top + box, top, top + box)
    assert make("box-inpainting", shape=(1, side, side), position="center").corner == (top, top)


def test_box_position_is_a_fraction_of_each_side():
    op = make("box-inpainting", shape=(1, 64, 128), position=[0.0, 0.5])
    assert op.box == (25, 50) and op.corner == (0, 64) and _box_rows_cols(op) == (0, 25, 64, 114)
    # the box must fit: 0.7 + 100/256 > 1
    with pytest.raises(ValueError, match=r"box-inpainting: the 100x100 box at row 179, column 0 does "
                       r"not fit the 256x256 image; use position = \[top, left\] with top <= 0\.6094 "
                       r"and left <= 0\.6094, a smaller box_fraction, or position = \"centre\""):
        make("box-inpainting", shape=(1, 256, 256), position=[0.7, 0.0])
    for bad in ("middle", [0.1], [0.1, "a"], [1.0, 0.0], [-0.1, 0.2], 0.3):
        with pytest.raises(ValueError, match=r"box-inpainting: position must be \[top, left\]"):
            make("box-inpainting", shape=(1, 32, 32), position=bad)


def test_box_can_be_set_and_follows_non_square_images():
    assert make("box-inpainting", shape=(1, 64, 128)).box == (25, 50)
    assert make("box-inpainting", shape=(1, 40, 40), box_fraction=0.5).box == (20, 20)


@pytest.mark.parametrize("side,size,std", [(256, 61, 3.0), (128, 31, 1.5), (64, 15, 0.75),
                                           (32, 7, 0.375)])
def test_gaussian_kernel_scales_with_the_image(side, size, std):
    op = make("gaussian-deblur", shape=(1, side, side))
    assert op.kernel_size == size and op.filter.shape[-2:] == (size, size)
    assert op.kernel_std == pytest.approx(std)
    assert float(op.filter.sum()) == pytest.approx(1.0, abs=1e-5)
    if std >= 1:  # the sampled kernel's spread is the nominal std
        assert kernel_std(op.filter) == pytest.approx(std, rel=0.01)


def test_gaussian_kernel_fixed_size_and_padding_choice():
    op = make("gaussian-deblur", shape=(1, 32, 32), kernel_std=2.0, kernel_size=9,
              scale_with_size=False)
    assert op.kernel_size == 9 and kernel_std(op.filter) == pytest.approx(2.0, rel=0.1)
    assert op.padding == "reflect"
    circ = make("gaussian-deblur", shape=(1, 32, 32), padding="circular")
    x = rand(1, 1, 32, 32)
    # same kernel, only the boundary differs: interiors agree
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    torch.testing.assert_close(circ.A(x)[inner], make("gaussian-deblur", shape=(1, 32, 32)).A(x)[inner])


@pytest.mark.parametrize("side,size", [(256, 61), (64, 15), (32, 7)])
def test_motion_kernel_is_seeded_and_scales(side, size):
    a = make("motion-deblur", shape=(1, side, side))
    b = make("motion-deblur", shape=(1, side, side), seed=0)
    c = make("motion-deblur", shape=(1, side, side), seed=1)
    assert a.kernel_size == size and a.filter.shape[-2:] == (size, size)
    assert torch.equal(a.filter, b.filter) and not torch.equal(a.filter, c.filter)
    assert float(a.filter.sum()) == pytest.approx(1.0, abs=1e-5) and float(a.filter.min()) >= 0
    # a trajectory, not a blob: most of the kernel is empty
    assert float((a.filter > 0).float().mean()) < 0.5


def test_random_mask_is_seeded_exact_and_shared_across_channels():
    a = make("random-inpainting", shape=(3, 32, 32))
    b = make("random-inpainting", shape=(3, 32, 32), seed=0)
    c = make("random-inpainting", shape=(3, 32, 32), seed=1)
    assert torch.equal(a.mask, b.mask) and not torch.equal(a.mask, c.mask)
    assert a.mask.shape == (1, 1, 32, 32)
    assert int((a.mask == 0).sum()) == 512 and a.missing_fraction == 0.5
    y = a.A(rand(1, 3, 32, 32) + 2)  # no zero pixel by chance: zeros are the mask
    zeros = y == 0
    assert torch.equal(zeros[:, 0], zeros[:, 1]) and torch.equal(zeros[:, 0], zeros[:, 2])
    audio = make("random-inpainting", shape=(4, 1000), fraction=0.3, seed=2)
    assert audio.mask.shape == (1, 1, 1000) and int((audio.mask == 0).sum()) == 300


def test_compressed_sensing_is_seeded_and_sized():
    a = make("compressed-sensing", shape=(1, 16, 16))
    assert a._A.shape == (64, 256)
    assert torch.equal(a._A, make("compressed-sensing", shape=(1, 16, 16), seed=0)._A)
    assert not torch.equal(a._A, make("compressed-sensing", shape=(1, 16, 16), seed=1)._A)
    # the same matrix whatever the dtype (drawn in float64)
    d = make("compressed-sensing", shape=(1, 16, 16), dtype="float64")
    torch.testing.assert_close(d._A.float(), a._A)
    # deepinv's own matrix for the same generator
    from deepinv.physics import CompressedSensing

    ref = CompressedSensing(64, (1, 16, 16), dtype=torch.float64,
                            rng=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ref._A, d._A)
    torch.testing.assert_close(ref._A_dagger, d._A_dagger)


def test_super_resolution_settings():
    op = make("super-resolution", shape=(3, 32, 32))
    assert op.factor == 4 and op.filter_name == "bicubic" and op.padding == "circular"
    assert op.A(rand(1, 3, 32, 32)).shape == (1, 3, 8, 8)
    assert make("super-resolution", shape=(1, 24, 36), factor=3).A(rand(1, 1, 24, 36)).shape == (1, 1, 8, 12)
    for f in ("bilinear", "gaussian", "none"):
        assert make("super-resolution", shape=(1, 16, 16), filter=f, factor=2).A(
            rand(1, 1, 16, 16)).shape == (1, 1, 8, 8)


def test_float64_operators_keep_precision():
    for name, shape in [("super-resolution", (1, 32, 32)), ("compressed-sensing", (1, 16, 16)),
                        ("gaussian-deblur", (1, 32, 32))]:
        op = make(name, shape=shape, dtype="float64", padding="circular") if name != \
            "compressed-sensing" else make(name, shape=shape, dtype="float64")
        x = rand(2, *shape, dtype=torch.float64)
        y = op.A(rand(2, *shape, seed=9, dtype=torch.float64))
        assert y.dtype == torch.float64
        assert float((op.A(op.project(x, y)) - y).abs().max()) < 1e-10


# -- noise ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,shape", [("denoising", (3, 32, 32)), ("super-resolution", (3, 64, 64)),
                                        ("box-inpainting", (3, 32, 32)), ("mixture", (4, 2048)),
                                        ("compressed-sensing", (1, 32, 32)),
                                        ("phase-retrieval", (1, 32, 32))])
def test_noise_std_is_sigma_y(name, shape):
    op = make(name, shape=shape, sigma_y=0.1)
    assert ops.noise_sigma(op) == pytest.approx(0.1)
    x = rand(8, *shape)
    g = torch.Generator().manual_seed(0)
    noise = ops.measure(op, x, generator=g) - op.A(x)
    assert float(noise.std()) == pytest.approx(0.1, rel=0.05)
    # reproducible with the generator
    again = ops.measure(op, x, generator=torch.Generator().manual_seed(0)) - op.A(x)
    torch.testing.assert_close(noise, again)
    assert ops.noise_sigma(make(name, shape=shape)) == 0.0


def test_deepinv_forward_adds_the_same_noise_level():
    op = make("denoising", shape=(3, 32, 32), sigma_y=0.2)
    x = rand(8, 3, 32, 32)
    assert float((op(x) - x).std()) == pytest.approx(0.2, rel=0.05)


# -- phase retrieval ------------------------------------------------------------------------
def test_phase_retrieval_measures_the_oversampled_fourier_magnitude():
    # The default pads a quarter of the side on each side, as the authors' codes (256 -> 384).
    op = make("phase-retrieval", shape=(3, 32, 32))
    assert op.linear is False and not ops.is_linear(op)
    assert make("phase-retrieval", shape=(3, 256, 256)).A(rand(1, 3, 256, 256)).shape == (1, 3, 384, 384)
    x = rand(2, 3, 32, 32)
    y = op.A(x)
    assert y.shape == (2, 3, 48, 48) and bool((y >= 0).all())
    padded = torch.zeros(2, 3, 48, 48)
    padded[..., 8:40, 8:40] = x
    torch.testing.assert_close(y, torch.fft.fft2(padded, norm="ortho").abs())
    # ProjDiff's noise level seen in signal space: the padded over the original pixel count.
    assert op.equivalent_noise_variance(0.01) == pytest.approx(0.0225)
    # Parseval: the orthonormal FFT keeps the energy
    assert float(y.pow(2).sum()) == pytest.approx(float(x.pow(2).sum()), rel=1e-5)
    assert make("phase-retrieval", shape=(1, 30, 30), oversampling=2.0).A(rand(1, 1, 30, 30)).shape \
        == (1, 1, 60, 60)
    assert make("phase-retrieval", shape=(2, 100)).A(rand(1, 2, 100)).shape == (1, 2, 150)


def test_phase_retrieval_projection_keeps_consistent_signals_and_reduces_the_misfit():
    op = make("phase-retrieval", shape=(1, 32, 32))
    x_true = rand(2, 1, 32, 32)
    y = op.A(x_true)
    # a signal whose Fourier magnitude already is y is left as it is
    p = op.project(x_true, y)
    torch.testing.assert_close(p, x_true, rtol=0, atol=1e-5)
    torch.testing.assert_close(op.A(p), y, rtol=0, atol=1e-5)
    # error reduction: the magnitude misfit never increases
    x = rand(2, 1, 32, 32, seed=8)
    for _ in range(5):
        before = ops.residual(op, x, y)
        x = op.project(x, y)
        after = ops.residual(op, x, y)
        assert bool((after <= before + 1e-6).all())
    assert op.A_dagger(y).shape == x_true.shape and torch.isfinite(op.A_dagger(y)).all()


def test_phase_retrieval_gradient_is_autograd():
    op = make("phase-retrieval", shape=(1, 16, 16), dtype="float64")
    x = rand(1, 1, 16, 16, dtype=torch.float64)
    v = randn_like(op.A(x))
    xg = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad((op.A(xg) * v).sum(), xg)
    torch.testing.assert_close(op.A_vjp(x, v), ref)


# -- the latent operator ------------------------------------------------------------------------
def _decoder(z: torch.Tensor) -> torch.Tensor:
    up = torch.nn.functional.interpolate(z, scale_factor=4, mode="bilinear", align_corners=False)
    return torch.tanh(1.5 * up)


def test_latent_operator_gradient_matches_finite_differences():
    inner = make("box-inpainting", shape=(1, 32, 32), sigma_y=0.05, dtype="float64")
    op = LatentOperator(inner, _decoder)
    assert op.linear is False and not ops.is_linear(op)
    assert ops.noise_sigma(op) == pytest.approx(0.05)
    z = rand(2, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(op.decode(z), _decoder(z))
    torch.testing.assert_close(op.A(z), inner.A(_decoder(z)))
    v = randn_like(op.A(z))
    g = op.A_vjp(z, v)
    d = randn_like(z, seed=3)
    eps = 1e-6
    fd = ((op.A(z + eps * d) * v).sum() - (op.A(z - eps * d) * v).sum()) / (2 * eps)
    assert float((g * d).sum()) == pytest.approx(float(fd), rel=1e-6)
    # pnpkit's data gradient goes through A_vjp
    y = inner.A(_decoder(rand(2, 1, 8, 8, seed=4, dtype=torch.float64)))
    grad = ops.data_gradient(op, z, y)
    zg = z.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(ops.data_fidelity(op, zg, y).sum(), zg)
    torch.testing.assert_close(grad, ref)


def test_latent_operator_encoder_gives_pseudo_inverse_and_projection():
    inner = make("random-inpainting", shape=(1, 32, 32))
    op = LatentOperator(inner, _decoder)
    y = inner.A(rand(1, 1, 32, 32))
    with pytest.raises(TypeError, match="encoder"):
        ops.pseudo_inverse(op, y)
    with pytest.raises(TypeError, match="encoder"):
        ops.project(op, torch.zeros(1, 1, 8, 8), y)
    enc = LatentOperator(inner, _decoder, encoder=lambda x: torch.nn.functional.avg_pool2d(
        torch.atanh(x.clamp(-0.99, 0.99)) / 1.5, 4))
    assert ops.pseudo_inverse(enc, y).shape == (1, 1, 8, 8)
    assert ops.project(enc, torch.zeros(1, 1, 8, 8), y).shape == (1, 1, 8, 8)


def test_latent_operator_wraps_operators_without_deepinv():
    inner = MatrixOperator(torch.eye(16)[:6].double(), shape=(1, 16), sigma=0.1)
    op = LatentOperator(inner, decoder=lambda z: torch.sin(z).repeat(1, 1, 2))
    z = rand(3, 1, 8, dtype=torch.float64)
    assert op.A(z).shape == (3, 6) and ops.noise_sigma(op) == pytest.approx(0.1)
    v = randn_like(op.A(z))
    expected = (inner.A_adjoint(v)[..., :8] + inner.A_adjoint(v)[..., 8:]) * torch.cos(z)
    torch.testing.assert_close(op.A_vjp(z, v), expected)


# -- solvers run on these operators --------------------------------------------------------------
def test_core_solver_runs_on_a_registered_operator():
    op = make("random-inpainting", shape=(1, 16, 16), sigma_y=0.01)
    x = rand(1, 1, 16, 16)
    y = ops.measure(op, x, generator=torch.Generator().manual_seed(0))
    res = pnpkit.HQS(iterations=5, stepsize=1.0, sigma=0.1).solve(y, op, TikhonovPrior(0.1),
                                                                reference=x)
    assert torch.isfinite(res.x).all() and res.x.shape == x.shape
    assert float(ops.residual(op, res.x, y)) < 0.2


# -- settings and errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,settings,message", [
    ("super-resolution", {"shape": (3, 30, 30)},
     r"factor 4 does not divide the image size 30x30; use a factor that divides both \(2, 3, 5"),
    ("super-resolution", {"shape": (3, 32, 32), "filter": "lanczos"}, "filter must be one of"),
    ("super-resolution", {"shape": (3, 32, 32), "padding": "zeros"}, "padding must be one of"),
    ("super-resolution", {"shape": (3, 32, 32), "factor": 2.5}, "factor must be a positive integer"),
    ("super-resolution", {"shape": (256,)}, r"shape must be \(C, H, W\)"),
    ("super-resolution", {}, "needs the signal shape: pass shape="),
    ("box-inpainting", {"shape": (3, 32, 32), "box_fraction": 1.5}, r"box_fraction must be in \(0, 1\)"),
    ("random-inpainting", {"shape": (3, 32, 32), "fraction": 1.0}, "fraction of missing pixels"),
    ("gaussian-deblur", {"shape": (1, 32, 32), "kernel_size": 8, "scale_with_size": False},
     "kernel_size must be odd.*use 9"),
    ("gaussian-deblur", {"shape": (1, 16, 16), "kernel_size": 41, "scale_with_size": False},
     "kernel_size 41 is too large for a 16x16 image"),
    ("gaussian-deblur", {"shape": (1, 32, 32), "kernel_std": 0}, "kernel_std must be > 0"),
    ("motion-deblur", {"shape": (1, 32, 32), "intensity": -1}, "intensity and length_scale must be > 0"),
    ("phase-retrieval", {"shape": (1, 32, 32), "oversampling": 0.5}, "oversampling must be >= 1"),
    ("compressed-sensing", {"shape": (3, 256, 256)}, "too large.*channelwise = true"),
    ("compressed-sensing", {"shape": (1, 8, 8), "ratio": 0}, r"ratio .* must be in \(0, 1\]"),
    ("source-masking", {"shape": (4, 100), "known": [0, 4]}, r"distinct channel indices in \[0, 3\]"),
    ("source-masking", {"shape": (4, 100), "known": 1}, "known must be a list"),
    ("denoising", {"sigma_y": -0.1}, "sigma_y must be >= 0"),
    ("box-inpainting", {"shape": (1, 8, 8), "dtype": "int32"}, "dtype must be a real floating-point"),
])
def test_bad_settings_say_what_to_change(name, settings, message):
    with pytest.raises(ValueError, match=message):
        make(name, **settings)


def test_dtypes_are_read_by_the_core_parser():
    from pnpkit.priors import torch_dtype
    from pnpkit_operators._common import as_dtype

    for name in ("float32", "float64", "float16", "bfloat16", "torch.float64", torch.float64):
        assert as_dtype(name) == torch_dtype(name) and as_dtype(name).is_floating_point
    for bad in ("int32", torch.int64, "double", "complex64"):
        with pytest.raises(ValueError, match=r"dtype must be a real floating-point type .*\(one of "
                           r"float32, float64, float16, bfloat16\), got"):
            as_dtype(bad)
    assert make("box-inpainting", shape=(1, 8, 8), dtype="torch.float64").A(
        rand(1, 1, 8, 8, dtype=torch.float64)).dtype == torch.float64


def test_unknown_setting_is_rejected_by_name():
    with pytest.raises(TypeError, match="unknown setting 'factr'.*Did you mean 'factor'"):
        make("super-resolution", shape=(3, 32, 32), factr=2)


def test_defaults_are_plain_config_values():
    from pnpkit.config import factory_defaults

    table = pnpkit.get_manager().components["operator"]
    defaults = {n: factory_defaults(c.factory) for n, c in table.items() if c.plugin == "operators"}
    assert defaults["super-resolution"] == {"sigma_y": 0.0, "factor": 4, "filter": "bicubic",
                                            "padding": "circular", "max_iter": 100}
    assert defaults["box-inpainting"]["box_fraction"] == 100 / 256
    assert defaults["box-inpainting"]["position"] == [100 / 256, 100 / 256]
    assert defaults["random-inpainting"] == {"sigma_y": 0.0, "fraction": 0.5, "seed": 0}
    assert defaults["source-masking"]["known"] == [0, 1]
    assert defaults["compressed-sensing"]["ratio"] == 0.25
    assert defaults["motion-deblur"]["intensity"] == 0.5
    for values in defaults.values():
        assert values["sigma_y"] == 0.0
        assert all(isinstance(v, (bool, int, float, str, list)) for v in values.values())
    assert math.isclose(defaults["gaussian-deblur"]["kernel_std"], 3.0)


#: the file-based operators' kernel and mask (3 x 4 and 32 x 32 arrays)
REQUIRED: dict[str, dict[str, Any]] = {
    "blur": {"kernel": [[0.0, 1.0, 0.0, 0.0], [1.0, 4.0, 2.0, 1.0], [0.0, 2.0, 1.0, 0.0]]},
    "inpainting": {"mask": (torch.arange(32 * 32).reshape(32, 32) % 5 != 0).float()}}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_operator_runs_on_the_gpu():
    table = pnpkit.get_manager().components["operator"]
    for name in sorted(n for n, c in table.items() if c.plugin == "operators"):
        shape = (4, 256) if name in ("mixture", "source-masking") else (3, 32, 32)
        extra = REQUIRED.get(name, {})
        cpu = make(name, shape=shape, sigma_y=0.1, **extra)
        gpu = make(name, shape=shape, sigma_y=0.1, device="cuda", **extra)
        x = rand(2, *shape)
        y = gpu.A(x.cuda())
        assert y.device.type == "cuda"
        torch.testing.assert_close(y.cpu(), cpu.A(x), rtol=1e-4, atol=1e-4)
        p = ops.project(gpu, x.cuda(), y)
        assert p.device.type == "cuda" and p.shape == x.shape
        assert ops.pseudo_inverse(gpu, y).device.type == "cuda"
        assert ops.data_gradient(gpu, x.cuda(), y).device.type == "cuda"
        assert ops.measure(gpu, x.cuda(), torch.Generator("cuda").manual_seed(0)).device.type == "cuda"
