"""ContinuousDiffusionPrior: a denoiser D(x, sigma) behind the DiffusionPrior interface.

Gaussian data x0 ~ N(0, s^2 I) has the exact denoiser D(x, sigma) = s^2 / (s^2 + sigma^2) x,
so every quantity the prior derives from it (eps and x0 at integer and fractional timesteps,
denoise at any level, DDIM) has a closed form to compare with.
"""

from __future__ import annotations

import math

import pytest
import torch

import pnpkit
from pnpkit.priors import ContinuousDiffusionPrior, DiffusionPrior
from pnpkit.testing import GaussianDiffusionPrior, PriorContract, toy_problem

S = 0.5  # the data's standard deviation


def gaussian_denoiser(scale: float = S):
    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.view(-1, *([1] * (x.dim() - 1)))
        return scale**2 / (scale**2 + s**2) * x

    return denoise


def gaussian(scale: float = S, sigma_min: float = 1e-4, sigma_max: float = 1e3,
             below_floor: str = "score") -> ContinuousDiffusionPrior:
    return ContinuousDiffusionPrior(sigma_min, sigma_max, denoiser=gaussian_denoiser(scale),
                                    below_floor=below_floor)


def exact_eps(x_t: torch.Tensor, a: float, scale: float = S) -> torch.Tensor:
    return math.sqrt(1 - a) * x_t / (a * scale**2 + 1 - a)


def abar_of(prior: DiffusionPrior, t: float) -> float:
    """abar at a (fractional) timestep: log-linear in sigma between the grid's steps."""
    logs = 0.5 * torch.log((1 - prior.alphas_cumprod) / prior.alphas_cumprod)
    i = min(int(math.floor(t)), prior.num_timesteps - 2)
    f = t - i
    log_sigma = float(logs[i]) * (1 - f) + float(logs[i + 1]) * f
    return 1 / (1 + math.exp(2 * log_sigma))


@pytest.mark.parametrize("t", [0, 1, 100, 500, 998, 999, 0.5, 100.25, 700.7, 998.9])
def test_eps_and_x0_match_the_gaussian_at_integer_and_fractional_timesteps(t):
    prior = gaussian()
    x_t = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = abar_of(prior, t)
    before = prior.nfe
    eps = prior.eps(x_t, t)
    assert prior.nfe - before == 1
    torch.testing.assert_close(eps, exact_eps(x_t, a), rtol=1e-10, atol=1e-12)
    x0 = prior.x0(x_t, t)
    want = math.sqrt(a) * S**2 / (a * S**2 + 1 - a) * x_t  # E[x0 | x_t]
    torch.testing.assert_close(x0, want, rtol=1e-9, atol=1e-12)
    per_item = prior.eps(x_t, torch.full((3,), t, dtype=torch.float64))
    torch.testing.assert_close(per_item, eps, rtol=0, atol=0)


def test_the_grid_is_the_linear_ddpm_schedule_and_matches_the_ddpm_gaussian_prior():
    prior, ddpm = gaussian(), GaussianDiffusionPrior(scale=S)
    torch.testing.assert_close(prior.alphas_cumprod, ddpm.alphas_cumprod, rtol=0, atol=0)
    x_t = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for t in (0, 100, 999):
        torch.testing.assert_close(prior.eps(x_t, t), ddpm.eps(x_t, t), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sigma", [1e-4, 3e-4, 1e-3, 5e-3, 0.01, 0.05, 0.2, 1.0])
def test_denoise_is_exact_at_every_level_of_the_range(sigma):
    prior = gaussian()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(prior.denoise(x, sigma), S**2 / (S**2 + sigma**2) * x,
                               rtol=1e-12, atol=0)
    assert prior.nfe == 1


def test_below_the_grids_floor_it_is_exact_where_the_ddpm_prior_holds_the_score():
    """At sigma = 1e-3 (under the DDPM grid's 0.01) on data of std 0.01, the DDPM prior's
    held score is off by a factor ~2 in x - D; the continuous prior is exact."""
    scale, sigma = 0.01, 1e-3
    x = torch.randn(1, 1, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = scale**2 / (scale**2 + sigma**2) * x
    cont = gaussian(scale).denoise(x, sigma)
    ddpm = GaussianDiffusionPrior(scale=scale).denoise(x, sigma)
    torch.testing.assert_close(cont, exact, rtol=1e-12, atol=0)
    ratio = float((x - ddpm).norm() / (x - exact).norm())
    assert 0.45 < ratio < 0.55, ratio


def test_per_item_levels_in_one_evaluation():
    prior = gaussian()
    x = torch.ones(4, 1, 3, dtype=torch.float64)
    levels = torch.tensor([1e-5, 1e-3, 0.3, 2e3], dtype=torch.float64)
    out = prior.denoise(x, levels)
    assert prior.nfe == 1
    one = torch.stack([prior.denoise(x[i:i + 1], float(s))[0] for i, s in enumerate(levels)])
    torch.testing.assert_close(out, one, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match=r"sigma must be a number or one level per item \(4\), got 3"):
        prior.denoise(x, torch.ones(3))
    with pytest.raises(ValueError, match=r"sigma must be finite and >= 0"):
        prior.denoise(x, -0.1)


def test_below_sigma_min_the_score_is_held_and_above_sigma_max_the_level_is_clamped():
    lo, hi = 0.01, 2.0
    prior = gaussian(sigma_min=lo, sigma_max=hi)
    x = torch.randn(1, 1, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    d_lo = S**2 / (S**2 + lo**2) * x
    for s in (5e-3, 1e-4):  # x + (s / sigma_min)^2 (D(x, sigma_min) - x)
        torch.testing.assert_close(prior.denoise(x, s), x + (s / lo) ** 2 * (d_lo - x), rtol=1e-12, atol=0)
    torch.testing.assert_close(prior.denoise(x, 0.0), x, rtol=0, atol=0)  # D(x, 0) = x
    floor = gaussian(sigma_min=lo, sigma_max=hi, below_floor="floor")
    torch.testing.assert_close(floor.denoise(x, 1e-4), d_lo, rtol=1e-12, atol=0)
    torch.testing.assert_close(prior.denoise(x, 50.0), S**2 / (S**2 + hi**2) * x, rtol=1e-12, atol=0)
    # eps at t = 999 (sigma_t ~ 157): D at sigma_max, divided by the true sigma_t
    x_t = x.clone()
    a = float(prior.alphas_cumprod[999])
    sigma_t = math.sqrt((1 - a) / a)
    x_ve = x_t / math.sqrt(a)
    want = (x_ve - S**2 / (S**2 + hi**2) * x_ve) / sigma_t
    torch.testing.assert_close(prior.eps(x_t, 999), want, rtol=1e-10, atol=0)


def test_ddim_and_tweedie_match_the_analytic_values():
    prior, ddpm = gaussian(), GaussianDiffusionPrior(scale=S)
    x_t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    for t, steps in ((999, 20), (300, 7), (50, 50)):
        a = prior.ddim(x_t, t, steps=steps, clip=False)
        b = ddpm.ddim(x_t, t, steps=steps, clip=False)
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    # DDIM(eta = 0) with the exact eps of Gaussian data maps x_t to a multiple of itself:
    # one step from t to 0 is Tweedie, E[x0 | x_t].
    a_t = float(prior.alphas_cumprod[300])
    torch.testing.assert_close(prior.ddim(x_t, 300, steps=1, clip=False),
                               math.sqrt(a_t) * S**2 / (a_t * S**2 + 1 - a_t) * x_t,
                               rtol=1e-10, atol=1e-12)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    prior.tweedie_denoise(x, 0.3).sum().backward()  # differentiable (DPS-style guidance)
    assert x.grad is not None
    torch.testing.assert_close(x.grad, torch.full_like(x, S**2 / (S**2 + 0.09)))


def test_precision_runs_the_denoiser_under_autocast_and_returns_the_inputs_dtype():
    seen = []

    def fn(x, sigma):
        seen.append((torch.ones(2, 2) @ torch.ones(2, 2)).dtype)
        return x

    prior = ContinuousDiffusionPrior(1e-3, 10.0, denoiser=fn)
    prior.precision = "bf16"
    x = torch.ones(1, 1, 4)
    assert prior.denoise(x, 0.1).dtype == torch.float32 and prior.eps(x, 10).dtype == torch.float32
    assert seen == [torch.bfloat16, torch.bfloat16]


def test_settings_are_checked_in_one_line():
    with pytest.raises(ValueError, match=r"need 0 < sigma_min < sigma_max \(finite\), got "
                                         r"sigma_min=1.0, sigma_max=0.5"):
        ContinuousDiffusionPrior(1.0, 0.5, denoiser=gaussian_denoiser())
    with pytest.raises(NotImplementedError, match="define denoiser"):
        ContinuousDiffusionPrior(1e-3, 1.0).denoise(torch.ones(1, 1, 2), 0.1)
    with pytest.raises(ValueError, match=r"timestep out of range \[0, 999\]"):
        gaussian().eps(torch.ones(1, 1, 2), 1000.5)


class TestContract(PriorContract):
    @pytest.fixture
    def prior(self):
        return gaussian()

    @pytest.fixture
    def signal(self):
        return 0.5 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name, settings", [("dcdp", {}), ("projdiff", {}),
                                            ("reddiff", {"iterations": 200}),
                                            ("dps", {"iterations": 100})])
def test_solvers_run_unchanged_and_agree_with_the_ddpm_gaussian_prior(name, settings):
    """Within the grid's levels both priors are exact, so the solvers' results agree."""
    op, _, x, y = toy_problem(n=64, m=40, sigma=0.0)
    solver = pnpkit.create("solver", name, **settings)
    a = solver.solve(y, op, GaussianDiffusionPrior(S), generator=torch.Generator().manual_seed(0))
    b = solver.solve(y, op, gaussian(), generator=torch.Generator().manual_seed(0))
    assert a.nfe == b.nfe > 0
    torch.testing.assert_close(b.x, a.x, rtol=1e-5, atol=1e-5)


def test_diffpir_runs_unchanged():
    op = pnpkit.create("operator", "sr-avgpool", shape=(1, 16, 16), factor=2)
    x = S * torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = op.A(x)
    solver = pnpkit.create("solver", "diffpir", iterations=10)
    a = solver.solve(y, op, GaussianDiffusionPrior(S), generator=torch.Generator().manual_seed(0))
    b = solver.solve(y, op, gaussian(), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(b.x, a.x, rtol=1e-4, atol=1e-4)


def test_msdm_dirac_sample_spread_is_nearer_the_posterior_than_with_the_ddpm_grids_floor():
    """Four sources x_k ~ N(0, 0.01^2), y = their sum: x_k | y has variance 0.75 * 1e-4.

    The continuous prior's spread is the sampler's own (150 Karras levels from 1 to 1e-4):
    0.84 of the posterior's, the same ratio as on sources of std 0.1 (the problem is scale
    free once D is exact at every level; 600 levels give 0.96). On the DDPM grid, whose floor
    0.01 is the sources' own scale, the held score gives 1.45 and the floor rule 0.0003.
    """
    from pnpkit_msdm import MSDMDirac
    from pnpkit_operators.mixture import Mixture

    k = 4

    def ratio(prior, scale):
        x = scale * torch.randn(1, k, 1024, generator=torch.Generator().manual_seed(0))
        op = Mixture(k)
        y = op.A(x)
        res = MSDMDirac().solve(y, op, prior, generator=torch.Generator().manual_seed(1))
        return float((res.x - y / k).var()) / (0.75 * scale**2)

    cont = ratio(gaussian(0.01, sigma_min=1e-4, sigma_max=80.0), 0.01)
    score = ratio(GaussianDiffusionPrior(0.01), 0.01)
    floor = ratio(GaussianDiffusionPrior(0.01, below_floor="floor"), 0.01)
    assert 0.78 < cont < 0.92, cont
    assert abs(cont - ratio(gaussian(0.1, sigma_min=1e-4, sigma_max=80.0), 0.1)) < 0.03
    assert abs(score - 1) > 0.3 and floor < 0.01, (score, floor)
    assert abs(cont - 1) < abs(score - 1) and abs(cont - 1) < abs(floor - 1)


def test_tiled_keeps_the_continuous_levels_below_the_grids_floor():
    from pnpkit.tiling import tiled

    prior = gaussian()
    tiles = tiled(prior, tile=16, overlap=4)
    x = torch.randn(2, 1, 40, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for sigma in (1e-3, 0.05, torch.tensor([2e-4, 0.3])):
        before = tiles.nfe
        got = tiles.denoise(x, sigma)
        assert tiles.nfe - before == 1
        torch.testing.assert_close(got, prior.denoise(x, sigma), rtol=1e-12, atol=1e-12)
    # exact below 0.01, where a grid prior holds the score at its floor
    s = 1e-3
    torch.testing.assert_close(tiles.denoise(x, s), S**2 / (S**2 + s**2) * x, rtol=1e-9, atol=1e-12)
