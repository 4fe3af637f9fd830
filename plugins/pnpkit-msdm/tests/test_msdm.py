"""MSDM Dirac sampler: levels, the mixture constraint, NFE, errors, the Gaussian posterior, contract."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

import pnpkit
from pnpkit.operators import MatrixOperator
from pnpkit.priors import FunctionDenoiser, karras_sigmas
from pnpkit.solvers import DoesNotApply
from pnpkit.testing import GaussianDiffusionPrior, SolverContract, toy_problem
from pnpkit_msdm import MSDMDirac
from pnpkit_operators.mixture import Mixture

K, L = 4, 64


def mixture_problem(k: int = K, n: int = L, scale: float = 0.3, seed: int = 0, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(batch, k, n, generator=g)
    op = Mixture(k)
    return op, x, op.A(x)


def test_registered_with_defaults():
    assert pnpkit.get_manager().get("solver", "msdm-dirac").factory is MSDMDirac
    s = MSDMDirac()
    assert (s.iterations, s.sigma_min, s.sigma_max, s.rho, s.s_churn, s.num_resamples) == (
        150, 1e-4, 1.0, 7.0, 20.0, 2)
    assert (s.s_tmin, s.s_tmax, s.s_noise, s.source_id, s.clamp) == (0.0, math.inf, 1.0, 0, True)


def test_noise_levels_are_karras_then_zero():
    levels = MSDMDirac().noise_levels()
    assert len(levels) == 151 and levels[-1] == 0.0
    assert levels[:-1] == karras_sigmas(150, 1e-4, 1.0, 7.0)
    assert levels[0] == pytest.approx(1.0) and levels[-2] == pytest.approx(1e-4)


@pytest.mark.parametrize("iterations, resamples", [(20, 1), (20, 2), (25, 3)])
def test_estimate_sums_to_the_mixture_and_nfe(iterations, resamples):
    op, x, y = mixture_problem()
    prior = GaussianDiffusionPrior(scale=0.3)
    res = MSDMDirac(iterations=iterations, num_resamples=resamples).solve(
        y, op, prior, generator=torch.Generator().manual_seed(0), reference=x)
    assert res.x.shape == x.shape
    torch.testing.assert_close(res.x.sum(1, keepdim=True), y, rtol=0, atol=1e-5)
    assert res.nfe == iterations * resamples  # one denoiser call per repeat, none at the start
    assert len(res.history) == iterations
    assert max(h["residual"] for h in res.history) < 1e-5
    levels = MSDMDirac(iterations=iterations).noise_levels()
    assert [h["sigma"] for h in res.history] == pytest.approx(levels[:-1])
    gamma = min(20.0 / iterations, math.sqrt(2) - 1)
    assert res.history[0]["sigma_hat"] == pytest.approx((1 + gamma) * levels[0])


def test_default_run_nfe():
    op, x, y = mixture_problem()
    res = MSDMDirac().solve(y, op, GaussianDiffusionPrior(scale=0.3),
                            generator=torch.Generator().manual_seed(0))
    assert res.nfe == 300
    torch.testing.assert_close(res.x.sum(1, keepdim=True), y, rtol=0, atol=1e-5)


def test_batches_and_flat_mixture_matrices():
    op, x, y = mixture_problem(batch=2)
    res = MSDMDirac(iterations=20).solve(y, op, GaussianDiffusionPrior(scale=0.3),
                                         generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(res.x.sum(1, keepdim=True), y, rtol=0, atol=1e-5)
    assert not torch.equal(res.x[0], res.x[1])
    # A dense mixing matrix measuring (B, L) is a mixture too.
    flat = MatrixOperator(torch.cat([torch.eye(L)] * K, dim=1), shape=(K, L))
    yf = flat.A(x[:1])
    res = MSDMDirac(iterations=20, source_id=1).solve(yf, flat, GaussianDiffusionPrior(scale=0.3),
                                                      generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(res.x.sum(1), yf, rtol=0, atol=1e-5)


def test_deterministic_under_a_seed_and_seeds_differ():
    op, x, y = mixture_problem()
    solver = MSDMDirac(iterations=20)
    run = lambda seed: solver.solve(y, op, GaussianDiffusionPrior(scale=0.3),  # noqa: E731
                                    generator=torch.Generator().manual_seed(seed)).x
    assert torch.equal(run(3), run(3))
    assert not torch.allclose(run(3), run(4))


def test_a_non_mixture_operator_does_not_apply():
    # DoesNotApply (a TypeError, not a ValueError): pnpkit bench reports the row as "does not apply".
    op, _, _, y = toy_problem(n=64, m=40)
    with pytest.raises(DoesNotApply, match=r"msdm-dirac separates a mixture y = sum_k x_k .*"
                                         r"operator MatrixOperator is not one"):
        MSDMDirac(iterations=5).solve(y.float(), op, GaussianDiffusionPrior())
    # A weighted sum of the channels is not the mixture either.
    weights = torch.cat([w * torch.eye(L) for w in (1.0, 2.0, 1.0, 0.5)], dim=1)
    weighted = MatrixOperator(weights, shape=(K, L))
    with pytest.raises(DoesNotApply, match="operator MatrixOperator is not one: A.x. is not the sum") as err:
        MSDMDirac(iterations=5).solve(weighted.A(torch.zeros(1, K, L)), weighted,
                                      GaussianDiffusionPrior())
    assert not isinstance(err.value, ValueError)
    assert str(err.value) == ("msdm-dirac separates a mixture y = sum_k x_k (sources as channels, "
                              "e.g. the 'mixture' operator); operator MatrixOperator is not one: "
                              "A(x) is not the sum of the channels")


def test_settings_are_checked():
    with pytest.raises(ValueError, match="num_resamples must be >= 1"):
        MSDMDirac(num_resamples=0)
    with pytest.raises(ValueError, match="source_id must be >= 0"):
        MSDMDirac(source_id=-1)
    with pytest.raises(ValueError, match="0 < sigma_min < sigma_max"):
        MSDMDirac(sigma_min=2.0)
    op, x, y = mixture_problem()
    with pytest.raises(ValueError, match="source_id 4 is out of range for 4 sources"):
        MSDMDirac(iterations=5, source_id=4).solve(y, op, GaussianDiffusionPrior())


def test_denoiser_output_is_clamped():
    prior = FunctionDenoiser(lambda x, sigma: 3 * x)
    x = torch.ones(1, K, 8)
    assert float(MSDMDirac().denoised(prior, x, 0.1).max()) == 1.0
    assert float(MSDMDirac(clamp=False).denoised(prior, x, 0.1).max()) == 3.0


def test_averages_near_the_gaussian_posterior_mean():
    """Independent Gaussian sources x_k ~ N(0, s_k^2): E[x_k | y] = s_k^2 / sum_j s_j^2 * y.

    The sampler's average over seeds, regressed on y, gives each source's share; it must be
    within 0.05 of the variance split, and the tolerance separates it from a wrong split
    (equal shares, or shares proportional to the standard deviations: >= 0.1 away).

    The constrained source is the widest one (source 3). Constraining the narrowest (source 0,
    the default) makes the Euler steps stiffer (its score, 1 / 0.1^2, enters every source's
    derivative) and the split is further off at 150 levels: measured 0.06 from the right split
    on 24 seeds, against 0.03 with source 3.
    """
    scales = torch.tensor([0.1, 0.2, 0.3, 0.4]).view(1, K, 1)
    g = torch.Generator().manual_seed(0)
    x = scales * torch.randn(1, K, 256, generator=g)
    op = Mixture(K)
    y = op.A(x)
    prior = GaussianDiffusionPrior(scale=scales)  # a per-source variance broadcasts
    samples = [MSDMDirac(source_id=3).solve(y, op, prior,
                                            generator=torch.Generator().manual_seed(s)).x
               for s in range(6)]
    mean = torch.stack(samples).mean(0)
    share = ((mean * y).sum(-1) / (y * y).sum()).flatten()
    right = (scales**2 / (scales**2).sum()).flatten()
    tol = 0.05
    assert float((share - right).abs().max()) < tol, (share, right)
    for wrong in (torch.full((K,), 1 / K), (scales / scales.sum()).flatten()):
        assert float((share - wrong).abs().max()) > 2 * tol
    torch.testing.assert_close(share.sum(), torch.tensor(1.0), rtol=0, atol=1e-4)


def test_sample_spread_follows_the_gaussian_posterior_below_the_schedules_floor():
    """Four sources x_k ~ N(0, 0.1^2), y = sum: x_k | y has variance 0.75 * 0.01 = 0.0075.

    51 of the 150 Karras levels lie below the DDPM schedule's floor (0.01); snapping them to
    the nearest timestep over-denoised the last steps (measured: 0.0037). The fractional
    timesteps and the floor's score give 0.0067 on this draw.
    """
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(1, K, 4096, generator=g)
    op = Mixture(K)
    y = op.A(x)
    prior = GaussianDiffusionPrior(scale=0.1)
    assert sum(s < float(prior.sigma(0)) for s in MSDMDirac().noise_levels()[:-1]) == 51
    res = MSDMDirac().solve(y, op, prior, generator=torch.Generator().manual_seed(1))
    spread = float((res.x - y / K).var())
    assert 0.0060 < spread < 0.0080, spread


def test_constrains_the_first_source_by_default_as_msdm():
    """MSDM's differential_with_dirac and its Slakh evaluation constrain source 0 (bass)."""
    op, x, y = mixture_problem()
    calls = []

    class Spy(MSDMDirac):
        def constrain(self, x, y, c):
            calls.append(c)
            return super().constrain(x, y, c)

    Spy(iterations=3, num_resamples=1).solve(y, op, GaussianDiffusionPrior(scale=0.3))
    assert calls and set(calls) == {0}
    calls.clear()
    Spy(iterations=3, num_resamples=1, source_id=None).solve(y, op, GaussianDiffusionPrior(scale=0.3))
    assert set(calls) == {K - 1}


def test_docstring_example_runs():
    import pnpkit_msdm.dirac as module

    assert doctest.testmod(module).failed == 0


class TestMSDMDiracContract(SolverContract):
    @pytest.fixture
    def problem(self):
        op, x, y = mixture_problem()
        return op, GaussianDiffusionPrior(scale=0.3), x, y

    @pytest.fixture(params=[dict(num_resamples=2), dict(num_resamples=1, source_id=0, s_churn=0.0)])
    def solver(self, request):
        return MSDMDirac(iterations=20, **request.param)
