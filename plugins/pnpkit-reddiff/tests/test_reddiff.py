"""RED-Diff: the update, its weightings and orders, no network backprop, variants, contract."""

from __future__ import annotations

import math

import pytest
import torch

import pnpkit
from pnpkit.testing import GaussianDiffusionPrior, SolverContract, toy_problem
from pnpkit_reddiff import WEIGHTINGS, REDDiff, timestep_order


def test_weightings_and_orders():
    assert WEIGHTINGS["identity"](4.0) == 4.0 and WEIGHTINGS["sqrt"](4.0) == 2.0
    assert WEIGHTINGS["square"](3.0) == 9.0 and WEIGHTINGS["clip"](3.0) == 1.0
    assert WEIGHTINGS["log1p"](1.0) == pytest.approx(math.log(2))
    assert WEIGHTINGS["power2/3"](8.0) == pytest.approx(4.0) and WEIGHTINGS["constant"](9.0) == 1.0
    assert timestep_order(4, 1000, "descending") == [999, 666, 333, 0]
    assert timestep_order(4, 1000, "ascending") == [0, 333, 666, 999]
    rnd = timestep_order(50, 1000, "random", torch.Generator().manual_seed(0))
    assert sorted(rnd) == sorted(timestep_order(50, 1000, "descending")) and rnd != sorted(rnd, reverse=True)


def test_settings_validation_and_presets():
    assert (REDDiff(preset="box-inpainting").lr, REDDiff(preset="sr4").lr) == (0.25, 0.1)
    # The authors' sample_test.sh: 0.5 for Gaussian / nonlinear deblurring and phase retrieval.
    assert [REDDiff(preset=p).lr for p in ("gaussian-deblur", "motion-deblur", "phase-retrieval")] \
        == [0.5, 0.5, 0.5]
    assert REDDiff(preset="quick").iterations == 100
    with pytest.raises(ValueError, match="weighting must be one of"):
        REDDiff(weighting="cube")
    with pytest.raises(ValueError, match="'Adamm' is not a torch.optim optimiser"):
        REDDiff(optimizer="Adamm")
    assert pnpkit.get_manager().get("solver", "reddiff").factory is REDDiff


class NoBackprop(GaussianDiffusionPrior):
    """Fails if the network is ever called with gradients enabled."""

    def network(self, x_t, t):
        assert not torch.is_grad_enabled(), "RED-Diff must not backpropagate through the network"
        return super().network(x_t, t)


def test_network_is_never_differentiated_and_nfe_is_one_per_step():
    op, _, x, y = toy_problem(n=64, m=40)
    res = REDDiff(iterations=30, lr=0.1).solve(y.float(), op, NoBackprop(),
                                               generator=torch.Generator().manual_seed(0))
    assert res.nfe == 30
    assert [h["t"] for h in res.history][:2] == [999, 965]
    assert {"loss_obs", "loss_reg", "weight"} <= set(res.history[0])


def test_gradient_is_the_papers_update():
    """One SGD step with lr 1 moves mu by -(grad L_obs + w_t (eps_hat - eps) / N)."""
    op, _, x, y = toy_problem(n=16, m=16)
    y = y.float()
    prior = GaussianDiffusionPrior()
    solver = REDDiff(iterations=1, optimizer="SGD", lr=1.0, lam=0.5)
    g = torch.Generator().manual_seed(3)
    res = solver.solve(y, op, prior, generator=g)
    g = torch.Generator().manual_seed(3)
    mu = pnpkit.operators.pseudo_inverse(op, y)
    eps = torch.randn(mu.shape, generator=g)
    a = float(prior.alphas_cumprod[999])
    eps_hat = prior.eps(prior.noise(mu, 999, noise=eps), 999)
    w = 0.5 * math.sqrt((1 - a) / a)
    g_obs = op.A_adjoint(op.A(mu) - y) / y.numel()
    expected = mu - (g_obs + w * (eps_hat - eps) / mu.numel())
    torch.testing.assert_close(res.x, expected, rtol=1e-5, atol=1e-6)


def test_with_sigma_x0_the_data_term_is_evaluated_at_the_noisy_x0():
    """As the authors' code: x0 = mu + sigma_x0 n enters the data term as well as the noising.

    From mu = A^+ y on a consistent problem the residual at mu is 0, so only the noisy x0 can
    move mu: one SGD step (lr 1, lambda 0) gives mu - A^T (A x0 - y) / M exactly.
    """
    op, _, x, y = toy_problem(n=16, m=10)
    y = y.float()
    solver = REDDiff(iterations=1, optimizer="SGD", lr=1.0, lam=0.0, sigma_x0=0.1)
    res = solver.solve(y, op, GaussianDiffusionPrior(), generator=torch.Generator().manual_seed(4))
    mu = pnpkit.operators.pseudo_inverse(op, y)
    n = torch.randn(mu.shape, generator=torch.Generator().manual_seed(4))  # the first draw
    x0 = mu + 0.1 * n
    expected = mu - op.A_adjoint(op.A(x0) - y) / y.numel()
    torch.testing.assert_close(res.x, expected, rtol=1e-5, atol=1e-7)
    assert float((res.x - mu).abs().max()) > 1e-3, "evaluated at mu, the step would be 0"


def test_without_regulariser_it_fits_the_data():
    op, _, x, y = toy_problem(n=32, m=16)
    res = REDDiff(iterations=300, lam=0.0, lr=0.05, init="zeros").solve(y.float(), op,
                                                                        GaussianDiffusionPrior())
    assert res.history[-1]["residual"] < 1e-2


class ToyLatent(GaussianDiffusionPrior):
    def encode(self, x):
        return torch.nn.functional.avg_pool1d(x, 2)

    def decode(self, z):
        return z.repeat_interleave(2, dim=-1)


def test_latent_prior_decodes_inside_the_data_term():
    op, _, x, y = toy_problem(n=64, m=40)
    res = REDDiff(iterations=20, latent=True).solve(y.float(), op, ToyLatent())
    assert res.x.shape == (1, 1, 64)
    assert torch.equal(res.x[..., ::2], res.x[..., 1::2]), "the estimate is a decoded latent"


class Square:
    linear = False

    def A(self, x, **kw):
        return x**2

    def A_dagger(self, y, **kw):
        return y.clamp_min(0).sqrt()


def test_nonlinear_operator_and_audio_shape():
    x = 0.5 * torch.ones(1, 2, 128)
    res = REDDiff(iterations=50, lr=0.05).solve(Square().A(x), Square(), GaussianDiffusionPrior())
    assert res.x.shape == (1, 2, 128) and torch.isfinite(res.x).all()


class TestREDDiffContract(SolverContract):
    @pytest.fixture(params=["descending", "random"])
    def solver(self, request):
        return REDDiff(iterations=15, lr=0.2, order=request.param, sigma_x0=0.01)
