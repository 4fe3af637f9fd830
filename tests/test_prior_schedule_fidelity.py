"""DiffusionPrior against references with known answers: DDIM step for step against diffusers'
DDIMScheduler (eps recomputed from the clipped x0), and ``denoise`` at noise levels between the
schedule's steps and below its floor against the Gaussian posterior mean."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from pnpkit.testing import GaussianDiffusionPrior


def _scheduler(prior: GaussianDiffusionPrior) -> DDIMScheduler:
    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                          beta_schedule="linear", clip_sample=True, clip_sample_range=1.0,
                          set_alpha_to_one=True, prediction_type="epsilon")
    sched.set_timesteps(50)  # a stride of 20 timesteps between calls
    # The same schedule in float64 on both sides (diffusers keeps it in float32).
    sched.alphas_cumprod = prior.alphas_cumprod.clone()
    sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return sched


def _diffusers_ddim(prior, sched, x, grid, clipped=True):
    """diffusers' DDIM over ``grid`` (stride 20): the last step's sample and x0 estimate."""
    out = None
    for t in grid:
        eps = prior.network(x, torch.full((x.shape[0],), t))
        out = sched.step(eps, t, x, eta=0.0, use_clipped_model_output=clipped)
        x = out.prev_sample
    return out.prev_sample, out.pred_original_sample


class Mixing(GaussianDiffusionPrior):
    """A network that mixes neighbouring samples, so a clipped sample's eps moves the others."""

    def network(self, x_t, t):
        out = super().network(x_t, t)
        return out + 0.3 * out.roll(1, -1)


def test_ddim_matches_diffusers_with_eps_recomputed_from_the_clipped_x0():
    # Data of std 0.8: some Tweedie estimates leave [-1, 1], so clipping acts, not everywhere.
    prior = Mixing(scale=0.8)
    g = torch.Generator().manual_seed(0)
    x_t = prior.noise(0.8 * torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64), 400,
                      generator=g)
    unclipped = prior.ddim(x_t, 400, steps=20, clip=False)
    assert float(unclipped.abs().max()) > 1.2, "clipping must be active for the test"
    sched = _scheduler(prior)
    # The core's grid: 400, 380, ..., 20, then the clipped estimate from x_20.
    _, x0_ref = _diffusers_ddim(prior, sched, x_t, range(400, 0, -20))
    ours = prior.ddim(x_t, 400, steps=20)
    torch.testing.assert_close(ours, x0_ref, rtol=1e-9, atol=1e-9)
    # An explicit grid ending with a call at 0 lands where diffusers' final step does.
    final, _ = _diffusers_ddim(prior, sched, x_t, range(400, -1, -20))
    torch.testing.assert_close(prior.ddim(x_t, 400, timesteps=list(range(400, -1, -20))), final,
                               rtol=1e-9, atol=1e-9)
    # Reusing the network's eps after clipping (the old behaviour) is a different sampler.
    _, x0_reused = _diffusers_ddim(prior, sched, x_t, range(400, 0, -20), clipped=False)
    assert float((ours - x0_reused).abs().max()) > 1e-3


def test_ddim_without_clipping_uses_the_networks_eps():
    prior = GaussianDiffusionPrior(scale=2.0)
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)
    sched = _scheduler(prior)
    sched.config.clip_sample = False
    _, x0_ref = _diffusers_ddim(prior, sched, x_t, range(200, 0, -20), clipped=False)
    torch.testing.assert_close(prior.ddim(x_t, 200, steps=10, clip=False), x0_ref,
                               rtol=1e-9, atol=1e-9)


def test_ddim_rejects_a_grid_that_is_not_decreasing():
    prior = GaussianDiffusionPrior()
    with pytest.raises(ValueError, match=r"ddim: timesteps must be a non-empty, strictly "
                                         r"decreasing list of timesteps >= 0, got \[5, 5, 0\]"):
        prior.ddim(torch.zeros(1, 1, 4), 5, timesteps=[5, 5, 0])


@pytest.mark.parametrize("sigma", [0.0137, 0.0523, 0.2, 0.77, 3.3, 41.0])
def test_denoise_between_the_steps_is_the_gaussian_posterior_mean(sigma):
    # None of these levels is a step's: the old snapping to the nearest step missed them.
    prior = GaussianDiffusionPrior(scale=0.5)
    x = torch.randn(2, 1, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s2 = 0.25
    torch.testing.assert_close(prior.denoise(x, sigma), s2 / (s2 + sigma**2) * x,
                               rtol=1e-6, atol=1e-9)
    t = prior.t_of_sigma(sigma)
    assert t != round(t) and abs(float(prior.abar(t, x).flatten()[0]) - 1 / (1 + sigma**2)) < 1e-12


def test_fractional_timesteps_reach_the_network_as_floats():
    seen = []

    class Recording(GaussianDiffusionPrior):
        def network(self, x_t, t):
            seen.append(t.clone())
            return super().network(x_t, t)

    prior = Recording()
    prior.denoise(torch.zeros(2, 1, 4), 0.3)
    assert seen[-1].is_floating_point() and seen[-1].shape == (2,)
    assert abs(float(seen[-1][0]) - prior.t_of_sigma(0.3)) < 1e-4
    prior.denoise(torch.zeros(2, 1, 4), float(prior.sigma(250)))
    assert seen[-1].dtype == torch.long and seen[-1].tolist() == [250, 250]
    assert prior.nfe == 2


def test_denoise_below_the_floor_holds_the_floor_score():
    prior = GaussianDiffusionPrior(scale=0.5)
    x = torch.randn(3, 1, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    floor = float(prior.sigma(0))
    assert 0.009 < floor < 0.011
    torch.testing.assert_close(prior.denoise(x, 0.0), x)  # no noise: nothing to remove
    # Continuous at the floor ...
    torch.testing.assert_close(prior.denoise(x, floor * (1 - 1e-9)), prior.denoise(x, floor),
                               rtol=1e-7, atol=1e-9)
    # ... and close to the exact posterior mean below it (the Gaussian's score barely moves).
    for sigma in (1e-4, 1e-3, 5e-3):
        exact = 0.25 / (0.25 + sigma**2) * x
        torch.testing.assert_close(prior.denoise(x, sigma), exact, rtol=1e-6, atol=1e-9)
        # The change it makes scales with sigma^2, as the posterior's does.
        moved = float((prior.denoise(x, sigma) - x).norm() / (exact - x).norm())
        assert abs(moved - 1) < 1e-3


def test_below_floor_rule_floor_returns_the_estimate_at_the_floor():
    torch.manual_seed(0)
    prior = GaussianDiffusionPrior(below_floor="floor")
    floor = float(prior.sigma(0))
    x = torch.randn(2, 1, 8)
    at_floor = prior.denoise(x, floor)
    for sigma in (0.5 * floor, 1e-4, 0.0):
        torch.testing.assert_close(prior.denoise(x, sigma), at_floor, atol=1e-6, rtol=1e-6)
    # The default holds the score instead: D(x, 0) = x.
    torch.testing.assert_close(GaussianDiffusionPrior().denoise(x, 0.0), x)
    assert not torch.allclose(at_floor, x, atol=1e-4)


def test_below_floor_rule_is_checked():
    with pytest.raises(ValueError, match=r"below_floor must be one of 'score', 'floor', got 'snap'"):
        GaussianDiffusionPrior(below_floor="snap")


@pytest.mark.parametrize("rule", ["score", "floor"])
def test_denoise_takes_one_level_per_item_in_one_call(rule):
    torch.manual_seed(0)
    prior = GaussianDiffusionPrior(below_floor=rule)
    x = torch.randn(4, 1, 8)
    levels = torch.tensor([0.3, 0.05, 0.004, float(prior.sigma(200))])
    prior.reset_nfe()
    both = prior.denoise(x, levels)
    assert prior.nfe == 1
    for i, s in enumerate(levels.tolist()):
        torch.testing.assert_close(both[i:i + 1], prior.denoise(x[i:i + 1], s), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match=r"one level per item \(4\), got 3 levels"):
        prior.denoise(x, levels[:3])
