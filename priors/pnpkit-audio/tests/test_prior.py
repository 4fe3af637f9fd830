"""The multi-source audio prior: loading offline, its errors, and pnpkit's prior contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from pnpkit.priors import DiffusionPrior, linear_alphas_cumprod
from pnpkit.testing import PriorContract
from pnpkit_audio.network import AudioUNet1DModel
from pnpkit_audio.prior import AudioDiffusionPrior, audio_prior, build_scheduler

TINY = dict(channels=(8, 16, 16), down_factors=(4, 4))


def _tiny_net() -> AudioUNet1DModel:
    torch.manual_seed(0)
    return AudioUNet1DModel(**TINY).eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint saved as training writes it: ``tiny-stems/{unet,scheduler}``."""
    folder = tmp_path_factory.mktemp("audio") / "tiny-stems"
    _tiny_net().save_pretrained(folder / "unet")
    build_scheduler().save_pretrained(folder / "scheduler")
    return folder


@pytest.fixture
def loaded(ckpt: Path) -> AudioDiffusionPrior:
    return AudioDiffusionPrior.from_pretrained(ckpt)


def _copy(ckpt: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(ckpt, tmp_path / "copy"))


def test_round_trip_gives_identical_outputs(loaded: AudioDiffusionPrior) -> None:
    net = _tiny_net()
    x, t = torch.rand(2, 4, 64) * 2 - 1, torch.tensor([3, 700])
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(x, t), net(x, t).sample, rtol=0, atol=0)
        eps = loaded.eps(x, t)
    assert eps.abs().max() > 0 and loaded.nfe == 1


def test_what_it_exposes(loaded: AudioDiffusionPrior) -> None:
    assert isinstance(loaded, DiffusionPrior)
    assert loaded.shape == (4, None) and loaded.length_multiple == 16
    assert loaded.name == "tiny-stems" and loaded.dtype == torch.float32
    assert loaded.num_parameters == sum(p.numel() for p in _tiny_net().parameters())
    assert loaded.prediction_type == "epsilon" and loaded.num_timesteps == 1000
    torch.testing.assert_close(loaded.alphas_cumprod, linear_alphas_cumprod(1000), rtol=1e-6,
                               atol=1e-7)
    assert not any(p.requires_grad for p in loaded.unet.parameters()) and not loaded.unet.training
    assert "tiny-stems" in repr(loaded)


def test_float16_network_serves_float32_signals(ckpt: Path, loaded: AudioDiffusionPrior) -> None:
    half = AudioDiffusionPrior.from_pretrained(ckpt, dtype="float16", name="half")
    assert half.dtype == torch.float16 and half.name == "half"
    x = torch.rand(1, 4, 32) * 2 - 1
    with torch.no_grad():
        out = half.eps(x, 400)
        ref = loaded.eps(x, 400)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-2)


def test_factory_loads_the_same_prior(ckpt: Path, loaded: AudioDiffusionPrior) -> None:
    prior = audio_prior(str(ckpt), device="cpu", dtype="float64")
    x = torch.rand(1, 4, 32, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(prior.eps(x, 10).float(), loaded.eps(x.float(), 10), rtol=1e-4,
                                   atol=1e-5)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"audio prior folder '.*nowhere' does not exist; "
                       r"expected a folder with unet/"):
        AudioDiffusionPrior.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"is a file; give the checkpoint's folder"):
        AudioDiffusionPrior.from_pretrained(tmp_path / "file")


def test_folder_without_unet_lists_what_is_there(ckpt: Path, tmp_path: Path) -> None:
    folder = _copy(ckpt, tmp_path)
    shutil.rmtree(folder / "unet")
    (folder / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"holds no unet/ \(found: notes.txt, scheduler/\); "
                       r"expected a folder with unet/ \(config.json and "
                       r"diffusion_pytorch_model.safetensors\) and scheduler/"):
        AudioDiffusionPrior.from_pretrained(folder)
    shutil.rmtree(folder / "scheduler")
    (folder / "notes.txt").unlink()
    with pytest.raises(FileNotFoundError,
                       match=r"holds no unet/ \(found: nothing \(the folder is empty\)\)"):
        AudioDiffusionPrior.from_pretrained(folder)


def test_missing_files_are_named(ckpt: Path, tmp_path: Path) -> None:
    folder = _copy(ckpt, tmp_path)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"unet holds no "
                       r"diffusion_pytorch_model.safetensors "
                       r"\(found: config.json\)"):
        AudioDiffusionPrior.from_pretrained(folder)
    shutil.copy(ckpt / "unet" / "diffusion_pytorch_model.safetensors", folder / "unet")
    (folder / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"scheduler holds no scheduler_config.json "
                       r"\(found: nothing \(the folder is empty\)\)"):
        AudioDiffusionPrior.from_pretrained(folder)
    shutil.rmtree(folder / "scheduler")
    with pytest.raises(FileNotFoundError, match=r"holds no scheduler/ \(found: unet/\)"):
        AudioDiffusionPrior.from_pretrained(folder)


def test_other_network_class_is_refused(ckpt: Path, tmp_path: Path) -> None:
    folder = _copy(ckpt, tmp_path)
    config = json.loads((folder / "unet" / "config.json").read_text())
    config["_class_name"] = "UNet1DModel"
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError,
                       match=r"describes a 'UNet1DModel'; this prior loads AudioUNet1DModel"):
        AudioDiffusionPrior.from_pretrained(folder)


def test_channel_mismatch_says_the_expected_shape(loaded: AudioDiffusionPrior) -> None:
    with pytest.raises(ValueError, match=r"prior 'tiny-stems' models \(B, 4, L\) \(bass, drums, "
                       r"guitar, piano stacked as channels\) with L a multiple of 16, but got "
                       r"signals of shape \(1, 2, 64\)"):
        loaded.denoise(torch.zeros(1, 2, 64), 0.1)
    with pytest.raises(ValueError, match=r"but got signals of shape \(1, 1, 4, 64\)"):
        loaded.eps(torch.zeros(1, 1, 4, 64), 10)
    with pytest.raises(ValueError, match=r"but got length 70; pad or crop the signal to a multiple "
                       r"of 16 \(the nearest: 64 or 80\)"):
        loaded.eps(torch.zeros(1, 4, 70), 10)


def test_fixed_shape_is_the_separation_window(ckpt: Path, loaded: AudioDiffusionPrior) -> None:
    assert loaded.fixed_shape == (65536,) and loaded.segment == 65536
    short = audio_prior(str(ckpt), segment=16384)
    assert short.fixed_shape == (16384,)
    with pytest.raises(ValueError, match=r"prior 'tiny-stems': segment = 1010 must be a positive "
                                         r"multiple of 16 samples .*; use e\.g\. segment = 1008"):
        audio_prior(str(ckpt), segment=1010)
    with pytest.raises(ValueError, match=r"segment = 0 must .*segment = 16"):
        AudioDiffusionPrior.from_pretrained(ckpt, segment=0)
    # a network whose down-sampling does not divide 65536: the default is the nearest below
    odd = AudioDiffusionPrior(AudioUNet1DModel(channels=(8, 16), down_factors=(3,)),
                              build_scheduler())
    assert odd.length_multiple == 3 and odd.fixed_shape == (65535,)


def test_packaged_prior_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    from pnpkit_audio import SEGMENT
    from pnpkit_audio.plugin import WEIGHTS_DIR, default_stems8k

    if not WEIGHTS_DIR.is_dir():
        pytest.skip("no packaged stems8k weights")
    assert SEGMENT == 65536 and default_stems8k().fixed_shape == (65536,)
    assert default_stems8k(segment=4096).fixed_shape == (4096,)


class Mixture:
    """The sum of the stems (source separation's measurement), in deepinv's operator language."""

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1, keepdim=True)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y.expand(-1, 4, -1)

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:
        return self.A_adjoint(y) / 4


def test_a_solver_runs_on_the_prior(loaded: AudioDiffusionPrior) -> None:
    from pnpkit import HQS

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 4, 32, generator=g) * 2 - 1) * 0.5
    res = HQS(iterations=3, stepsize=1.0, sigma=0.2).solve(Mixture().A(x), Mixture(), loaded,
                                                           generator=g)
    assert res.x.shape == x.shape and torch.isfinite(res.x).all() and res.nfe >= 3


class TestAudioPriorContract(PriorContract):
    """pnpkit's prior contract on a tiny saved-and-loaded checkpoint."""

    @pytest.fixture
    def prior(self, loaded: AudioDiffusionPrior) -> AudioDiffusionPrior:
        return loaded

    @pytest.fixture
    def signal(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.rand(2, 4, 64, generator=g) * 2 - 1


def test_default_prior_knows_its_sample_rate() -> None:
    """A measured song is resampled to the rate the shipped prior was trained at (its card)."""
    import pnpkit

    prior = pnpkit.create("prior", "default-stems8k")
    assert prior.sample_rate == 8000
    assert prior.stems == ("bass", "drums", "guitar", "piano")


def test_default_priors_take_their_below_floor_rule() -> None:
    """The setting reaches the prior (it was dropped by default-stems8k before)."""
    import pnpkit

    assert pnpkit.create("prior", "default-stems8k", below_floor="score").below_floor == "score"
    assert pnpkit.create("prior", "default-stems8k").below_floor == "floor"


def test_default_edm_prior_is_a_continuous_prior_at_8khz() -> None:
    import pnpkit
    from pnpkit.priors import ContinuousDiffusionPrior
    from pnpkit_audio.plugin import EDM_WEIGHTS_DIR
    from pnpkit_audio.prior import AudioEDMPrior

    prior = pnpkit.create("prior", "default-stems8k-edm", segment=16384)
    assert isinstance(prior, AudioEDMPrior) and isinstance(prior, ContinuousDiffusionPrior)
    assert prior.sample_rate == 8000 and prior.stems == ("bass", "drums", "guitar", "piano")
    assert prior.fixed_shape == (16384,) and (prior.sigma_min, prior.sigma_max) == (1e-4, 80.0)
    assert (EDM_WEIGHTS_DIR / "model.safetensors").stat().st_size < 25_000_000
    # One denoising step on a shipped test excerpt gains: the shipped weights are trained.
    from pnpkit_audio.dataset import chorales_excerpts

    clean = chorales_excerpts(limit=1)[0].signal[None, :, 16384:32768].float()
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = prior.denoise(noisy, 0.05)
    gain = float(10 * torch.log10(((noisy - clean) ** 2).sum() / ((out - clean) ** 2).sum()))
    assert gain > 7.0, gain  # 7.8 dB here; the DDPM default-stems8k gains 6.1 on the same
