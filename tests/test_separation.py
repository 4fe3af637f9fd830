"""Music source separation end to end: the shipped config, excerpt and multi-source prior."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import load_file

from pnpkit import config as cfgmod
from pnpkit import pipeline

ROOT = Path(__file__).resolve().parents[1]
STEMS = ["bass", "drums", "guitar", "piano"]


pytestmark = pytest.mark.usefixtures("all_plugins", "two_threads")


@pytest.mark.parametrize("config, overrides, nfe", [
    ("separation-dirac.toml", ["solver.iterations=40"], 80),
    ("separation-projdiff.toml", ["solver.iterations=40", "solver.repeats=2"], 81),
])
def test_a_shipped_separation_config_writes_stems_pictures_and_per_stem_scores(
        tmp_path: Path, config: str, overrides: list[str], nfe: int) -> None:
    cfg = cfgmod.load(ROOT / "configs" / config, overrides)
    summary = pipeline.run(cfg, output=tmp_path / "out", progress=False)
    assert summary["items"] == 1
    (item,) = (tmp_path / "out" / "items").iterdir()
    for stem in STEMS:
        wav, rate = soundfile.read(item / f"reconstruction_{stem}.wav", always_2d=True)
        assert rate == 8000 and wav.shape == (65536, 1)
    mix, rate = soundfile.read(item / "measurement.wav", always_2d=True)
    assert mix.shape == (65536, 1)
    record = json.loads((item / "metrics.json").read_text())
    assert record["nfe"] == nfe
    keys = {f"si_snri_msdm/{s}" for s in STEMS} | {"si_snri_msdm", "si_snri"}
    assert keys <= set(record["metrics"])
    # the baseline (mixture / 4 on every stem) improves nothing: SI-SNR is scale-invariant
    assert record["pseudo_inverse_metrics"]["si_snri"] == pytest.approx(0.0, abs=1e-3)
    # the estimates add up to the mixture (both samplers end on the measurement set)
    t = load_file(item / "tensors.safetensors")
    torch.testing.assert_close(t["reconstruction"].sum(0, keepdim=True), t["measurement"],
                               atol=1e-4, rtol=0)
    assert (item / "figure.png").stat().st_size > 20_000
    assert np.isfinite(record["metrics"]["si_snri_msdm"])
