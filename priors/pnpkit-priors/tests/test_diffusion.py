"""DiffusersPrior: every folder layout, 2-D and 1-D networks, parametrisations, dtypes, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit.testing import PriorContract
from pnpkit_priors.diffusion import DiffusersPrior


class TestImagePrior(PriorContract):
    @pytest.fixture
    def prior(self, grey_ckpt: Path) -> Any:
        return pnpkit.create("prior", "diffusers", path=str(grey_ckpt))

    @pytest.fixture
    def signal(self) -> torch.Tensor:
        return torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.fixture(scope="module")
def audio_ckpt(tmp_path_factory: pytest.TempPathFactory, tiny: Any) -> Path:
    return tiny.save(tmp_path_factory.mktemp("audio"), unet=tiny.unet1d(), scheduler=tiny.ddpm())


class TestAudioPrior(PriorContract):
    """A UNet1DModel on (B, C, L) signals."""

    @pytest.fixture
    def prior(self, audio_ckpt: Path) -> Any:
        return pnpkit.create("prior", "diffusers", path=str(audio_ckpt))

    @pytest.fixture
    def signal(self) -> torch.Tensor:
        return torch.rand(2, 2, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_1d_prior_is_a_unet1d(audio_ckpt: Path) -> None:
    prior = DiffusersPrior.from_pretrained(audio_ckpt)
    assert type(prior.unet).__name__ == "UNet1DModel" and prior.shape == (2, 16)


def test_factory_gets_device_and_dtype(grey_ckpt: Path) -> None:
    prior = pnpkit.create("prior", "diffusers", path=str(grey_ckpt), device="cpu", dtype="float64")
    assert isinstance(prior, pnpkit.DiffusionPrior)
    assert next(prior.unet.parameters()).dtype == torch.float64
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    assert prior.x0(x, 10).dtype == torch.float64


def test_network_matches_the_saved_unet(grey_ckpt: Path, tiny: Any) -> None:
    prior = DiffusersPrior.from_pretrained(grey_ckpt)
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 400, 999])
    with torch.no_grad():
        ref = tiny.unet2d()(x, t).sample
        torch.testing.assert_close(prior.eps(x, t), ref)
    assert prior.nfe == 1 and prior.prediction_type == "epsilon"
    torch.testing.assert_close(prior.alphas_cumprod, tiny.ddpm().alphas_cumprod.double())


def test_saved_pipeline_folder(tmp_path: Path, tiny: Any) -> None:
    from diffusers import DDPMPipeline

    DDPMPipeline(unet=tiny.unet2d(), scheduler=tiny.ddpm()).save_pretrained(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "model_index.json").is_file()
    prior = pnpkit.create("prior", "diffusers", path=str(tmp_path / "pipe"))
    assert prior.shape == (1, 8, 8) and prior.name == "pipe"


def test_model_folder_with_scheduler_config(tmp_path: Path, tiny: Any) -> None:
    tiny.unet2d().save_pretrained(tmp_path / "model")
    tiny.ddpm().save_pretrained(tmp_path / "sched")
    with pytest.raises(FileNotFoundError, match="no scheduler.*scheduler = PATH"):
        DiffusersPrior.from_pretrained(tmp_path / "model")
    by_folder = DiffusersPrior.from_pretrained(tmp_path / "model", scheduler=tmp_path / "sched")
    by_file = DiffusersPrior.from_pretrained(
        tmp_path / "model", scheduler=tmp_path / "sched" / "scheduler_config.json")
    assert by_folder.num_timesteps == by_file.num_timesteps == 1000
    shutil.copy(tmp_path / "sched" / "scheduler_config.json", tmp_path / "model")
    assert DiffusersPrior.from_pretrained(tmp_path / "model").num_timesteps == 1000


def test_hub_id_from_the_local_cache_only(tmp_path: Path, tiny: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    repo = cache / "models--pnpkit--tiny-ddpm"
    commit = "0123456789abcdef0123456789abcdef01234567"
    tiny.save(repo / "snapshots" / commit, unet=tiny.unet2d(), scheduler=tiny.ddpm())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    prior = DiffusersPrior.from_pretrained("pnpkit/tiny-ddpm", cache_dir=cache)
    assert prior.name == "pnpkit/tiny-ddpm" and prior.shape == (1, 8, 8)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        DiffusersPrior.from_pretrained("pnpkit/not-cached", cache_dir=cache)


def test_ddim_scheduler_and_learned_variance(make_ckpt: Any, tiny: Any) -> None:
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=500, beta_schedule="scaled_linear")
    prior = DiffusersPrior.from_pretrained(make_ckpt(unet=tiny.unet2d(out_channels=2),
                                                    scheduler=sched))
    torch.testing.assert_close(prior.alphas_cumprod, sched.alphas_cumprod.double())
    x = torch.randn(2, 1, 8, 8)
    assert prior.eps(x, 100).shape == x.shape  # the variance half is dropped


def test_v_prediction_is_converted(make_ckpt: Any, tiny: Any) -> None:
    prior = DiffusersPrior.from_pretrained(make_ckpt(scheduler=tiny.ddpm(
        prediction_type="v_prediction")))
    assert prior.prediction_type == "v_prediction"
    g = torch.Generator().manual_seed(0)
    x_t, t = torch.randn(2, 1, 8, 8, generator=g), torch.tensor([50, 700])
    a = tiny.ddpm().alphas_cumprod[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        v = tiny.unet2d()(x_t, t).sample
        eps, x0 = prior.eps(x_t, t), prior.x0(x_t, t)
    torch.testing.assert_close(eps, a.sqrt() * v + (1 - a).sqrt() * x_t, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x0, a.sqrt() * x_t - (1 - a).sqrt() * v, rtol=1e-4, atol=1e-4)


def test_fp16_weights(tmp_path: Path, tiny: Any) -> None:
    unet = tiny.unet2d()
    tiny.save(tmp_path, unet=unet.half(), scheduler=tiny.ddpm())
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    upcast = DiffusersPrior.from_pretrained(tmp_path)
    assert next(upcast.unet.parameters()).dtype == torch.float32
    x = torch.randn(2, 1, 8, 8)
    ref = upcast.eps(x, 300)
    half = DiffusersPrior.from_pretrained(tmp_path, model_dtype="float16")
    assert next(half.unet.parameters()).dtype == torch.float16
    try:
        out = half.eps(x, 300)
    except RuntimeError as exc:  # a CPU build without half-precision kernels
        pytest.skip(f"float16 does not run on this CPU: {exc}")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0.05, atol=0.05)


def test_fp16_variant_files(tmp_path: Path, tiny: Any) -> None:
    tiny.unet2d().half().save_pretrained(tmp_path / "unet", variant="fp16")
    tiny.ddpm().save_pretrained(tmp_path / "scheduler")
    assert (tmp_path / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    with pytest.raises(FileNotFoundError, match="no weights"):
        DiffusersPrior.from_pretrained(tmp_path)
    prior = pnpkit.create("prior", "diffusers", path=str(tmp_path), variant="fp16")
    assert prior.eps(torch.zeros(1, 1, 8, 8), 3).dtype == torch.float32


def test_batched_per_item_timesteps_match_one_by_one(grey_ckpt: Path) -> None:
    prior = DiffusersPrior.from_pretrained(grey_ckpt)
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([5, 500, 900])
    together = prior.x0(x, t)
    alone = torch.cat([prior.x0(x[i:i + 1], int(t[i])) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint folder .*nowhere.* does not exist"):
        pnpkit.create("prior", "diffusers", path=str(tmp_path / "nowhere"))


def test_folder_without_checkpoint_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match=r"found: notes.txt\); expected a diffusers pipeline"):
        DiffusersPrior.from_pretrained(tmp_path)


def test_unet_folder_without_weights(make_ckpt: Any) -> None:
    ckpt = make_ckpt()
    (ckpt / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError,
                       match=r"no weights \(found: config.json\); expected diffusion_pytorch_model"):
        DiffusersPrior.from_pretrained(ckpt)


def test_unknown_model_class(make_ckpt: Any) -> None:
    ckpt = make_ckpt()
    config = json.loads((ckpt / "unet" / "config.json").read_text())
    config["_class_name"] = "UNet2DConditionModel"
    (ckpt / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown model class 'UNet2DConditionModel'.*UNet2DModel"):
        DiffusersPrior.from_pretrained(ckpt)


def test_scheduler_without_schedule(make_ckpt: Any) -> None:
    from diffusers import CMStochasticIterativeScheduler

    with pytest.raises(ValueError, match="no alphas_cumprod.*ConsistencyPrior"):
        DiffusersPrior.from_pretrained(make_ckpt(scheduler=CMStochasticIterativeScheduler()))


def test_signal_of_the_wrong_shape(grey_ckpt: Path) -> None:
    prior = pnpkit.create("prior", "diffusers", path=str(grey_ckpt))
    with pytest.raises(ValueError, match=r"prior 'tiny-grey' was trained on \(1, 8, 8\) signals "
                                         r"but got \(3, 16, 16\); .*channels = 1"):
        prior.denoise(torch.zeros(1, 3, 16, 16), 0.1)
    with pytest.raises(ValueError, match=r"but got \(1, 16, 16\); resize .*check_size = false"):
        prior.denoise(torch.zeros(1, 1, 16, 16), 0.1)
    with pytest.raises(ValueError, match=r"but got \(1, 64\)"):
        prior.denoise(torch.zeros(1, 1, 64), 0.1)
    free = pnpkit.create("prior", "diffusers", path=str(grey_ckpt), check_size=False)
    assert free.denoise(torch.zeros(1, 1, 16, 16), 0.1).shape == (1, 1, 16, 16)


def test_class_conditional_network_needs_a_label(make_ckpt: Any, tiny: Any) -> None:
    ckpt = make_ckpt(unet=tiny.unet2d(num_class_embeds=3))
    with pytest.raises(ValueError, match="class-conditional .*class_label"):
        DiffusersPrior.from_pretrained(ckpt)
    prior = DiffusersPrior.from_pretrained(ckpt, class_label=2)
    a, b = prior.eps(torch.ones(1, 1, 8, 8), 10), DiffusersPrior.from_pretrained(
        ckpt, class_label=0).eps(torch.ones(1, 1, 8, 8), 10)
    assert not torch.allclose(a, b)


def test_loaded_2d_priors_run_channels_last_with_the_same_result(grey_ckpt: Path,
                                                                 audio_ckpt: Path) -> None:
    """Loaded checkpoints store a 2-D network channels-last and feed it channels-last inputs;
    the result equals the standard layout's to float rounding and comes back contiguous."""
    fast = pnpkit.create("prior", "diffusers", path=str(grey_ckpt), check_size=False)
    plain = pnpkit.create("prior", "diffusers", path=str(grey_ckpt), check_size=False,
                          channels_last=False)
    conv = fast.unet.down_blocks[0].resnets[0].conv1.weight
    assert fast.net.channels_last and not plain.net.channels_last
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert plain.unet.down_blocks[0].resnets[0].conv1.weight.is_contiguous()
    x = torch.rand(2, 1, 12, 20, generator=torch.Generator().manual_seed(1)) * 2 - 1
    t = torch.tensor([50, 700])
    with torch.no_grad():
        out, ref = fast.eps(x, t), plain.eps(x, t)
    assert out.shape == (2, 1, 12, 20) and out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # A module given to the constructor is left in its layout unless asked.
    assert not DiffusersPrior(plain.unet, plain.scheduler).net.channels_last
    assert plain.unet.down_blocks[0].resnets[0].conv1.weight.is_contiguous()
    # 1-D networks have no channels-last layout: untouched.
    assert not DiffusersPrior.from_pretrained(audio_ckpt).net.channels_last
