"""The core's operator helpers and diffusion-prior maths, on problems with exact answers."""

from __future__ import annotations

import pytest
import torch

from pnpkit import operators as ops
from pnpkit.operators import MatrixOperator
from pnpkit.priors import DiffusionPrior, FunctionDenoiser
from pnpkit.testing import GaussianDiffusionPrior, OperatorContract, PriorContract, TikhonovPrior, toy_problem


class TestMatrixOperator(OperatorContract):
    @pytest.fixture
    def operator(self):
        return toy_problem(n=24, m=10)[0]

    @pytest.fixture
    def signal(self):
        return torch.randn(3, 1, 24, dtype=torch.float64)


class TestGaussianDiffusionPrior(PriorContract):
    @pytest.fixture
    def prior(self):
        return GaussianDiffusionPrior(scale=0.5)

    @pytest.fixture(params=["image", "audio"])
    def signal(self, request):
        shape = (2, 3, 8, 8) if request.param == "image" else (2, 4, 256)
        return 0.5 * torch.randn(shape)


class TestTikhonovPrior(PriorContract):
    @pytest.fixture
    def prior(self):
        return TikhonovPrior(lam=2.0)

    @pytest.fixture
    def signal(self):
        return torch.rand(2, 1, 8, 8) * 2 - 1


def test_prox_data_matches_closed_form():
    op, _, _, y = toy_problem()
    z = torch.randn(1, 1, 16, dtype=torch.float64)
    a = op.matrix
    gamma = 0.7
    exact = torch.linalg.solve(a.T @ a + torch.eye(16, dtype=a.dtype) / gamma,
                               a.T @ y[0] + z.flatten() / gamma)
    torch.testing.assert_close(ops.prox_data(op, z, y, gamma).flatten(), exact)


def test_projection_and_pseudo_inverse():
    op, _, x, y = toy_problem(n=16, m=6)
    p = ops.project(op, torch.zeros_like(x), y)
    torch.testing.assert_close(op.A(p), y)
    torch.testing.assert_close(ops.project(op, p, y), p)  # idempotent


class Square:
    """A nonlinear operator without A_vjp: the core falls back on autograd."""

    def A(self, x):
        return x**2


def test_nonlinear_gradient_and_projection_errors():
    x = torch.tensor([[[0.5, -1.0]]])
    y = torch.tensor([[[1.0, 1.0]]])
    # d/dx 1/2 (x^2 - y)^2 = 2x (x^2 - y)
    torch.testing.assert_close(ops.data_gradient(Square(), x, y), 2 * x * (x**2 - y))
    assert not ops.is_linear(Square())
    with pytest.raises(TypeError, match="nonlinear and defines no project"):
        ops.project(Square(), x, y)
    with pytest.raises(TypeError, match="has no A_dagger"):
        ops.pseudo_inverse(Square(), y)


def test_measurement_noise_is_seeded_and_has_the_right_level():
    op = MatrixOperator(torch.eye(4000), shape=(1, 4000), sigma=0.05)
    x = torch.zeros(1, 1, 4000)
    a = ops.measure(op, x, torch.Generator().manual_seed(1))
    b = ops.measure(op, x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert abs(float(a.std()) - 0.05) < 0.003


def test_tweedie_is_the_exact_posterior_mean():
    prior = GaussianDiffusionPrior(scale=0.5)
    x_t = torch.randn(2, 1, 4, 4)
    t = 300
    a = float(prior.alphas_cumprod[t])
    expected = a**0.5 * 0.25 * x_t / (a * 0.25 + 1 - a)
    torch.testing.assert_close(prior.x0(x_t, t), expected, rtol=1e-5, atol=1e-6)


class VPrior(GaussianDiffusionPrior):
    """The same model, reparametrised to predict v = sqrt(a) eps - sqrt(1 - a) x0."""

    def __init__(self):
        super().__init__(scale=0.5)
        self.prediction_type = "v_prediction"

    def network(self, x_t, t):
        eps = super().network(x_t, t)
        a = self.abar(t, x_t)
        x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0


def test_v_prediction_gives_the_same_noise_estimate():
    x_t = torch.randn(3, 2, 8)
    t = torch.tensor([10, 500, 990])
    torch.testing.assert_close(VPrior().eps(x_t, t), GaussianDiffusionPrior(0.5).eps(x_t, t),
                               rtol=1e-5, atol=1e-5)


def test_ddim_counts_steps_and_reaches_the_posterior_mean_for_one_step():
    prior = GaussianDiffusionPrior(scale=0.5)
    x_t = torch.randn(2, 1, 8, 8)
    prior.reset_nfe()
    prior.ddim(x_t, 400, steps=20)
    assert prior.nfe == 20
    prior.reset_nfe()
    prior.ddim(x_t, 5, steps=20)
    assert prior.nfe == 5, "no more steps than timesteps"
    torch.testing.assert_close(prior.ddim(x_t, 1, steps=20), prior.x0(x_t, 1, clip=True))


def test_ddim_of_a_gaussian_preserves_the_data_variance():
    # Deterministic DDIM maps N(0, I) at t=T to the data distribution N(0, s^2 I).
    prior = GaussianDiffusionPrior(scale=0.3)
    prior.clip = None
    x_T = torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = prior.ddim(x_T, 999, steps=200, clip=False)
    assert abs(float(out.std()) - 0.3) < 0.01


def test_denoise_uses_the_matching_timestep():
    prior = GaussianDiffusionPrior(scale=0.5)
    t = prior.sigma_to_t(0.2)
    assert abs(float(prior.sigma(t)) - 0.2) < 0.01
    x = torch.randn(1, 1, 4, 4)
    # For Gaussian data the MMSE denoiser at noise sigma is s^2 / (s^2 + sigma^2) x: the
    # network runs at the fractional timestep of 0.2, not at the nearest step's level.
    s2, sig2 = 0.25, 0.2**2
    torch.testing.assert_close(prior.denoise(x, 0.2), s2 / (s2 + sig2) * x, rtol=1e-4, atol=1e-5)


def test_schedule_and_timestep_errors():
    prior = GaussianDiffusionPrior()
    with pytest.raises(ValueError, match="timestep out of range"):
        prior.eps(torch.zeros(1, 1, 2), 1000)
    with pytest.raises(ValueError, match="prediction_type must be"):
        DiffusionPrior(prior.alphas_cumprod, prediction_type="score")


def test_function_denoiser_counts_calls():
    d = FunctionDenoiser(lambda x, s: x * 0)
    d.denoise(torch.ones(1), 0.1)
    d.denoise(torch.ones(1), 0.1)
    assert d.nfe == 2


def test_audio_metrics():
    from pnpkit.metrics import si_snr, si_snri

    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 4, 4000, generator=g)
    assert float(si_snr(3.0 * ref, ref).min()) > 80, "SI-SNR ignores scale"
    noisy = ref + 0.1 * torch.randn(ref.shape, generator=g)
    torch.testing.assert_close(si_snr(noisy, ref), torch.full((2,), 20.0), atol=0.3, rtol=0)
    # The mixture itself as every estimate improves nothing.
    mix = ref.sum(1, keepdim=True).expand_as(ref)
    torch.testing.assert_close(si_snri(mix, ref), torch.zeros(2), atol=1e-4, rtol=0)
    assert float(si_snri(noisy, ref).min()) > 20
