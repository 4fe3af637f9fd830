"""EDM preconditioning, its checkpoint folder, the 'edm' prior, and EDM training (tiny models)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import pnpkit
from pnpkit.priors import ContinuousDiffusionPrior
from pnpkit.testing import PriorContract
from pnpkit_priors.edm import EDMPrecond, EDMPrior, load_edm, save_edm
from pnpkit_priors.trainer import EDM_DEFAULTS, denoising_gain, estimate_sigma_data, train_ddpm

TINY = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
            layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)


def unet(**kw: Any) -> Any:
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(**{**TINY, **kw})


def audio_net() -> Any:
    from pnpkit_audio.network import AudioUNet1DModel

    torch.manual_seed(0)
    return AudioUNet1DModel(in_channels=2, out_channels=2, channels=(8, 16, 16),
                            down_factors=(4, 4), norm_num_groups=4)


class Blobs:
    """(B, 1, 8, 8) images in [-1, 1]: a bright square at a random place, a pure function of rng."""

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        out = -np.ones((batch_size, 1, 8, 8), dtype=np.float32)
        for b in range(batch_size):
            i, j = rng.integers(0, 5, size=2)
            out[b, 0, i:i + 3, j:j + 3] = rng.uniform(0.0, 1.0)
        return out


class Spy(torch.nn.Module):
    """A backbone that records its inputs and returns a constant."""

    def __init__(self, value: float = 7.0) -> None:
        super().__init__()
        self.value = value
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        self.calls.append((x, c_noise))
        return torch.full_like(x, self.value)


# -- preconditioning ------------------------------------------------------------------------------

def test_preconditioning_is_karras_table_1():
    sd = 0.5
    pre = EDMPrecond(Spy(), sigma_data=sd)
    s = torch.tensor([0.0, 1e-4, 0.3, 2.0, 1e4], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = pre.coefficients(s)
    torch.testing.assert_close(c_skip, sd**2 / (s**2 + sd**2))
    torch.testing.assert_close(c_out, s * sd / (s**2 + sd**2).sqrt())
    torch.testing.assert_close(c_in, 1 / (s**2 + sd**2).sqrt())
    torch.testing.assert_close(c_noise[1:], 0.25 * s[1:].log())
    # sigma 0: D(x, 0) = x, whatever the backbone says; c_noise finite
    assert (float(c_skip[0]), float(c_out[0]), float(c_in[0])) == (1.0, 0.0, 1 / sd)
    assert math.isfinite(float(c_noise[0]))
    # large sigma: c_skip -> 0, c_out -> sigma_data, c_in -> 1 / sigma
    assert float(c_skip[-1]) < 1e-8 and abs(float(c_out[-1]) - sd) < 1e-8
    assert abs(float(c_in[-1]) * 1e4 - 1) < 1e-8
    x = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    d = pre(x, s)
    torch.testing.assert_close(d[0], x[0], rtol=0, atol=0)
    torch.testing.assert_close(d[-1], 7.0 * torch.ones_like(x[-1]) * float(c_out[-1])
                               + float(c_skip[-1]) * x[-1])
    seen_x, seen_c = pre.backbone.calls[-1]
    torch.testing.assert_close(seen_x, c_in.view(-1, 1, 1, 1) * x)
    torch.testing.assert_close(seen_c, c_noise)


def test_preconditioning_wraps_a_diffusers_unet_and_the_audio_network():
    x = torch.randn(2, 1, 8, 8)
    out = EDMPrecond(unet())(x, torch.tensor([0.1, 3.0]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    a = torch.randn(2, 2, 64)
    out = EDMPrecond(audio_net(), sigma_data=0.1)(a, 0.05)
    assert out.shape == a.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"sigma must be a number or one level per item \(2\), got 3"):
        EDMPrecond(unet())(x, torch.ones(3))
    with pytest.raises(ValueError, match=r"sigma_data must be > 0, got 0"):
        EDMPrecond(unet(), sigma_data=0)


# -- the folder -----------------------------------------------------------------------------------

@pytest.mark.parametrize("make, shape", [(unet, (2, 1, 8, 8)), (audio_net, (2, 2, 64))])
def test_save_load_round_trip(tmp_path: Path, make: Any, shape: tuple[int, ...]):
    pre = EDMPrecond(make(), sigma_data=0.3, sigma_min=2e-4, sigma_max=5.0)
    save_edm(pre, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["_class_name"] == "EDMPrecond"
    assert config["backbone_class"] == type(pre.backbone).__name__
    assert (config["sigma_data"], config["sigma_min"], config["sigma_max"], config["c_noise_scale"]) \
        == (0.3, 2e-4, 5.0, 0.25)
    assert not any(k.startswith("_") for k in config["backbone_config"])
    back = load_edm(tmp_path / "m")
    assert load_file(str(tmp_path / "m" / "model.safetensors")).keys() == pre.state_dict().keys()
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in pre.state_dict().items())
    assert back.edm_config() == config
    x = torch.randn(*shape)
    with torch.no_grad():
        torch.testing.assert_close(back(x, 0.2), pre.eval()(x, 0.2), rtol=0, atol=0)
    prior = EDMPrior.from_pretrained(tmp_path / "m")
    assert (prior.sigma_min, prior.sigma_max, prior.sigma_data) == (2e-4, 5.0, 0.3)


def test_the_edm_prior_from_a_config_runs_at_any_size(tmp_path: Path):
    pre = EDMPrecond(unet(), sigma_data=0.5)
    save_edm(pre, tmp_path / "edm-tiny")
    prior = pnpkit.create("prior", "edm", path=str(tmp_path / "edm-tiny"))
    assert isinstance(prior, EDMPrior) and isinstance(prior, ContinuousDiffusionPrior)
    assert prior.name == "edm-tiny" and prior.fixed_shape is None
    assert "EDMPrior(name='edm-tiny', backbone=UNet2DModel, sigma=[0.0001, 80]" in repr(prior)
    x = torch.randn(2, 1, 9, 11)  # padded to 10 x 12 and cropped back
    with torch.no_grad():
        out = prior.denoise(x, torch.tensor([0.05, 0.5]))
        want = pre(torch.nn.functional.pad(x, (0, 1, 0, 1), mode="reflect"),
                   torch.tensor([0.05, 0.5]))[..., :9, :11]
    torch.testing.assert_close(out, want)
    assert prior.nfe == 1
    with pytest.raises(ValueError, match=r"prior 'edm-tiny' takes \(B, 1, \.\.\.\) signals, got "
                                         r"\(1, 3, 8, 8\); give it signals of its own channel count"):
        prior.denoise(torch.zeros(1, 3, 8, 8), 0.1)


def test_loading_errors_are_one_line(tmp_path: Path):
    folder = save_edm(EDMPrecond(unet()), tmp_path / "m")

    def error(path: Path) -> str:
        with pytest.raises((FileNotFoundError, ValueError)) as info:
            load_edm(path)
        text = str(info.value)
        assert "\n" not in text
        return text

    assert error(tmp_path / "nowhere") == (
        f"EDM prior folder {str(tmp_path / 'nowhere')!r} does not exist; expected a folder with "
        "config.json (the EDMPrecond settings and its backbone's class and config) and "
        "model.safetensors, as pnpkit_priors.edm.save_edm and the trainer (parametrisation = "
        "\"edm\") write it")
    config = json.loads((folder / "config.json").read_text())
    weights = load_file(str(folder / "model.safetensors"))

    (folder / "model.safetensors").rename(folder / "w")
    assert error(folder).startswith(f"{folder} holds no model.safetensors (found: config.json, w); ")
    (folder / "w").rename(folder / "model.safetensors")

    (folder / "config.json").write_text(json.dumps({**config, "_class_name": "UNet2DModel"}))
    assert error(folder) == (f"{folder / 'config.json'} is not an EDM checkpoint's (_class_name is "
                             "'UNet2DModel', expected 'EDMPrecond'); a diffusers checkpoint (unet/ + "
                             "scheduler/) loads with [prior] name = \"diffusers\"")
    (folder / "config.json").write_text(json.dumps({**config, "backbone_class": "os.system"}))
    assert error(folder).startswith(f"{folder / 'config.json'}: unknown backbone_class 'os.system'; "
                                    "an EDM checkpoint's backbone is one of AudioUNet1DModel, "
                                    "UNet1DModel, UNet2DModel")
    (folder / "config.json").write_text(json.dumps({**config, "sigma_data": "half"}))
    assert error(folder) == (f"{folder / 'config.json'}: sigma_data must be a number, got 'half'; "
                             "use the config.json saved with these weights")
    (folder / "config.json").write_text("{not json")
    assert "is corrupt, not JSON" in error(folder)

    wide = {**config, "backbone_config": {**config["backbone_config"], "block_out_channels": [8, 32]}}
    (folder / "config.json").write_text(json.dumps(wide))
    assert " of another shape (e.g. backbone." in error(folder)
    (folder / "config.json").write_text(json.dumps(config))
    save_file({k: v for k, v in weights.items() if k != "backbone.conv_in.bias"},
              str(folder / "model.safetensors"))
    assert error(folder) == (f"{folder / 'model.safetensors'}: the weights do not fit "
                             f"{folder / 'config.json'}: 1 missing (e.g. backbone.conv_in.bias); "
                             "give the config.json saved with these weights")
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    assert "is corrupt or truncated" in error(folder)


class TestContract(PriorContract):
    @pytest.fixture
    def prior(self, tmp_path: Path) -> EDMPrior:
        folder = save_edm(EDMPrecond(unet()), tmp_path / "m")
        return EDMPrior.from_pretrained(folder)

    @pytest.fixture
    def signal(self) -> torch.Tensor:
        return 0.5 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))


# -- training -------------------------------------------------------------------------------------

def _train(out: Path, steps: int, **kw: Any) -> dict[str, Any]:
    from diffusers import UNet2DModel

    settings = dict(batch_size=4, lr=2e-3, save_every=5, threads=1, progress=False,
                    defaults=TINY, schedule_steps=30, warmup_steps=5, parametrisation="edm",
                    edm={"sigma_max": 10.0}, validation=Blobs().sample(4, np.random.default_rng(9)),
                    validate_every=10)
    return train_ddpm(UNet2DModel, None, Blobs(), out, steps, (8, 8), **{**settings, **kw})


def test_edm_training_lowers_the_loss_saves_the_folder_and_resumes_bit_for_bit(tmp_path: Path):
    straight = _train(tmp_path / "straight", 30)
    losses = straight["losses"]
    assert len(losses) == 30 and np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    assert straight["parametrisation"] == "edm"
    assert straight["edm"] == {**EDM_DEFAULTS, "sigma_max": 10.0}
    assert sorted(p.name for p in (tmp_path / "straight").iterdir()) == [
        "config.json", "model.safetensors", "training_state.json", "training_state.pt"]
    assert [v["step"] for v in straight["validation"]] == [10, 20, 30]
    assert list(straight["validation"][0]["gain_db"]) == ["0.05", "0.1", "0.2", "0.4"]
    recorded = json.loads((tmp_path / "straight" / "training_state.json").read_text())
    assert recorded["validation"] == straight["validation"]
    prior = EDMPrior.from_pretrained(tmp_path / "straight")
    assert prior.sigma_max == 10.0 and prior.num_parameters == straight["parameters"]
    # the recorded gain is the saved (EMA) network's, through the prior's denoise
    gains = denoising_gain(prior, Blobs().sample(4, np.random.default_rng(9)), seed=0)
    assert gains == pytest.approx(straight["validation"][-1]["gain_db"], abs=1e-3)

    stopped = _train(tmp_path / "resumed", 15)
    assert stopped["step"] == 15 and [v["step"] for v in stopped["validation"]] == [10, 15]
    resumed = _train(tmp_path / "resumed", 30, resume=True)
    assert resumed["losses"] == losses
    a = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    common = {v["step"]: v["gain_db"] for v in resumed["validation"]}
    assert all(common[v["step"]] == v["gain_db"] for v in straight["validation"])
    # each validation says when in the run it was made
    seconds = [v["seconds"] for v in resumed["validation"]]
    assert seconds == sorted(seconds) and 0 < seconds[0] <= resumed["seconds"]

    with pytest.raises(ValueError, match=r"cannot resume .* with other settings: edm="):
        _train(tmp_path / "resumed", 31, resume=True, edm={"sigma_max": 20.0})
    with pytest.raises(ValueError, match=r"other settings: parametrisation=ddpm \(the run has edm\)"):
        _train(tmp_path / "resumed", 31, resume=True, parametrisation="ddpm", edm=None)


def test_ddpm_validation_and_the_settings_checks(tmp_path: Path):
    state = _train(tmp_path / "ddpm", 4, parametrisation="ddpm", edm=None, validate_every=2)
    assert "parametrisation" not in state and [v["step"] for v in state["validation"]] == [2, 4]
    assert (tmp_path / "ddpm" / "unet").is_dir() and (tmp_path / "ddpm" / "scheduler").is_dir()
    with pytest.raises(ValueError, match=r"parametrisation must be one of 'ddpm', 'edm', got 'vp'"):
        _train(tmp_path / "x", 1, parametrisation="vp")
    with pytest.raises(ValueError, match=r"unknown EDM setting\(s\) p_man; known: p_mean"):
        _train(tmp_path / "x", 1, edm={"p_man": 0.0})
    with pytest.raises(ValueError, match=r"the validation batch has shape \(4, 3, 8, 8\); expected "
                                         r"\(N, 1, \.\.\., \.\.\.\) clean signals in \[-1, 1\]"):
        _train(tmp_path / "x", 1, validation=np.zeros((4, 3, 8, 8), np.float32))


def test_edm_trains_the_audio_network(tmp_path: Path):
    from pnpkit_audio.network import AudioUNet1DModel

    class Tones:
        def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
            n = np.arange(64)
            f = rng.uniform(0.05, 0.2, size=(batch_size, 2, 1))
            return (0.2 * np.sin(2 * np.pi * f * n)).astype(np.float32)

    sd = estimate_sigma_data(Tones(), batches=2, batch_size=8)
    assert 0.12 < sd < 0.16  # 0.2 / sqrt(2)
    config = dict(in_channels=2, out_channels=2, channels=[8, 16, 16], down_factors=[4, 4],
                  norm_num_groups=4)
    state = train_ddpm(AudioUNet1DModel, config, Tones(), tmp_path / "audio", 3, (64,),
                       batch_size=2, lr=1e-3, threads=1, progress=False, parametrisation="edm",
                       edm={"sigma_data": sd, "sigma_max": 1.0},
                       validation=Tones().sample(2, np.random.default_rng(0)))
    assert state["step"] == 3 and len(state["validation"]) == 1
    prior = pnpkit.create("prior", "edm", path=str(tmp_path / "audio"))
    assert prior.sigma_data == pytest.approx(sd) and prior.factor == 16
    with torch.no_grad():
        assert prior.denoise(torch.zeros(1, 2, 70), 0.1).shape == (1, 2, 70)


def test_loaded_edm_prior_runs_channels_last_with_the_same_result(tmp_path: Path) -> None:
    folder = save_edm(EDMPrecond(unet(), sigma_data=0.5), tmp_path / "edm-tiny")
    fast = pnpkit.create("prior", "edm", path=str(folder))
    plain = pnpkit.create("prior", "edm", path=str(folder), channels_last=False)
    assert fast.channels_last and not plain.channels_last
    conv = fast.model.backbone.down_blocks[0].resnets[0].conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    x = torch.rand(2, 1, 12, 20, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        out, ref = fast.denoise(x, 0.3), plain.denoise(x, 0.3)
    assert out.shape == (2, 1, 12, 20) and out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert not EDMPrior(plain.model).channels_last
