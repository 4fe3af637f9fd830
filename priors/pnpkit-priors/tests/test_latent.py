"""LatentDiffusionPrior: an AutoencoderKL and a latent UNet, loaded from vae/ unet/ scheduler/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit.testing import PriorContract
from pnpkit_priors.latent import LatentDiffusionPrior


@pytest.fixture(scope="module")
def latent_ckpt(tmp_path_factory: pytest.TempPathFactory, tiny: Any) -> Path:
    """1 x 8 x 8 images, 2 x 4 x 4 latents."""
    return tiny.save(tmp_path_factory.mktemp("latent") / "tiny-ldm", vae=tiny.vae(),
                     unet=tiny.unet2d(channels=2, size=4), scheduler=tiny.ddpm())


class TestLatentPrior(PriorContract):
    @pytest.fixture
    def prior(self, latent_ckpt: Path) -> Any:
        return pnpkit.create("prior", "latent-diffusion", path=str(latent_ckpt))

    @pytest.fixture
    def signal(self) -> torch.Tensor:
        return torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0))


def test_encode_decode_use_the_scaling_factor(latent_ckpt: Path, tiny: Any) -> None:
    prior = LatentDiffusionPrior.from_pretrained(latent_ckpt)
    vae = tiny.vae()
    assert prior.scaling_factor == vae.config.scaling_factor
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        z = prior.encode(x)
        assert z.shape == (3, 2, 4, 4)
        torch.testing.assert_close(z, vae.encode(x).latent_dist.mode() * vae.config.scaling_factor)
        out = prior.decode(z)
        torch.testing.assert_close(out, vae.decode(z / vae.config.scaling_factor).sample)
    assert out.shape == x.shape and prior.nfe == 0
    assert prior.clip is None  # latents are not bounded


def test_decode_is_differentiable(latent_ckpt: Path) -> None:
    prior = LatentDiffusionPrior.from_pretrained(latent_ckpt, scaling_factor=0.5)
    z = torch.randn(1, 2, 4, 4, requires_grad=True)
    prior.decode(z).square().sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_latent_shape_is_checked(latent_ckpt: Path) -> None:
    prior = LatentDiffusionPrior.from_pretrained(latent_ckpt)
    with pytest.raises(ValueError, match=r"trained on \(2, 4, 4\) latents but got \(1, 8, 8\)"):
        prior.denoise(torch.zeros(1, 1, 8, 8), 0.1)


def test_missing_autoencoder(make_ckpt: Any) -> None:
    with pytest.raises(FileNotFoundError, match="no autoencoder .*vae/"):
        pnpkit.create("prior", "latent-diffusion", path=str(make_ckpt()))


def test_saved_ldm_pipeline_with_a_vq_autoencoder(tmp_path: Path, tiny: Any) -> None:
    from diffusers import DDIMScheduler, LDMPipeline, VQModel

    torch.manual_seed(0)
    vq = VQModel(in_channels=1, out_channels=1, latent_channels=2, vq_embed_dim=2,
                 num_vq_embeddings=16, down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 8),
                 layers_per_block=1, norm_num_groups=4, sample_size=8)
    LDMPipeline(vqvae=vq, unet=tiny.unet2d(channels=2, size=4),
                scheduler=DDIMScheduler()).save_pretrained(tmp_path / "ldm")
    prior = pnpkit.create("prior", "latent-diffusion", path=str(tmp_path / "ldm"))
    assert prior.is_vq and prior.scaling_factor == vq.config.scaling_factor
    with torch.no_grad():
        z = prior.encode(torch.rand(2, 1, 8, 8) * 2 - 1)
        assert z.shape == (2, 2, 4, 4) and prior.decode(z).shape == (2, 1, 8, 8)
        assert prior.denoise(z, 0.3).shape == z.shape
