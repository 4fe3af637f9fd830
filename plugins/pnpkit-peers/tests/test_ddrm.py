"""DDRM as its authors run it (Kawar et al. 2022, bahjat-kawar/ddrm's efficient_generalized_steps),
on a Gaussian prior where the algorithm's own output distribution is known in closed form.

With data x ~ N(0, s^2 I) the exact denoiser is linear, ``D(x, sigma) = r x`` with
``r = s^2 / (s^2 + sigma^2)``, so every DDRM step is linear in (x, y) plus fresh noise: each
coordinate's sample is ``A y + N(0, W)``, with (A, W) given by the recursion below. That is what
the paper's algorithm gives, not the posterior: DDRM replaces x0 by its point estimate at each
step and so loses the posterior spread of x0 given x_t (at eta = 1 the most), which is why its
null-space variance stays under the prior's s^2 at every eta; eta -> 0 with many steps
(the DDIM limit) approaches it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from pnpkit.solvers import DoesNotApply
from pnpkit.testing import GaussianDiffusionPrior, TikhonovPrior
from pnpkit_peers.samplers import DDRM, ddrm_timesteps

S = 0.5  # the prior: x ~ N(0, S^2 I), pnpkit units


def paper_moments(levels: list[float], eta: float, etab: float, sigma_y: float,
                  observed: bool) -> tuple[float, float]:
    """(A, W) of the paper's DDRM on the Gaussian prior: a coordinate's sample is A y + N(0, W).

    ``levels`` are the VE noise levels, largest first; the last step goes to 0 (the authors'
    ``next_t = -1``). Inpainting: singular value 1 on observed coordinates, 0 elsewhere.
    """
    c = math.sqrt(1 - eta**2)
    if observed and levels[0] > sigma_y:  # init: x_T ~ N(y, sigma_T^2 - sigma_y^2)
        a_y, w = 1.0, levels[0] ** 2 - sigma_y**2
    else:
        a_y, w = 0.0, levels[0] ** 2
    for k, sk in enumerate(levels):
        sn = levels[k + 1] if k + 1 < len(levels) else 0.0
        r = S**2 / (S**2 + sk**2)  # x0 = r x, eps = (1 - r) x / sk
        if observed and sn > sigma_y:  # noisier than y: etab y + (1 - etab) x0 + noise
            a_y = etab + (1 - etab) * r * a_y
            w = ((1 - etab) * r) ** 2 * w + sn**2 - (sigma_y * etab) ** 2
        elif observed and sn < sigma_y:  # less noisy than y: pulled towards y
            f = r * (1 - c * sn / sigma_y)
            a_y, w = f * a_y + c * sn / sigma_y, f * f * w + (eta * sn) ** 2
        else:  # null space: x0 + c sn eps + eta sn z
            f = r + c * sn * (1 - r) / sk
            a_y, w = f * a_y, f * f * w + (eta * sn) ** 2
    return a_y, w


def inpainting(sigma_y: float, batch: int = 32, side: int = 16):
    import deepinv

    g = torch.Generator().manual_seed(0)
    op = deepinv.physics.Inpainting(img_size=(1, side, side), mask=0.5, rng=g,
                                    noise_model=deepinv.physics.GaussianNoise(sigma_y))
    x = S * torch.randn(batch, 1, side, side, generator=g)
    y = op.A(x) + sigma_y * op.mask * torch.randn(x.shape, generator=g)
    return op, y, op.mask.expand_as(x).bool()


def authors_levels(prior: GaussianDiffusionPrior, steps: int) -> list[float]:
    return [float(prior.sigma(t)) for t in ddrm_timesteps(prior.num_timesteps, steps)]


def test_the_authors_timesteps():
    assert ddrm_timesteps(1000, 20) == list(range(950, -1, -50))  # range(0, 1000, 50), reversed
    assert ddrm_timesteps(1000, 3) == [666, 333, 0]
    with pytest.raises(ValueError, match="ddrm: iterations must be between 1 and the prior's 1000 "
                                         "timesteps, got 1001"):
        ddrm_timesteps(1000, 1001)


class Spy(GaussianDiffusionPrior):
    def __init__(self) -> None:
        super().__init__(scale=S)
        self.calls: list[Tensor] = []

    def network(self, x_t, t):
        self.calls.append(t)
        return super().network(x_t, t)



def test_the_network_runs_at_the_authors_timesteps():
    op, y, _ = inpainting(0.0, batch=2, side=8)
    prior = Spy()
    res = DDRM().solve(y, op, prior, generator=torch.Generator().manual_seed(1))
    assert res.nfe == 20
    assert [t.dtype for t in prior.calls] == [torch.long] * 20  # whole steps, not fractional ones
    assert [t.tolist() for t in prior.calls] == [[t, t] for t in range(950, -1, -50)]


@pytest.mark.parametrize("sigma_y, eta", [(0.0, 0.85), (0.1, 0.85), (0.1, 1.0)])
def test_ddrm_samples_what_the_papers_algorithm_gives(sigma_y, eta):
    op, y, obs = inpainting(sigma_y)
    prior = GaussianDiffusionPrior(scale=S)
    x = DDRM(eta=eta).solve(y, op, prior, generator=torch.Generator().manual_seed(1)).x
    levels = authors_levels(prior, 20)
    _, w_null = paper_moments(levels, eta, 1.0, sigma_y, observed=False)
    a_obs, w_obs = paper_moments(levels, eta, 1.0, sigma_y, observed=True)
    # 4096 samples per set: the variance's relative standard error is about 2 %
    assert float(x[~obs].mean()) == pytest.approx(0.0, abs=0.03)
    assert float(x[~obs].pow(2).mean()) == pytest.approx(w_null, rel=0.08)
    resid = (x - a_obs * y)[obs]
    assert float(resid.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(resid.pow(2).mean()) == pytest.approx(w_obs, rel=0.1, abs=2e-5)
    # and that is DDRM's own under-dispersion, not the posterior's N(0, S^2) null space
    assert w_null < 0.6 * S**2


def test_deepinv_as_it_is_draws_half_the_papers_variance():
    # deepinv 0.5 draws its noise at sigma / sqrt(2) and tells the denoiser sigma: on the
    # linear Gaussian denoiser every variance of the recursion is halved, exactly.
    op, y, obs = inpainting(0.0)
    prior = GaussianDiffusionPrior(scale=S)
    raw = DDRM(paper_noise=False).solve(y, op, prior, generator=torch.Generator().manual_seed(1)).x
    _, w_null = paper_moments(authors_levels(prior, 20), 0.85, 1.0, 0.0, observed=False)
    assert float(raw[~obs].pow(2).mean()) == pytest.approx(w_null / 2, rel=0.08)


def test_less_eta_and_more_steps_come_closer_to_the_posterior():
    prior = GaussianDiffusionPrior(scale=S)
    w = {(steps, eta): paper_moments(authors_levels(prior, steps), eta, 1.0, 0.0, False)[1]
         for steps in (20, 100) for eta in (0.0, 0.85, 1.0)}
    assert w[20, 1.0] < w[20, 0.85] < w[20, 0.0] < w[100, 0.0] < S**2
    assert w[100, 0.0] == pytest.approx(S**2, rel=0.06)
    op, y, obs = inpainting(0.0)
    x = DDRM(iterations=100, eta=0.0).solve(y, op, prior, generator=torch.Generator().manual_seed(1)).x
    assert float(x[~obs].pow(2).mean()) == pytest.approx(w[100, 0.0], rel=0.08)


def test_schedules_and_priors():
    assert DDRM(schedule="linear", iterations=4).levels(None) == [1.0, 0.75, 0.5, 0.25]
    prior = GaussianDiffusionPrior(scale=S)
    assert DDRM(iterations=2).levels(prior) == [float(prior.sigma(500)) / 2, float(prior.sigma(0)) / 2]
    with pytest.raises(DoesNotApply, match="ddrm: schedule 'timesteps' needs a diffusion prior; "
                                           "TikhonovPrior is not one: set schedule = 'linear'"):
        DDRM().levels(TikhonovPrior(1.0))
    with pytest.raises(ValueError, match="ddrm: schedule must be one of timesteps, linear, got 'ddpm'"):
        DDRM(schedule="ddpm")
