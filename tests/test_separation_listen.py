"""benchmarks/separation_listen.py: FLAC stems and spectrogram grids, from a fresh solve on the
shipped prior (0.5 s of a shipped excerpt, a few levels) and from a sweep's reconstructions
(the first two excerpts)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch

ROOT = Path(__file__).resolve().parents[1]
STEMS = ["bass", "drums", "guitar", "piano"]
LSB = 2.0 ** -23  # one step of 24-bit PCM

pytestmark = pytest.mark.usefixtures("all_plugins", "two_threads")


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("separation_listen",
                                                  ROOT / "benchmarks" / "separation_listen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path: Path) -> np.ndarray:
    wav, rate = soundfile.read(path, dtype="float64")
    assert rate == 8000 and wav.ndim == 1
    return wav


def test_a_fresh_solve_writes_stems_that_sum_to_the_mixture_and_a_grid(tmp_path: Path) -> None:
    listen = _load()
    code = listen.main([
        "--name", "tiny", "--out-root", str(tmp_path), "--data", 'dataset = "chorales-excerpts"',
        "--seconds", "0.5", "--piece", "bach-bwv145-a", "--prior", "default-stems8k",
        "--solver", '{ label = "projdiff", name = "projdiff", settings = { preset = "separation", '
                    'iterations = 4, repeats = 1 } }',
        "--solver", '{ label = "dirac", name = "msdm-dirac", settings = { iterations = 4, '
                    'num_resamples = 1, s_churn = 0.0 } }'])
    assert code == 0
    out = tmp_path / "tiny"
    record = json.loads((out / "listen.json").read_text())
    assert list(record["pieces"]) == ["bach-bwv145-a"]  # the one named, not the first two
    assert record["source"]["nfe"]["bach-bwv145-a"] == {"projdiff": 5, "dirac": 4}
    from pnpkit_audio.dataset import chorales_excerpts

    true = {it.id: it.signal.double().numpy() for it in chorales_excerpts(limit=2)}
    for piece, info in record["pieces"].items():
        # 0.5 s rounded down to the prior's length multiple: 3840 samples, 0.48 s
        assert info["seconds"] == pytest.approx(0.48) and info["stems"] == STEMS
        folder = out / piece
        mixture = _read(folder / "mixture.flac")
        assert mixture.shape == (3840,)
        np.testing.assert_allclose(mixture, true[piece][:, :3840].sum(0), atol=LSB)
        for k, stem in enumerate(STEMS):
            np.testing.assert_allclose(_read(folder / f"reference_{stem}.flac"), true[piece][k, :3840],
                                       atol=LSB)
        for label in ("projdiff", "dirac"):
            stems = np.stack([_read(folder / f"{label}_{stem}.flac") for stem in STEMS])
            if not any(k.startswith(label) for k in info["clipped_samples"]):
                # both samplers end on the measurement set: the stems add up to the mixture
                np.testing.assert_allclose(stems.sum(0), mixture, atol=1e-4)
            s = info["scores"][label]
            per_stem = [s[f"si_snri/{stem}"] for stem in STEMS]
            assert s["si_snri"] == pytest.approx(np.mean(per_stem), abs=1e-3)
            assert set(s) == {"si_snri", "si_snri_msdm"} | {f"{m}/{st}" for m in ("si_snri", "si_snri_msdm")
                                                            for st in STEMS}
        png = folder / "spectrograms.png"
        assert png.stat().st_size > 50_000
        import matplotlib.image

        height, width = matplotlib.image.imread(png).shape[:2]
        assert width > height * 0.9 and height >= 900  # 5 rows of panels, 3 columns and a bar
    text = (out / "README.md").read_text()
    assert "## bach-bwv145-a (0.480 s)" in text and "| projdiff | " in text


def test_from_a_sweeps_reconstructions_the_scores_are_the_known_ones(tmp_path: Path) -> None:
    """A hand-made sweep folder: each stem estimated as the truth plus a known share of the
    other stems, whose SI-SNRi is computed here independently."""
    from safetensors.torch import save_file

    from pnpkit_audio.dataset import chorales_excerpts
    from pnpkit_bench.sweep import reconstruction_name

    listen = _load()
    folder = tmp_path / "sweep"
    (folder / "reconstructions").mkdir(parents=True)
    sweep = {"data": {"dataset": "chorales-excerpts", "limit": 3}, "seeds": [0],
             "tasks": [{"name": "separation", "operator": "mixture", "noise": [0.0]}],
             "priors": [{"name": "default-stems8k", "label": "default-stems8k", "settings": {}}],
             "solvers": [{"name": "pinv", "label": "mix/4", "settings": {}},
                         {"name": "projdiff", "label": "half", "settings": {"repeats": 2}}]}
    (folder / "sweep.json").write_text(json.dumps({"fingerprint": "x", "sweep": sweep}))
    items = chorales_excerpts(limit=2)
    for item in items:
        s = item.signal.double()
        mix = s.sum(0, keepdim=True)
        for label, x in (("mix/4", mix.expand_as(s) / 4), ("half", 0.5 * s + 0.5 * (mix - s) / 3)):
            key = ("separation", "0", "default-stems8k", label, "0", item.id)
            save_file({"x": x.float().contiguous()},
                      folder / "reconstructions" / f"{reconstruction_name(key)}.safetensors")
    assert listen.main(["--name", "from", "--out-root", str(tmp_path), "--results", str(folder)]) == 0
    record = json.loads((tmp_path / "from" / "listen.json").read_text())
    assert list(record["pieces"]) == [it.id for it in items]

    def si_snr(x: torch.Tensor, ref: torch.Tensor) -> float:
        x, ref = x - x.mean(), ref - ref.mean()
        target = (x @ ref) / (ref @ ref) * ref
        return float(10 * torch.log10((target @ target) / ((x - target) @ (x - target))))

    for item in items:
        s = item.signal.double()
        mix = s.sum(0)
        scores = record["pieces"][item.id]["scores"]
        assert scores["mix/4"]["si_snri"] == pytest.approx(0.0, abs=1e-3)  # the mixture itself
        for k, stem in enumerate(STEMS):
            half = 0.5 * s[k] + 0.5 * (mix - s[k]) / 3
            want = si_snr(half, s[k]) - si_snr(mix, s[k])
            assert scores["half"][f"si_snri/{stem}"] == pytest.approx(want, abs=2e-3)
            assert scores["mix/4"][f"si_snri/{stem}"] == pytest.approx(0.0, abs=1e-3)
        half_bass = _read(tmp_path / "from" / item.id / "half_bass.flac")
        np.testing.assert_allclose(half_bass, (0.5 * s[0] + 0.5 * (mix - s[0]) / 3).float().numpy(),
                                   atol=2 * LSB)
        assert (tmp_path / "from" / item.id / "mix_4_piano.flac").is_file()  # "/" made safe
    # a sweep of two priors: the reconstructions of the one asked for; an unknown one refused
    with pytest.raises(SystemExit, match=r"--prior-label 'other' is not a prior of .*sweep.json; "
                                         r"priors: default-stems8k"):
        listen.main(["--name", "p", "--out-root", str(tmp_path), "--results", str(folder),
                     "--prior-label", "other"])
    assert listen.main(["--name", "p", "--out-root", str(tmp_path), "--results", str(folder),
                        "--prior-label", "default-stems8k", "--pieces", "1"]) == 0
    assert json.loads((tmp_path / "p" / "listen.json").read_text())["source"]["prior"] == \
        "default-stems8k"


@pytest.mark.parametrize("argv, message", [
    (["--results", "nowhere"], "--results nowhere: no sweep.json there"),
    (["--prior", "default-stems8k"], "a fresh solve needs --prior and at least one --solver"),
    ([], "give either --results DIR"),
    (["--prior", "default-stems8k", "--solver", "projdiff"], "is not a TOML table"),
])
def test_bad_arguments_are_one_line(tmp_path: Path, argv: list[str], message: str) -> None:
    listen = _load()
    with pytest.raises(SystemExit, match=re.escape(message)):
        listen.main(["--name", "x", "--out-root", str(tmp_path), *argv])
