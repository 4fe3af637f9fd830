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


# -- diffunet: guided-diffusion checkpoints -------------------------------------------------------


def _randomised(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill the layers guided-diffusion initialises at zero, so every output depends on them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()


class _Scheduled(torch.nn.Module):
    """A layer and the two schedule buffers deepinv's DiffUNet saves in its state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        self.register_buffer("sqrt_alphas_cumprod", torch.arange(3.0))
        self.register_buffer("sqrt_1m_alphas_cumprod", torch.full((3,), 0.5))


def test_the_schedule_buffers_come_from_the_network_every_weight_from_the_file(tmp_path: Path) -> None:
    from pnpkit_priors.deepinv_denoisers import DIFFUNET_BUFFERS, load_weights

    weights = {"conv.weight": torch.full((1, 1, 1, 1), 3.0), "conv.bias": torch.full((1,), -1.0)}
    torch.save(weights, tmp_path / "ok.pt")
    net = load_weights(_Scheduled(), tmp_path / "ok.pt", "net", own=DIFFUNET_BUFFERS)
    assert net.conv.weight.item() == 3.0 and net.conv.bias.item() == -1.0
    torch.testing.assert_close(net.sqrt_alphas_cumprod, torch.arange(3.0))
    torch.testing.assert_close(net.sqrt_1m_alphas_cumprod, torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="do not fit the network.*Missing key.*sqrt_alphas_cumprod"):
        load_weights(_Scheduled(), tmp_path / "ok.pt", "net")  # strict without own=: the old bug
    # still strict about every real weight: one missing, one extra, one of another shape
    for bad, key in (({"conv.weight": weights["conv.weight"]}, "Missing key.*conv.bias"),
                     ({**weights, "conv.scale": torch.ones(1)}, "Unexpected key.*conv.scale"),
                     ({**weights, "conv.bias": torch.ones(2)}, "size mismatch for conv.bias")):
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match=f"do not fit the network.*{key}"):
            load_weights(_Scheduled(), tmp_path / "bad.pt", "net", own=DIFFUNET_BUFFERS)


def test_diffunet_loads_a_reduced_width_guided_diffusion_checkpoint(tmp_path: Path) -> None:
    """DPS's FFHQ 256 architecture at a quarter of its width, saved as guided-diffusion saves it
    (every weight, no schedule buffers, as the real ffhq_10m.pt), loaded by name."""
    from pnpkit_priors.adm import ADMUNet, architecture
    from pnpkit_priors.deepinv_denoisers import DIFFUNET_BUFFERS

    torch.manual_seed(0)
    source = _randomised(ADMUNet(architecture("ffhq256", num_channels=32)))
    state = source.state_dict()
    assert not set(DIFFUNET_BUFFERS) & set(state) and state["out.2.weight"].shape[0] == 6
    torch.save(state, tmp_path / "ffhq_10m.pt")
    prior = pnpkit.create("prior", "diffunet", weights=str(tmp_path / "ffhq_10m.pt"), num_channels=32)
    loaded = prior.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    torch.testing.assert_close(prior.model.sqrt_alphas_cumprod, source.sqrt_alphas_cumprod)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        out = prior.denoise(x, 0.2)
        want = 2 * source((x + 1) / 2, 0.1) - 1  # deepinv's denoising mode on [0, 1], sigma / 2
    torch.testing.assert_close(out, want)
    assert prior.nfe == 1 and (out - x).abs().mean() > 1e-3
    state.pop("out.2.bias")
    torch.save(state, tmp_path / "cut.pt")
    with pytest.raises(ValueError, match=r"DiffUNet\(channels=3, large_model=False, num_channels=32\): "
                                         r"the weights in .*cut.pt do not fit the network.*out.2.bias"):
        pnpkit.create("prior", "diffunet", weights=str(tmp_path / "cut.pt"), num_channels=32)


@pytest.mark.slow
def test_diffunet_loads_the_full_size_ffhq_10m_layout(tmp_path: Path) -> None:
    """The FFHQ 256 network at full width (93.6 M parameters, random weights) in the layout of
    DPS's ffhq_10m.pt, loaded into deepinv's own DiffUNet (whose state dict has the schedule
    buffers the file lacks)."""
    from deepinv.models import DiffUNet

    from pnpkit_priors.adm import ADMUNet, architecture

    torch.manual_seed(0)
    source = ADMUNet(architecture("ffhq256"))
    state = source.state_dict()
    torch.save(state, tmp_path / "ffhq_10m.pt")
    prior = pnpkit.create("prior", "diffunet", weights=str(tmp_path / "ffhq_10m.pt"))
    assert type(prior.model) is DiffUNet
    loaded = prior.model.state_dict()
    assert set(loaded) - set(state) == {"sqrt_1m_alphas_cumprod", "sqrt_alphas_cumprod"}
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    torch.testing.assert_close(loaded["sqrt_alphas_cumprod"], source.sqrt_alphas_cumprod)
