"""Latent diffusion and consistency models at their published configurations, saved as users get them.

Each network has its release's block types, depths, attention, schedule and folder layout, with
channel widths cut down (about a seventh) so that a call takes milliseconds; random weights.

- CelebA-HQ LDM (``CompVis/ldm-celebahq-256``): an ``LDMPipeline`` folder with ``vqvae/``
  (VQ-f4, 3 latent channels), ``unet/`` (4 levels, attention on the last three) and a
  ``scaled_linear`` DDIM ``scheduler/``;
- the Stable Diffusion layout (``model_index.json`` with ``vae/`` = its AutoencoderKL,
  ``unet/``, ``scheduler/``): its text-conditional ``UNet2DConditionModel`` is refused in one
  line; an unconditional latent UNet on Stable Diffusion's autoencoder loads;
- ``openai/diffusers-cd_imagenet64_l2``: a ``ConsistencyModelPipeline`` folder, class-conditional
  ImageNet 64 network (``ResnetDownsampleBlock2D``, attention blocks that resample with
  residual blocks, scale-shift time conditioning) and the 40-step ``CMStochasticIterativeScheduler``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit import operators as ops

# -- CelebA-HQ LDM ---------------------------------------------------------------------------


def ldm_parts(seed: int = 0) -> tuple[Any, Any, Any]:
    """CompVis/ldm-celebahq-256's VQModel, UNet2DModel and DDIMScheduler, widths / 4 to / 7."""
    from diffusers import DDIMScheduler, UNet2DModel, VQModel

    torch.manual_seed(seed)
    vq = VQModel(in_channels=3, out_channels=3, latent_channels=3, vq_embed_dim=3,
                 num_vq_embeddings=256, block_out_channels=(32, 64, 128), layers_per_block=2,
                 down_block_types=("DownEncoderBlock2D",) * 3,
                 up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=32, sample_size=64)
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3,
                       block_out_channels=(32, 64, 96, 128), layers_per_block=2,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D",
                                         "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D",
                                       "UpBlock2D"),
                       attention_head_dim=32)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                              beta_start=0.0015, beta_end=0.0195, clip_sample=False)
    return vq.eval(), unet.eval(), scheduler


@pytest.fixture(scope="module")
def ldm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any, Any]:
    from diffusers import LDMPipeline

    vq, unet, scheduler = ldm_parts()
    folder = tmp_path_factory.mktemp("ldm") / "ldm-celebahq-256"
    LDMPipeline(vqvae=vq, unet=unet, scheduler=scheduler).save_pretrained(folder)
    return folder, vq, unet, scheduler


def test_celebahq_ldm_folder_loads_with_its_parts(ldm: tuple[Path, Any, Any, Any]) -> None:
    folder, vq, unet, scheduler = ldm
    assert sorted(p.name for p in folder.iterdir()) == ["model_index.json", "scheduler", "unet",
                                                        "vqvae"]
    prior = pnpkit.create("prior", "latent-diffusion", path=str(folder))
    assert prior.is_vq and prior.scaling_factor == vq.config.scaling_factor
    assert prior.shape == (3, 16, 16) and prior.fixed_shape == (64, 64)  # VQ-f4
    torch.testing.assert_close(prior.alphas_cumprod,
                               torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float64))
    for key, value in unet.state_dict().items():
        assert torch.equal(prior.unet.state_dict()[key], value), key
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        z = prior.encode(x)
        torch.testing.assert_close(z, vq.encode(x).latents * vq.config.scaling_factor)
        assert z.shape == (2, 3, 16, 16)
        t = torch.tensor([50, 600])
        eps = prior.eps(z, t)
        torch.testing.assert_close(eps, unet(z, t).sample)
        abar = torch.as_tensor(scheduler.alphas_cumprod)[t].view(-1, 1, 1, 1)
        torch.testing.assert_close(prior.x0(z, t), (z - (1 - abar).sqrt() * eps) / abar.sqrt())
        torch.testing.assert_close(prior.decode(z), vq.decode(z / vq.config.scaling_factor).sample)
        prior.precision = "bf16"  # both networks under autocast, outputs back in float32
        for full, half in ((eps, prior.eps(z, t)), (z, prior.encode(x))):
            assert half.dtype == torch.float32 and not torch.equal(half, full)
            torch.testing.assert_close(half, full, rtol=0.05, atol=0.05)
        assert prior.decode(z).dtype == torch.float32


def test_celebahq_ldm_memory_is_estimated_on_latents(ldm: tuple[Path, Any, Any, Any]) -> None:
    prior = pnpkit.create("prior", "latent-diffusion", path=str(ldm[0]))
    image = prior.memory.estimate((1, 3, 16, 16), grad=False)
    assert image > 0
    calls = []
    prior.memory.check = lambda shape, *a, **k: calls.append(shape)  # type: ignore[method-assign]
    prior.check_memory((1, 3, 64, 64))  # a picture's shape: its latents are checked
    prior.check_memory((2, 3, 30, 32))
    with torch.no_grad():
        prior.eps(torch.zeros(1, 3, 16, 16), 10)  # a network call checks its latents
    assert calls == [(1, 3, 16, 16), (2, 3, 8, 8), (1, 3, 16, 16)]


def test_dcdp_on_the_celebahq_ldm(ldm: tuple[Path, Any, Any, Any]) -> None:
    """Both of DCDP's latent approaches run a round on the VQ autoencoder (decoding quantises)."""
    prior = pnpkit.create("prior", "latent-diffusion", path=str(ldm[0]))
    op = pnpkit.create("operator", "super-resolution", factor=4, shape=(3, 64, 64))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    y = ops.measure(op, x)
    for latent in ("pixel", "latent"):
        solver = pnpkit.create("solver", "dcdp", iterations=1, tau=2, lr=1.0, t_start=200,
                               purification="tweedie", latent=latent, init="pinv")
        res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(0))
        assert res.x.shape == x.shape and torch.isfinite(res.x).all() and res.nfe == 1


# -- Stable Diffusion's layout ------------------------------------------------------------------


def sd_vae(seed: int = 0) -> Any:
    """Stable Diffusion's AutoencoderKL (4 levels: f8, 4 latent channels, scale 0.18215), narrow."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                         block_out_channels=(32, 32, 64, 64), layers_per_block=2,
                         down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
                         sample_size=64, scaling_factor=0.18215).eval()


def sd_scheduler() -> Any:
    from diffusers import PNDMScheduler

    return PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         num_train_timesteps=1000, skip_prk_steps=True, steps_offset=1)


def write_sd_folder(folder: Path, unet: Any) -> Path:
    """The folder StableDiffusionPipeline.save_pretrained writes, less its text parts' weights."""
    sd_vae().save_pretrained(folder / "vae")
    unet.save_pretrained(folder / "unet")
    sd_scheduler().save_pretrained(folder / "scheduler")
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
             "feature_extractor": ["transformers", "CLIPImageProcessor"],
             "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
             "scheduler": ["diffusers", "PNDMScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", type(unet).__name__], "vae": ["diffusers", "AutoencoderKL"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def test_stable_diffusions_text_conditional_unet_is_one_line(tmp_path: Path) -> None:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                block_out_channels=(32, 64), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=8)
    folder = write_sd_folder(tmp_path / "stable-diffusion", unet)
    with pytest.raises(ValueError, match=r"unet/ holds a UNet2DConditionModel, a text-conditional "
                                         r"network \(Stable Diffusion's\).*unconditional UNet2DModel"):
        pnpkit.create("prior", "latent-diffusion", path=str(folder))


def test_an_unconditional_unet_on_stable_diffusions_autoencoder(tmp_path: Path) -> None:
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                       layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=8).eval()
    folder = write_sd_folder(tmp_path / "sd-uncond", unet)
    prior = pnpkit.create("prior", "latent-diffusion", path=str(folder))
    vae = sd_vae()
    assert not prior.is_vq and prior.scaling_factor == pytest.approx(0.18215)
    assert prior.fixed_shape == (64, 64)  # f8: 8 x 8 latents
    torch.testing.assert_close(prior.alphas_cumprod,
                               torch.as_tensor(sd_scheduler().alphas_cumprod, dtype=torch.float64))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        z = prior.encode(x)
        torch.testing.assert_close(z, vae.encode(x).latent_dist.mode() * 0.18215)
        # The loaded network runs channels-last: equal to float rounding.
        torch.testing.assert_close(prior.eps(z, 400), unet(z, torch.tensor([400])).sample,
                                   rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(prior.decode(z), vae.decode(z / 0.18215).sample)


# -- openai/diffusers-cd_imagenet64_l2 -------------------------------------------------------------


@pytest.fixture(scope="module")
def cd64(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """The ImageNet 64 consistency model's UNet (widths 192.. -> 32..) and its CD scheduler."""
    from diffusers import CMStochasticIterativeScheduler, ConsistencyModelPipeline, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=64, in_channels=3, out_channels=3, layers_per_block=3,
                       num_class_embeds=1000, block_out_channels=(32, 64, 96, 128),
                       attention_head_dim=32,
                       down_block_types=("ResnetDownsampleBlock2D", "AttnDownBlock2D",
                                         "AttnDownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D",
                                       "ResnetUpsampleBlock2D"),
                       downsample_type="resnet", upsample_type="resnet",
                       resnet_time_scale_shift="scale_shift").eval()
    scheduler = CMStochasticIterativeScheduler(num_train_timesteps=40, sigma_min=0.002,
                                               sigma_max=80.0)
    folder = tmp_path_factory.mktemp("cm") / "diffusers-cd_imagenet64_l2"
    ConsistencyModelPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    return folder, unet, scheduler


def test_cd_imagenet64_folder_loads_class_conditional(cd64: tuple[Path, Any, Any]) -> None:
    folder, unet, scheduler = cd64
    assert sorted(p.name for p in folder.iterdir()) == ["model_index.json", "scheduler", "unet"]
    with pytest.raises(ValueError, match=r"class-conditional \(1000 classes\): pass class_label"):
        pnpkit.create("prior", "consistency", path=str(folder))
    prior = pnpkit.create("prior", "consistency", path=str(folder), class_label=145)
    assert prior.fixed_shape == (64, 64) and prior.clip  # the scheduler's clip_denoised
    assert (prior.sigma_min, prior.sigma_max, prior.sigma_data) == (0.002, 80.0, 0.5)
    torch.testing.assert_close(prior.sigmas, torch.as_tensor(scheduler.sigmas, dtype=torch.float64))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    sigma = 2.5
    c_skip, c_out = scheduler.get_scalings_for_boundary_condition(torch.tensor(sigma))
    c_in = 1 / (sigma**2 + 0.25) ** 0.5
    t = torch.full((2,), float(scheduler.sigma_to_t(sigma)))
    labels = torch.full((2,), 145)
    with torch.no_grad():
        ref = c_skip * x + c_out * unet(c_in * x, t, class_labels=labels).sample
        torch.testing.assert_close(prior.f(x, sigma), ref.clamp(-1, 1), rtol=1e-4, atol=1e-5)
        other = c_skip * x + c_out * unet(c_in * x, t, class_labels=labels + 1).sample
        assert not torch.allclose(ref, other)
        assert prior.nfe == 1
        prior.precision = "bf16"  # the network under autocast, the estimate back in float32
        half = prior.f(x, sigma)
    assert half.dtype == torch.float32 and not torch.equal(half, ref.clamp(-1, 1))
    torch.testing.assert_close(half, ref.clamp(-1, 1), rtol=0.05, atol=0.05)


def test_dcdp_consistency_purification_on_cd_imagenet64(cd64: tuple[Path, Any, Any]) -> None:
    prior = pnpkit.create("prior", "consistency", path=str(cd64[0]), class_label=145)
    op = pnpkit.create("operator", "box-inpainting", shape=(3, 64, 64))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    y = ops.measure(op, x)
    solver = pnpkit.create("solver", "dcdp", preset="box-inpainting", iterations=2, tau=3,
                           purification="consistency")
    res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(0))
    assert res.x.shape == x.shape and res.x.abs().max() <= 1 and res.nfe == 2
