"""ConsistencyPrior: CMStochasticIterativeScheduler conventions, one evaluation per denoising."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit.testing import PriorContract
from pnpkit_priors.consistency import ConsistencyPrior


@pytest.fixture(scope="module")
def cm_ckpt(tmp_path_factory: pytest.TempPathFactory, tiny: Any) -> Path:
    from diffusers import CMStochasticIterativeScheduler

    return tiny.save(tmp_path_factory.mktemp("cm") / "tiny-cm", unet=tiny.unet2d(),
                     scheduler=CMStochasticIterativeScheduler(num_train_timesteps=40))


class TestConsistencyPrior(PriorContract):
    @pytest.fixture
    def prior(self, cm_ckpt: Path) -> Any:
        return pnpkit.create("prior", "consistency", path=str(cm_ckpt))

    @pytest.fixture
    def signal(self) -> torch.Tensor:
        return torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_f_follows_the_scheduler(cm_ckpt: Path, tiny: Any) -> None:
    from diffusers import CMStochasticIterativeScheduler

    prior = ConsistencyPrior.from_pretrained(cm_ckpt, clip=False)
    sched = CMStochasticIterativeScheduler(num_train_timesteps=40)
    x = torch.randn(2, 1, 8, 8)
    sigma = 1.3
    c_skip = 0.25 / ((sigma - 0.002) ** 2 + 0.25)
    c_out = (sigma - 0.002) * 0.5 / (sigma**2 + 0.25) ** 0.5
    t = torch.full((2,), float(sched.sigma_to_t(sigma)))
    with torch.no_grad():
        ref = c_skip * x + c_out * tiny.unet2d()(x / (sigma**2 + 0.25) ** 0.5, t).sample
        torch.testing.assert_close(prior.f(x, sigma), ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(prior.denoise(x, torch.tensor([sigma, sigma])), ref,
                                   rtol=1e-4, atol=1e-5)
    assert prior.nfe == 2
    torch.testing.assert_close(prior.sigmas, torch.as_tensor(sched.sigmas, dtype=torch.float64))


def test_boundary_condition_and_clipping(cm_ckpt: Path) -> None:
    prior = ConsistencyPrior.from_pretrained(cm_ckpt)
    assert prior.clip  # the scheduler's clip_denoised
    x = torch.rand(1, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(prior.f(x, 0.0), x)  # clamped to sigma_min, where f = identity
        assert prior.f(3 * x, 5.0).abs().max() <= 1


def test_multistep_sampling(cm_ckpt: Path) -> None:
    prior = ConsistencyPrior.from_pretrained(cm_ckpt)
    g = torch.Generator().manual_seed(0)
    out = prior.sample((2, 1, 8, 8), sigmas=[10.0, 1.0], generator=g)
    assert out.shape == (2, 1, 8, 8) and torch.isfinite(out).all() and prior.nfe == 3


def test_needs_a_consistency_scheduler(make_ckpt: Any) -> None:
    with pytest.raises(ValueError, match="not a consistency-model scheduler"):
        ConsistencyPrior.from_pretrained(make_ckpt())
