"""The EDM audio prior: training (``parametrisation = "edm"``), loading, solving, validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import pnpkit
from pnpkit_audio import STEMS
from pnpkit_audio import train as training
from pnpkit_audio.network import EDM_TIME_SCALE, LARGE_CONFIG, AudioUNet1DModel
from pnpkit_audio.prior import AudioDiffusionPrior, AudioEDMPrior, load_audio_prior
from pnpkit_priors.trainer import estimate_sigma_data

from .test_train import LENGTH, TINY, FakeSampler


@pytest.fixture(scope="module")
def edm_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("edm") / "stems-edm"
    val = torch.from_numpy(FakeSampler(split="validation").sample(3, np.random.default_rng(7)))
    state = training.train(None, out, 4, batch_size=2, length=LENGTH, save_every=2, threads=1,
                           sampler=FakeSampler(), model_config=TINY, progress=False,
                           parametrisation="edm", validation=val)
    return out, state, val


def test_edm_training_writes_an_edm_folder_with_validation_gains(edm_run) -> None:
    out, state, _ = edm_run
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("training_state")) == [
        "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["_class_name"] == "EDMPrecond" and config["backbone_class"] == "AudioUNet1DModel"
    assert config["backbone_config"]["time_scale"] == EDM_TIME_SCALE
    # MSDM's training levels; sigma_data measured on the training segments.
    sd = estimate_sigma_data(FakeSampler(), 0)
    assert state["edm"]["p_mean"] == -3.0 and state["edm"]["p_std"] == 1.0
    assert state["edm"]["sigma_data"] == pytest.approx(round(sd, 4)) and 0.05 < sd < 0.5
    assert config["sigma_data"] == state["edm"]["sigma_data"]
    assert [v["step"] for v in state["validation"]] == [2, 4]
    gains = state["validation"][-1]["gain_db"]
    assert list(gains) == ["0.05", "0.1", "0.2", "0.4"] and all(np.isfinite(list(gains.values())))


def test_the_trained_folder_loads_as_an_audio_prior_and_separates(edm_run) -> None:
    out, _, val = edm_run
    prior = pnpkit.create("prior", "audio-diffusion", path=str(out), segment=512)
    assert isinstance(prior, AudioEDMPrior) and isinstance(prior, pnpkit.priors.DiffusionPrior)
    assert prior.stems == STEMS and prior.fixed_shape == (512,) and prior.shape == (4, None)
    assert prior.length_multiple == 16 and prior.sigma_min == 1e-4
    # D(x, sigma) at a level off the DDPM grid, for each item its own; and the same as EDMPrecond.
    x = val[:2] + 0.03 * torch.randn(2, 4, LENGTH, generator=torch.Generator().manual_seed(1))
    sig = torch.tensor([0.03, 0.0007])
    with torch.no_grad():
        want = prior.model(x, sig)
    assert torch.allclose(prior.denoise(x, sig), want, atol=1e-6)
    # A solver runs on it unchanged: MSDM's Dirac sampler on the mixture.
    op = pnpkit.create("operator", "mixture", shape=(4, LENGTH))
    y = op.A(val[:1])
    res = pnpkit.create("solver", "msdm-dirac", iterations=4).solve(
        y, op, prior, generator=torch.Generator().manual_seed(0))
    assert res.x.shape == (1, 4, LENGTH) and torch.isfinite(res.x).all()
    assert res.nfe == 8


def test_a_ddpm_folder_still_loads_as_before(tmp_path: Path) -> None:
    out = tmp_path / "ddpm"
    training.train(None, out, 2, batch_size=2, length=LENGTH, save_every=2, threads=1,
                   sampler=FakeSampler(), model_config=TINY, progress=False)
    assert type(load_audio_prior(out)) is AudioDiffusionPrior


def test_validation_segments_come_from_a_held_out_split_only() -> None:
    with pytest.raises(ValueError, match="validation segments come from a held-out split, not "
                                         "'train'; use split 'validation'"):
        training.validation_segments("data", 4, LENGTH, split="train")


def test_time_scale_one_is_the_old_network_and_large_fits_25_mb() -> None:
    torch.manual_seed(0)
    a = AudioUNet1DModel(**TINY)
    b = AudioUNet1DModel(**TINY, time_scale=1.0)
    b.load_state_dict(a.state_dict())
    x, t = torch.randn(1, 4, 64), torch.tensor([321])
    assert torch.equal(a(x, t).sample, b(x, t).sample)
    c = AudioUNet1DModel(**TINY, time_scale=2.0)
    c.load_state_dict(a.state_dict())
    assert torch.equal(c(x, torch.tensor([160.5])).sample, a(x, t).sample)
    n = sum(p.numel() for p in AudioUNet1DModel(**LARGE_CONFIG).parameters())
    assert 5.0e6 < n and 4 * n < 25e6


def test_ddpm_training_validates_too(tmp_path: Path) -> None:
    val = torch.from_numpy(FakeSampler(split="validation").sample(2, np.random.default_rng(7)))
    state = training.train(None, tmp_path / "ddpm-val", 2, batch_size=2, length=LENGTH,
                           save_every=2, threads=1, sampler=FakeSampler(), model_config=TINY,
                           progress=False, validation=val)
    assert [v["step"] for v in state["validation"]] == [2]
    assert all(np.isfinite(list(state["validation"][0]["gain_db"].values())))


def test_the_card_of_an_edm_run_says_its_objective_and_precision(tmp_path: Path) -> None:
    from pnpkit_audio.card import write_model_card

    out = tmp_path / "bf16"
    state = training.train(None, out, 2, batch_size=2, length=LENGTH, save_every=2, threads=1,
                           sampler=FakeSampler(), model_config=TINY, progress=False,
                           parametrisation="edm", precision="bf16")
    table = [{"sigma": 0.1, "timestep": None, "segments": 1, "snr_in": 0.0, "snr_out": 5.0,
              "gain": 5.0}]
    write_model_card(out, state, table, {"sample_rate": 8000})
    text = (out / "MODEL_CARD.md").read_text()
    assert "- objective: EDM denoising loss: ln sigma ~ N(p_mean, p_std^2)" in text
    assert "- precision: bf16 mixed precision (autocast forward passes)" in text
    assert "epsilon prediction" not in text
