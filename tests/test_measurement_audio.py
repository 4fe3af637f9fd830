"""A measured mixture WAV: down-mixed, resampled to the prior's rate, separated window by window
when longer than the prior's window, and written back as one WAV per stem at the file's rate
and full length. A tiny fake audio prior (a closed-form diffusion prior with a small window)
keeps it fast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import load_file

from pnpkit.cli import main
from pnpkit.plugins import PluginManager, reset_manager

FAKE_AUDIO = '''
"""A fake two-stem audio prior: closed-form eps, a fixed window, a sample rate, stem names."""
import pnpkit
from pnpkit.testing import GaussianDiffusionPrior


class WindowedStems(GaussianDiffusionPrior):
    stems = ("low", "high")
    seen = []  # the lengths the network ran at

    def __init__(self, window=None, sample_rate=8000):
        super().__init__(scale=0.4)
        self.window, self.sample_rate = window, sample_rate or None  # 0: no rate

    @property
    def shape(self):
        return (2, None)

    @property
    def fixed_shape(self):
        return None if self.window is None else (self.window,)

    def network(self, x_t, t):
        WindowedStems.seen.append(int(x_t.shape[-1]))
        return super().network(x_t, t)


class Decimate:
    """Keeps every other sample: a measurement at half the signal's rate."""

    linear = True

    def __init__(self, shape, sigma_y=0.0):
        from pnpkit.operators import GaussianNoise
        self.noise_model = GaussianNoise(sigma_y)

    def A(self, x, **kw):
        return x[..., ::2]

    def A_adjoint(self, y, **kw):
        import torch
        out = torch.zeros(*y.shape[:-1], 2 * y.shape[-1], dtype=y.dtype, device=y.device)
        out[..., ::2] = y
        return out

    A_dagger = A_adjoint  # A A^T = I

    def measurement_rate(self, rate):
        return rate // 2


def decimate_shape(measurement_shape):
    c, n = measurement_shape
    return (c, 2 * n)


@pnpkit.hookimpl
def register_priors(register):
    register("fake-stems", WindowedStems)


@pnpkit.hookimpl
def register_operators(register):
    register("decimate", Decimate, signal_shape=decimate_shape)
'''


@pytest.fixture
def plugins(fake_site, monkeypatch):
    fake_site("pnpkit-fakeaudio", "pnpkit_fakeaudio", FAKE_AUDIO, entry_name="fakeaudio")
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "fakeaudio,operators,bench")
    reset_manager(PluginManager())
    import pnpkit_fakeaudio

    pnpkit_fakeaudio.WindowedStems.seen.clear()
    yield pnpkit_fakeaudio.WindowedStems
    reset_manager()


def song(path: Path, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    left = 0.3 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 1500 * t)
    wav = np.stack([left, 0.8 * left][:channels], axis=1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), wav, rate, subtype="FLOAT")
    return wav


def config(tmp_path: Path, prior: str = "", data: str = "", iterations: int = 2) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f'seed = 0\noutput = "out"\nmetrics = ["si_snr"]\n\n[data]\n'
                    f'measurement = "song.wav"\n{data}\n\n[operator]\nname = "mixture"\n'
                    f'sigma_y = 0.0\n\n[prior]\nname = "fake-stems"\n{prior}\n\n[solver]\n'
                    f'name = "hqs"\niterations = {iterations}\nsigma = 0.3\nsigma_end = 0.1\n')
    return path


def test_a_stereo_16khz_mixture_is_downmixed_resampled_and_its_stems_come_back_at_16khz(
        plugins, tmp_path, capsys):
    song(tmp_path / "song.wav", 0.25, 16000, channels=2)
    assert main(["run", str(config(tmp_path)), "-q"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "pnpkit: song.wav: 2 channels down-mixed to mono" in err
    assert ("pnpkit: song.wav: 16000 Hz resampled to 8000 Hz for the prior; stems written at "
            "16000 Hz") in err
    item = tmp_path / "out" / "items" / "song"
    for stem in ("low", "high"):  # the prior's stem names
        wav, rate = soundfile.read(item / f"reconstruction_{stem}.wav", always_2d=True)
        assert rate == 16000 and wav.shape == (4000, 1)  # the song's full length
    mix, rate = soundfile.read(item / "measurement.wav", always_2d=True)
    assert rate == 16000 and mix.shape == (4000, 1)
    record = json.loads((item / "metrics.json").read_text())
    assert record["sample_rate"] == 16000 and record["solve_rate"] == 8000
    assert record["signal_shape"] == [2, 2000]  # solved at the prior's 8 kHz
    assert set(record["metrics"]) == {"residual", "discrepancy"}
    assert set(plugins.seen) == {2000}


def test_the_data_sample_rate_is_the_prior_rate_when_the_prior_has_none(plugins, tmp_path, capsys):
    song(tmp_path / "song.wav", 0.25, 8000)
    cfg = config(tmp_path, prior="sample_rate = 0", data="sample_rate = 4000")
    assert main(["run", str(cfg), "-q"]) == 0
    assert "8000 Hz resampled to 4000 Hz" in capsys.readouterr().err
    wav, rate = soundfile.read(tmp_path / "out" / "items" / "song" / "reconstruction_low.wav")
    assert rate == 8000 and wav.shape == (2000,)


def test_a_song_longer_than_the_window_is_separated_window_by_window(plugins, tmp_path):
    from pnpkit.tiling import window_starts

    wav = song(tmp_path / "song.wav", 0.6, 8000)  # 4800 samples, windows of 1024
    refs = np.concatenate([0.5 * wav, 0.5 * wav], axis=1)
    soundfile.write(str(tmp_path / "stems.wav"), refs, 8000, subtype="FLOAT")
    cfg = config(tmp_path, prior="window = 1024", data='overlap = 0.02\nreference = "stems.wav"')
    assert main(["run", str(cfg), "-q"]) == 0
    item = tmp_path / "out" / "items" / "song"
    record = json.loads((item / "metrics.json").read_text())
    starts = window_starts(4800, 1024, 160)
    assert record["windows"] == len(starts) > 4 and record["window"] == 1024
    assert record["overlap"] == 160 and record["nfe"] == 2 * len(starts)
    assert set(plugins.seen) == {1024}  # memory bounded by the window: the network never saw more
    for stem in ("low", "high"):
        out, rate = soundfile.read(item / f"reconstruction_{stem}.wav")
        assert rate == 8000 and out.shape == (4800,)
    t = load_file(item / "tensors.safetensors")
    assert t["reconstruction"].shape == (2, 4800) and torch.isfinite(t["reconstruction"]).all()
    assert {"si_snr", "residual", "discrepancy"} <= set(record["metrics"])
    history = json.loads((item / "history.json").read_text())
    assert {h["window"] for h in history} == set(range(len(starts)))
    # each window has its own generator: the run is reproducible bit for bit
    assert main(["run", str(cfg), "-q", "-o", str(tmp_path / "again")]) == 0
    again = load_file(tmp_path / "again" / "items" / "song" / "tensors.safetensors")
    assert torch.equal(again["reconstruction"], t["reconstruction"])


def test_an_operator_that_changes_the_rate_gets_its_measurement_rate(plugins, tmp_path, capsys):
    """A decimating operator measures at 4 kHz a signal at the prior's 8 kHz: a 4 kHz file is
    taken as it is and restored at 8 kHz, twice as many samples; an 8 kHz file is resampled
    to the operator's 4 kHz first. The simulated path writes the measurement at 4 kHz too."""
    for rate, note in ((4000, None), (8000, "song.wav: 8000 Hz resampled to 4000 Hz, the "
                                            "operator's measurement rate for the prior's 8000 Hz")):
        song(tmp_path / "song.wav", 0.25, rate, channels=2)
        cfg = config(tmp_path, data="channels = 2")
        cfg.write_text(cfg.read_text().replace('name = "mixture"', 'name = "decimate"'))
        out = tmp_path / f"out{rate}"
        assert main(["run", str(cfg), "-q", "-o", str(out)]) == 0
        err = capsys.readouterr().err
        assert (f"pnpkit: {note}" in err.splitlines()) if note else "resampled" not in err
        item = out / "items" / "song"
        record = json.loads((item / "metrics.json").read_text())
        assert record["measurement_shape"] == [2, 1000] and record["signal_shape"] == [2, 2000]
        assert record["output_rate"] == 8000 and record["solve_rate"] == 8000
        wav, written = soundfile.read(item / "reconstruction.wav", always_2d=True)
        assert written == 8000 and wav.shape == (int(0.25 * rate) * 8000 // rate, 2)
        _, measured = soundfile.read(item / "measurement.wav")
        assert measured == rate  # the file as given
    song(tmp_path / "clean.wav", 0.25, 8000, channels=2)
    cfg = config(tmp_path)
    cfg.write_text(cfg.read_text().replace('name = "mixture"', 'name = "decimate"')
                   .replace('measurement = "song.wav"', 'files = "clean.wav"'))
    assert main(["run", str(cfg), "-q", "-o", str(tmp_path / "simulated")]) == 0
    y, measured = soundfile.read(tmp_path / "simulated" / "items" / "clean" / "measurement.wav")
    assert measured == 4000 and y.shape == (1000, 2)
