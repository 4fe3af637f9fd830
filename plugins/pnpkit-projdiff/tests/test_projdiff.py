"""ProjDiff: levels, projections, the noisy regimes, nonlinear and audio problems, contract."""

from __future__ import annotations

import pytest
import torch

import pnpkit
from pnpkit.operators import MatrixOperator
from pnpkit.solvers import SolveContext
from pnpkit.testing import GaussianDiffusionPrior, SolverContract, toy_problem
from pnpkit_projdiff import ProjDiff, equivalent_noise_std, karras_sigmas


def test_noise_levels():
    prior = GaussianDiffusionPrior()
    levels = ProjDiff(iterations=100).noise_levels(prior)
    assert levels[0] == pytest.approx(float(prior.sigma(990)))
    assert levels[-1] == pytest.approx(float(prior.sigma(0)))
    assert len(levels) == 100 and levels == sorted(levels, reverse=True)
    k = karras_sigmas(150, 1e-4, 1.0, 7.0)
    assert k[0] == pytest.approx(1.0) and k[-1] == pytest.approx(1e-4) and len(k) == 150
    sep = ProjDiff(preset="separation")
    assert (sep.iterations, sep.repeats, sep.eta, sep.beta, sep.levels) == (150, 5, 0.1, 0.5, "karras")


def test_presets_and_validation():
    assert ProjDiff(preset="sr4").eta == 1.7 and ProjDiff(preset="gaussian-deblur-noisy").eta == 0.1
    assert ProjDiff(preset="phase-retrieval").iterations == 1000
    assert ProjDiff(preset="sr4", eta=2.0).eta == 2.0
    with pytest.raises(ValueError, match="projdiff: levels must be one of ddpm, karras, got 'cosine'"):
        ProjDiff(levels="cosine")
    assert pnpkit.get_manager().get("solver", "projdiff").factory is ProjDiff


class NoBackprop(GaussianDiffusionPrior):
    def network(self, x_t, t):
        assert not torch.is_grad_enabled()
        return super().network(x_t, t)


def test_noiseless_iterates_stay_on_the_measurement_set():
    op, _, x, y = toy_problem(n=64, m=40)
    res = ProjDiff(iterations=20, repeats=2, eta=1.0).solve(y.float(), op, NoBackprop(),
                                                            generator=torch.Generator().manual_seed(0))
    assert res.nfe == 20 * 2 + 1
    assert max(h["residual"] for h in res.history) < 1e-5
    assert [round(h["sigma"], 6) for h in res.history] == [
        round(s, 6) for s in ProjDiff(iterations=20).noise_levels(GaussianDiffusionPrior())]


def test_equivalent_noise_level():
    g = torch.Generator().manual_seed(0)
    inpaint = MatrixOperator(torch.eye(400)[::2], shape=(1, 400))
    y = torch.zeros(1, 200)
    assert equivalent_noise_std(inpaint, y, 0.1, samples=8, generator=g) == pytest.approx(0.1, rel=1e-6)
    # 4-fold average pooling: A^+ = 4 A^T, noise std grows by 2 = sqrt(4) ... per pixel r = 2.
    pool = torch.zeros(100, 400)
    for i in range(100):
        pool[i, 4 * i:4 * i + 4] = 0.25
    assert equivalent_noise_std(MatrixOperator(pool, shape=(1, 400)), torch.zeros(1, 100), 0.1,
                                samples=8, generator=g) == pytest.approx(0.2, rel=1e-6)


def test_noisy_measurements_switch_regimes_and_do_not_fit_the_noise():
    op, _, x, y = toy_problem(n=64, m=40, sigma=0.2)
    y = y.float()
    solver = ProjDiff(iterations=40, eta=0.5)
    res = solver.solve(y, op, GaussianDiffusionPrior(scale=0.6), generator=torch.Generator().manual_seed(0))
    # The level the solve used: setup, with the same generator, draws it first.
    ctx = SolveContext(y, op, GaussianDiffusionPrior(scale=0.6), torch.Generator().manual_seed(0), None)
    sig_eq = solver.setup(ctx, pnpkit.operators.pseudo_inverse(op, y))["sigma_eq"]
    assert sig_eq == equivalent_noise_std(op, y, 0.2, generator=torch.Generator().manual_seed(0))
    assert sig_eq > 0
    above = [h for h in res.history if h["sigma"] >= sig_eq]
    assert 0 < len(above) < len(res.history), "both regimes are visited"
    # Not projected: the estimate keeps a residual of the order of the noise.
    assert res.history[-1]["residual"] > 0.02
    off = ProjDiff(iterations=40, eta=0.5, noisy=False).solve(y, op, GaussianDiffusionPrior(scale=0.6),
                                                               generator=torch.Generator().manual_seed(0))
    assert off.history[-1]["residual"] < 1e-4, "noisy=False projects onto the noisy y"


class SquareWithProjection:
    """y = |x|: nonlinear; the 'projection' replaces magnitudes and keeps signs."""

    linear = False

    def A(self, x, **kw):
        return x.abs()

    def A_dagger(self, y, **kw):
        return y

    def project(self, x, y):
        return torch.sign(x) * y


def test_nonlinear_operator_uses_its_projection():
    x = torch.tensor([[[0.5, -0.3, 0.2, -0.8] * 8]])
    op = SquareWithProjection()
    res = ProjDiff(iterations=10, eta=1.0).solve(op.A(x), op, GaussianDiffusionPrior(),
                                                  generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(res.x.abs(), x.abs())


def test_separation_estimate_sums_to_the_mixture():
    k, n = 4, 256
    mix = torch.cat([torch.eye(n)] * k, dim=1)
    op = MatrixOperator(mix, shape=(k, n))
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(1, k, n, generator=g)
    y = op.A(x)
    res = ProjDiff(preset="separation", iterations=10, repeats=2).solve(
        y, op, GaussianDiffusionPrior(scale=0.3), generator=g)
    assert res.x.shape == (1, k, n) and res.nfe == 10 * 2 + 1
    torch.testing.assert_close(res.x.sum(1), y, rtol=1e-5, atol=1e-5)


def test_partial_generation_keeps_the_given_stems_and_generates_the_others():
    # Stems 0 and 2 are given (the source-masking operator); 1 and 3 are generated.
    op = pnpkit.create("operator", "source-masking", shape=(4, 512), known=[0, 2])
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(1, 4, 512, generator=g)
    y = op.A(x)
    res = ProjDiff(preset="separation", iterations=30, repeats=2).solve(
        y, op, GaussianDiffusionPrior(scale=0.3), generator=g)
    torch.testing.assert_close(res.x[:, [0, 2]], x[:, [0, 2]])
    generated = res.x[:, [1, 3]]
    # Independent Gaussian stems: nothing ties the generated ones to the given ones. ProjDiff
    # is an optimisation, so with eta = 0.1 the free stems settle near the prior's mode with
    # a spread of about eta / 2 of its variance (std ~0.07 for scale 0.3), not at zero.
    assert 0.03 < float(generated.std()) < 0.15
    assert float((generated - x[:, [1, 3]]).pow(2).mean()) > 0.05


class TestProjDiffContract(SolverContract):
    @pytest.fixture(params=["ddpm", "karras"])
    def solver(self, request):
        return ProjDiff(iterations=10, repeats=2, eta=1.0, beta=0.5, levels=request.param)
