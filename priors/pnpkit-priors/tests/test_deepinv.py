"""deepinv denoisers as pnpkit priors, and pnpkit priors in deepinv's DPS and DiffPIR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit.testing import PriorContract, TikhonovPrior
from pnpkit_priors.deepinv_denoisers import DeepinvDenoiserPrior


class TestTVPrior(PriorContract):
    @pytest.fixture
    def prior(self) -> Any:
        return pnpkit.create("prior", "tv", n_it_max=20)

    @pytest.fixture
    def signal(self) -> torch.Tensor:
        return torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_ranges_are_mapped() -> None:
    seen = {}

    def model(x01: torch.Tensor, sigma01: Any) -> torch.Tensor:
        seen.update(x=x01.clone(), sigma=sigma01)
        return x01 * 0 + 0.75

    prior = DeepinvDenoiserPrior(model, sigma_scale=3.0)
    x = torch.tensor([[[[-1.0, 0.0, 1.0]]]])
    out = prior.denoise(x, 0.2)
    torch.testing.assert_close(seen["x"], torch.tensor([[[[0.0, 0.5, 1.0]]]]))
    assert seen["sigma"] == pytest.approx(0.3)  # 0.2 / 2 * 3
    torch.testing.assert_close(out, torch.full_like(x, 0.5))  # 2 * 0.75 - 1
    assert prior.nfe == 1


def test_tv_smooths_noise() -> None:
    prior = pnpkit.create("prior", "tv", dtype="float64")
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    y = x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    out = prior.denoise(y, 0.2)
    assert out.dtype == torch.float64 and (out - x).norm() < 0.5 * (y - x).norm()


@pytest.fixture(scope="module")
def drunet_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from deepinv.models import DRUNet
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = DRUNet(in_channels=1, out_channels=1, nc=(4, 4, 4, 4), nb=1, pretrained=None)
    folder = tmp_path_factory.mktemp("drunet")
    torch.save(net.state_dict(), folder / "drunet.pth")
    torch.save({"state_dict": net.state_dict()}, folder / "wrapped.pth")
    save_file(net.state_dict(), folder / "drunet.safetensors")
    return {"pth": folder / "drunet.pth", "wrapped": folder / "wrapped.pth",
            "safetensors": folder / "drunet.safetensors"}


def test_drunet_from_local_weights(drunet_weights: dict[str, Path]) -> None:
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    outs = []
    for path in drunet_weights.values():
        prior = pnpkit.create("prior", "drunet", weights=str(path), channels=1, nc=[4, 4, 4, 4], nb=1)
        with torch.no_grad():
            outs.append(prior.denoise(x, 0.1))
    assert outs[0].shape == x.shape
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(outs[0], outs[2])


def test_drunet_refuses_to_download() -> None:
    with pytest.raises(ValueError, match="needs its trained weights as a local file.*weights = "):
        pnpkit.create("prior", "drunet")
    with pytest.raises(ValueError, match="never downloads"):
        pnpkit.create("prior", "diffunet")


def test_weights_that_do_not_fit(drunet_weights: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="do not fit the network"):
        pnpkit.create("prior", "drunet", weights=str(drunet_weights["pth"]), channels=3,
                      nc=[4, 4, 4, 4], nb=1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pnpkit.create("prior", "drunet", weights="/no/such/drunet.pth")


def test_any_deepinv_denoiser_by_name(drunet_weights: dict[str, Path]) -> None:
    prior = pnpkit.create("prior", "deepinv-denoiser", model="DRUNet",
                          weights=str(drunet_weights["safetensors"]),
                          options={"in_channels": 1, "out_channels": 1, "nc": [4, 4, 4, 4], "nb": 1})
    assert prior.denoise(torch.zeros(1, 1, 16, 16), 0.1).shape == (1, 1, 16, 16)
    median = pnpkit.create("prior", "deepinv-denoiser", model="MedianFilter")
    assert median.denoise(torch.zeros(1, 1, 8, 8), 0.1).shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match="never downloads"):
        pnpkit.create("prior", "deepinv-denoiser", model="DnCNN")
    with pytest.raises(ValueError, match="no denoiser 'DRUnet'. Did you mean 'DRUNet'"):
        pnpkit.create("prior", "deepinv-denoiser", model="DRUnet")


# -- the bridge: pnpkit priors inside deepinv's samplers ------------------------------------------

def _inpainting(seed: int = 0) -> tuple[Any, torch.Tensor, torch.Tensor]:
    import deepinv as dinv

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, 8, 8, generator=g)
    physics = dinv.physics.Inpainting(img_size=(1, 8, 8), mask=0.5,
                                      noise_model=dinv.physics.GaussianNoise(0.01), rng=g)
    return physics, x, physics(x)


def test_bridge_maps_ranges_and_keeps_gradients(grey_ckpt: Path) -> None:
    from deepinv.models import Denoiser

    from pnpkit.bridge import as_deepinv_denoiser

    prior = pnpkit.create("prior", "diffusers", path=str(grey_ckpt))
    den = as_deepinv_denoiser(prior)
    assert isinstance(den, Denoiser)
    x01 = torch.rand(2, 1, 8, 8, requires_grad=True)
    out = den(x01, torch.tensor([0.05, 0.2]))
    out.sum().backward()
    assert x01.grad is not None and den.nfe == 1
    with torch.no_grad():
        ref = prior.denoise(2 * x01[:1] - 1, 0.1)
        torch.testing.assert_close(den(x01[:1], 0.05), (ref + 1) / 2)
    tikhonov = as_deepinv_denoiser(TikhonovPrior(lam=1.0))
    torch.testing.assert_close(tikhonov(torch.ones(1, 1, 2, 2), 0.5),
                               torch.full((1, 1, 2, 2), (1 / 2 + 1) / 2))


def test_deepinv_dps_runs_on_a_pnpkit_diffusion_prior(grey_ckpt: Path) -> None:
    import deepinv as dinv

    from pnpkit.bridge import as_deepinv_denoiser

    prior = pnpkit.create("prior", "diffusers", path=str(grey_ckpt))
    physics, x, y = _inpainting()
    dps = dinv.sampling.DPS(as_deepinv_denoiser(prior), num_steps=5,
                            rng=torch.Generator().manual_seed(0))
    out = dps(y, physics, seed=0)
    assert out.shape == x.shape and torch.isfinite(out).all() and prior.nfe > 0


def test_deepinv_diffpir_runs_on_a_pnpkit_diffusion_prior(grey_ckpt: Path) -> None:
    import deepinv as dinv

    from pnpkit.bridge import as_deepinv_denoiser

    prior = pnpkit.create("prior", "diffusers", path=str(grey_ckpt))
    physics, x, y = _inpainting(1)
    diffpir = dinv.sampling.DiffPIR(as_deepinv_denoiser(prior), dinv.optim.data_fidelity.L2(),
                                    max_iter=5, sigma=0.01)
    out = diffpir(y, physics, seed=1)
    assert out.shape == x.shape and torch.isfinite(out).all() and prior.nfe == 5
