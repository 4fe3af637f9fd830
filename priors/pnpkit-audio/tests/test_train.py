"""Training on synthetic stems: checkpoints, exact resumption, evaluation and the model card."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pnpkit_audio import STEMS
from pnpkit_audio import train as training
from pnpkit_audio.prior import AudioDiffusionPrior

TINY = dict(channels=(8, 16, 16), down_factors=(4, 4))
LENGTH = 256


class FakeSampler:
    """Synthetic stems shaped like ``SegmentSampler``'s: (B, 4, length) float32 in [-1, 1].

    Bass, guitar and piano are sums of a few sinusoids with random pitches and amplitudes
    (piano with a decaying envelope); drums are decaying noise bursts (clicks) at random onsets.
    """

    def __init__(self, root: Any = None, split: str = "train", length: int = LENGTH) -> None:
        self.split, self.length = split, length
        self.sample_rate = 8000

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        n, sr = self.length, self.sample_rate
        t = np.arange(n) / sr
        out = np.zeros((batch_size, len(STEMS), n), dtype=np.float64)
        for b in range(batch_size):
            for c, (lo, hi) in zip((0, 2, 3), ((40, 110), (110, 660), (220, 1760)), strict=True):
                for _ in range(3):
                    f, phase = rng.uniform(lo, hi), rng.uniform(0, 2 * np.pi)
                    out[b, c] += rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * f * t + phase)
            out[b, 3] *= np.exp(-t * rng.uniform(1, 20))
            for onset in rng.integers(0, n, size=3):
                burst = rng.standard_normal(n - onset) * np.exp(-np.arange(n - onset) / 40)
                out[b, 1, onset:] += 0.3 * burst
        return np.clip(out, -1, 1).astype(np.float32)


def _train(out: Path, steps: int, **kw: Any) -> dict[str, Any]:
    settings = dict(batch_size=2, length=LENGTH, save_every=2, threads=1, sampler=FakeSampler(),
                    model_config=TINY, progress=False)
    return training.train(None, out, steps, **{**settings, **kw})


@pytest.fixture(scope="module")
def run3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("train") / "stems"
    return out, _train(out, 3, schedule_steps=5)


def test_the_fake_sampler_is_a_pure_function_of_the_rng() -> None:
    s = FakeSampler()
    a, b = s.sample(2, np.random.default_rng([0, 1])), s.sample(2, np.random.default_rng([0, 1]))
    assert a.shape == (2, 4, LENGTH) and a.dtype == np.float32 and np.array_equal(a, b)
    assert np.abs(a).max() <= 1 and (np.abs(a).reshape(2, 4, -1).max(-1) > 0).all()


def test_training_writes_a_loadable_checkpoint(run3: tuple[Path, dict[str, Any]]) -> None:
    out, state = run3
    assert {p.name for p in out.iterdir()} == {"unet", "scheduler", "training_state.json",
                                               "training_state.pt"}
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (out / "scheduler" / "scheduler_config.json").is_file()
    saved = json.loads((out / "training_state.json").read_text())
    assert saved["step"] == 3 == state["step"] and len(saved["losses"]) == 3
    assert saved["seconds"] > 0 and all(math.isfinite(v) for v in saved["losses"])
    assert saved["model_config"]["channels"] == [8, 16, 16] and saved["schedule_steps"] == 5
    blob = torch.load(out / "training_state.pt", weights_only=True)
    assert {"model", "optimizer", "ema", "torch_rng", "state"} <= set(blob)
    assert json.loads(blob["state"]) == saved
    prior = AudioDiffusionPrior.from_pretrained(out)
    assert prior.shape == (4, None) and prior.num_parameters == saved["parameters"]
    x = torch.from_numpy(FakeSampler().sample(2, np.random.default_rng(9)))
    assert torch.isfinite(prior.denoise(x, 0.1)).all()
    # What is saved is the EMA, not the raw weights.
    ema = load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors"))
    assert any(not torch.equal(ema[k], v) for k, v in blob["model"].items())


def test_resume_is_bit_for_bit(run3: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out = Path(shutil.copytree(run3[0], tmp_path / "resumed"))
    resumed = _train(out, 5, resume=True)
    straight = _train(tmp_path / "straight", 5)
    assert resumed["step"] == straight["step"] == 5
    assert resumed["losses"] == straight["losses"]
    a = load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra = torch.load(out / "training_state.pt", weights_only=True)
    rb = torch.load(tmp_path / "straight" / "training_state.pt", weights_only=True)
    assert all(torch.equal(ra["model"][k], rb["model"][k]) for k in ra["model"])


def test_a_run_is_not_overwritten_or_resumed_with_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(out, 1)
    with pytest.raises(FileExistsError, match=r"already holds a training run .* pass resume=True"):
        _train(out, 2)
    with pytest.raises(ValueError, match=r"cannot resume .* with other settings: seed=1 \(the run "
                       r"has 0\)"):
        _train(out, 2, resume=True, seed=1)
    with pytest.raises(ValueError, match=r"other settings: model_config"):
        _train(out, 2, resume=True, model_config=dict(TINY, kernel_size=5))


def test_max_minutes_stops_and_resume_continues(tmp_path: Path) -> None:
    state = _train(tmp_path / "run", 4, max_minutes=0)
    assert state["step"] == 1 and state["stopped_by"] == "max_minutes"
    assert (tmp_path / "run" / "unet" / "config.json").is_file()
    state = _train(tmp_path / "run", 4, resume=True)
    assert state["step"] == 4 and state["stopped_by"] == "steps" and len(state["losses"]) == 4


def test_bad_lengths_and_batches_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"length 250 does not fit the network: signal length "
                       r"250 is not a multiple of 16"):
        training.train(None, tmp_path / "a", 1, batch_size=2, length=250, sampler=FakeSampler(),
                       model_config=TINY, progress=False)

    class Mono(FakeSampler):
        def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
            return super().sample(batch_size, rng)[:, :1]

    with pytest.raises(ValueError, match=r"batch of shape \(2, 1, 256\), expected \(2, 4, 256\)"):
        _train(tmp_path / "b", 1, sampler=Mono())


def test_learning_rate_schedule() -> None:
    lr = [training.learning_rate(s, 1.0, 10, 100) for s in range(120)]
    assert lr[0] == pytest.approx(0.1, rel=1e-2) and max(lr) == pytest.approx(lr[9])
    assert lr[50] == pytest.approx(0.5) and lr[100] == lr[119] == 0.0


def test_evaluate_denoising_and_model_card(run3: tuple[Path, dict[str, Any]]) -> None:
    out, state = run3
    prior = AudioDiffusionPrior.from_pretrained(out)
    segments = torch.from_numpy(FakeSampler().sample(3, np.random.default_rng(5)))
    rows = training.evaluate_denoising(prior, segments, sigmas=(0.01, 0.1), batch_size=2)
    assert [r["sigma"] for r in rows] == [0.01, 0.1]
    for r in rows:
        assert set(r) == {"sigma", "timestep", "segments", "snr_in", "snr_out", "gain"}
        assert r["segments"] == 3 and r["timestep"] == prior.sigma_to_t(r["sigma"])
        assert all(math.isfinite(r[k]) for k in ("snr_in", "snr_out", "gain"))
    # Input SNR: signal power over sigma^2.
    power = float(segments.double().pow(2).mean())
    assert rows[1]["snr_in"] == pytest.approx(10 * math.log10(power / 0.01), abs=0.5)
    assert rows[0]["snr_in"] - rows[1]["snr_in"] == pytest.approx(20, abs=0.5)
    assert rows == training.evaluate_denoising(prior, segments, sigmas=(0.01, 0.1))  # seeded

    info = {"source": "synthetic stems", "split": "validation", "segments": 3}
    card = training.write_model_card(out, state, rows, info)
    assert json.loads((out / "card.json").read_text()) == card
    assert card["model"]["parameters"] == prior.num_parameters
    assert card["training"]["steps"] == state["step"] and card["data"] == info
    text = (out / "MODEL_CARD.md").read_text()
    assert "| noise std | timestep | segments | SNR in (dB) | SNR out (dB) | gain (dB) |" in text
    assert "- source: synthetic stems" in text and "optimiser steps of 2 segments" in text


def test_command_line(built: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m pnpkit_audio.train`` with the default network, on two real rendered chorales."""
    root, _ = built
    out = tmp_path / "cli"
    argv = ["--data", str(root), "--out", str(out), "--steps", "2", "--batch-size", "2",
            "--length", "256", "--threads", "1", "--card-segments", "2", "--card-split", "test",
            "--val-segments", "0"]  # the two-piece dataset has no validation split
    assert training.main(argv) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["steps"] == 2 and card["model"]["parameters"] > 1.8e6
    assert card["data"]["sample_rate"] == 8000 and card["data"]["pieces per split"]["train"] == 1
    assert card["data"]["evaluation"] == "2 fixed segments of 256 samples from the test split"
    assert [r["sigma"] for r in card["evaluation"]["rows"]] == list(training.NOISE_LEVELS)
    printed = capsys.readouterr().out
    assert "trained 2 steps" in printed and "wrote" in printed
    assert training.main(argv[:5] + ["3"] + argv[6:] + ["--resume", "--card-segments", "0"]) == 0
    assert json.loads((out / "training_state.json").read_text())["step"] == 3


def test_training_emits_no_warning(tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(tmp_path / "quiet", 2, schedule_steps=5)
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
