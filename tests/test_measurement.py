"""``[data] measurement``: the user's own y, restored at its own size, with or without a reference.

Images here; audio (resampling, down-mixing, windows) in ``test_measurement_audio.py`` and
bad input in ``test_measurement_errors.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from pnpkit import config as cfgmod
from pnpkit import pipeline
from pnpkit.data import read_image
from pnpkit.plugins import PluginManager, reset_manager


@pytest.fixture
def plugins(toy_site, monkeypatch):
    """The toy plugin (toy-gauss prior), the house operators and pnpkit-bench's figure."""
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,operators,bench")
    reset_manager(PluginManager())
    yield
    reset_manager()


def picture(h: int, w: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A smooth (h, w[, 3]) uint8 picture."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, channels, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=True)[0]
    arr = (img.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return arr[0] if channels == 1 else np.moveaxis(arr, 0, -1)


def save_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def config(tmp_path: Path, data: str, operator: str, metrics: str = '["psnr"]',
           solver: str = 'name = "hqs"\niterations = 3\nsigma = 0.3\nsigma_end = 0.1') -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f'seed = 1\noutput = "out"\nmetrics = {metrics}\n\n[data]\n{data}\n\n'
                    f'[operator]\n{operator}\n\n[prior]\nname = "toy-gauss"\n\n[solver]\n{solver}\n')
    return path


def test_the_measurement_and_reference_keys_validate():
    base = {"output": "o", "operator": {"name": "x"}, "prior": {"name": "x"},
            "solver": {"name": "x"}}
    cfgmod.validate({**base, "data": {"measurement": "y.png", "reference": "x.png",
                                      "channels": 1, "overlap": 0.5}})
    cases = [({"measurement": "y.png", "size": 32}, "size does not apply to a measurement"),
             ({"files": "x.png", "reference": "x.png"}, "reference goes with measurement"),
             ({"measurement": "y.png", "sample": "camera"}, "exactly one of"),
             ({"measurement": 3}, "must be a path, a glob or a list"),
             ({"measurement": "y.wav", "overlap": -1}, "overlap is the cross-fade in seconds"),
             ({"files": "x.wav", "overlap": 1.0}, "goes with measurement")]
    for data, message in cases:
        with pytest.raises(cfgmod.ConfigError, match=message):
            cfgmod.validate({**base, "data": data})
    for prior, message in [({"tile": 0}, r"tile = 0 is too small; use tile >= 8"),
                           ({"tile": "64"}, r"tile must be a whole number, got '64'"),
                           ({"tile": 64, "overlap": 1.5}, r"overlap = 1\.5 must be a whole number from 0"),
                           ({"tile": 16, "overlap": 16}, r"overlap = 16 must be a whole number from 0 to "
                                                         r"tile - 1 = 15"),
                           ({"overlap": 8}, "overlap goes with tile")]:
        with pytest.raises(cfgmod.ConfigError, match=message):
            cfgmod.validate({**base, "data": {"measurement": "y.png"},
                             "prior": {"name": "x", **prior}})
    for prior in ({"tile": 8}, {"tile": 16, "overlap": 15}, {"tile": 64, "overlap": 0}):
        cfgmod.validate({**base, "data": {"measurement": "y.png"}, "prior": {"name": "x", **prior}})


def test_a_16x24_sr4_measurement_gives_a_64x96_reconstruction_at_full_size(plugins, tmp_path):
    save_png(tmp_path / "low.png", picture(16, 24))
    cfg = config(tmp_path, 'measurement = "low.png"', 'name = "super-resolution"\nsigma_y = 0.0')
    summary = pipeline.run(cfgmod.load(cfg), progress=False)
    item = tmp_path / "out" / "items" / "low"
    assert Image.open(item / "reconstruction.png").size == (96, 64)  # (width, height)
    assert Image.open(item / "measurement.png").size == (24, 16)
    assert not (item / "reference.png").exists()
    record = json.loads((item / "metrics.json").read_text())
    assert record["signal_shape"] == [1, 64, 96] and record["measurement_shape"] == [1, 16, 24]
    # no reference: what needs none, and nothing that does
    assert set(record["metrics"]) == {"residual", "discrepancy"}  # sigma_y = 0: no ratio
    assert set(summary["mean"]) == {"residual", "discrepancy", "nfe", "wall_time"}
    assert record["nfe"] == 3 and record["wall_time"] > 0
    assert load_file(item / "tensors.safetensors")["reconstruction"].shape == (1, 64, 96)
    assert (item / "figure.png").stat().st_size > 5_000  # 16x24, A^+ y and result 64x96 side by side
    # the resolved config names the measurement absolutely: out/config.toml runs from anywhere
    resolved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert resolved["data"]["measurement"] == str(tmp_path / "low.png")


def test_no_reference_metrics_are_the_residual_and_discrepancy_of_the_result(plugins, tmp_path):
    save_png(tmp_path / "noisy.png", picture(12, 20, seed=3))
    cfg = config(tmp_path, 'measurement = "noisy.png"', 'name = "denoising"\nsigma_y = 0.1')
    pipeline.run(cfgmod.load(cfg), progress=False)
    item = tmp_path / "out" / "items" / "noisy"
    record = json.loads((item / "metrics.json").read_text())
    t = load_file(item / "tensors.safetensors")
    r = (t["reconstruction"] - t["measurement"]).pow(2).sum().sqrt()  # A = identity
    m = record["metrics"]
    assert m["residual"] == pytest.approx(float(r / t["measurement"].pow(2).sum().sqrt()), rel=1e-5)
    assert m["discrepancy"] == pytest.approx(float(r) / math.sqrt(12 * 20), rel=1e-5)
    assert m["discrepancy_ratio"] == pytest.approx(m["discrepancy"] / 0.1, rel=1e-6)
    assert 0 < m["residual"] < 1
    assert record["sigma_y"] == pytest.approx(0.1)
    # the A^+ y baseline is scored the same way: y itself, residual 0
    assert record["pseudo_inverse_metrics"]["residual"] == pytest.approx(0.0, abs=1e-6)


def test_sigma_y_with_a_measurement_adds_no_noise(plugins, tmp_path):
    path = save_png(tmp_path / "y.png", picture(10, 14, seed=5))
    cfg = config(tmp_path, 'measurement = "y.png"', 'name = "denoising"\nsigma_y = 0.2')
    pipeline.run(cfgmod.load(cfg), progress=False)
    t = load_file(tmp_path / "out" / "items" / "y" / "tensors.safetensors")
    assert torch.equal(t["measurement"], read_image(path))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "items" / "y" / "measurement.png")),
                          np.asarray(Image.open(path)))


def test_references_matched_by_stem_add_the_reference_metrics(plugins, tmp_path):
    for i, stem in enumerate(["a", "b"]):
        save_png(tmp_path / "meas" / f"{stem}.png", picture(8, 12, seed=i))
        save_png(tmp_path / "refs" / f"{stem}.png", picture(32, 48, seed=10 + i))
    # listed in the other order: matched by file stem, not by position
    cfg = config(tmp_path, 'measurement = "meas/*.png"\nreference = ["refs/b.png", "refs/a.png"]',
                 'name = "super-resolution"\nsigma_y = 0.0', metrics='["psnr", "mse"]')
    summary = pipeline.run(cfgmod.load(cfg), progress=False)
    assert summary["items"] == 2
    assert {"psnr", "mse", "residual", "discrepancy"} <= set(summary["mean"])
    for stem in ("a", "b"):
        item = tmp_path / "out" / "items" / stem
        t = load_file(item / "tensors.safetensors")
        assert torch.equal(t["reference"], read_image(tmp_path / "refs" / f"{stem}.png"))
        record = json.loads((item / "metrics.json").read_text())
        mse = float((t["reconstruction"] - t["reference"]).pow(2).mean())
        assert record["metrics"]["mse"] == pytest.approx(mse, rel=1e-5)
        assert record["metrics"]["psnr"] == pytest.approx(10 * math.log10(4 / mse), rel=1e-5)
        assert (item / "reference.png").is_file()
        assert "psnr" in record["pseudo_inverse_metrics"]


def test_channels_keeps_or_converts_the_measurement(plugins, tmp_path):
    path = save_png(tmp_path / "colour.png", picture(8, 10, channels=3))
    assert read_image(path).shape == (3, 8, 10)          # default: as the file
    assert read_image(path, 1).shape == (1, 8, 10)       # grey
    grey = save_png(tmp_path / "grey.png", picture(8, 10))
    with pytest.raises(ValueError, match="grey measurement cannot give colour"):
        read_image(grey, 3)
    with pytest.raises(ValueError, match="channels = 2 cannot apply to an image"):
        read_image(path, 2)


def test_files_without_size_keep_the_whole_picture(plugins, tmp_path):
    """The simulated path is unchanged: ``files`` without ``size`` is neither cropped nor squashed."""
    save_png(tmp_path / "wide.png", picture(12, 20))
    cfg = config(tmp_path, 'files = "wide.png"', 'name = "denoising"\nsigma_y = 0.0')
    pipeline.run(cfgmod.load(cfg), progress=False)
    assert Image.open(tmp_path / "out" / "items" / "wide" / "reconstruction.png").size == (20, 12)


def test_restore_your_own_picture_blurry_png_and_psf_png(plugins, tmp_path):
    """The README's recipe: a blurry picture and its PSF, both files, give a same-size restoration."""
    save_png(tmp_path / "blurry.png", picture(20, 28, seed=2))
    psf = np.zeros((5, 5), np.uint8)
    psf[1:4, 1:4] = [[40, 80, 40], [80, 255, 80], [40, 80, 40]]
    save_png(tmp_path / "psf" / "psf.png", psf)
    cfg = config(tmp_path, 'measurement = "blurry.png"',
                 'name = "blur"\nkernel = "psf/psf.png"\nsigma_y = 0.01')
    pipeline.run(cfgmod.load(cfg), progress=False)
    item = tmp_path / "out" / "items" / "blurry"
    assert Image.open(item / "reconstruction.png").size == (28, 20)
    # the kernel path was read relative to the config file, and is resolved in config.json
    resolved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert resolved["operator"]["kernel"] == str(tmp_path / "psf" / "psf.png")
    assert json.loads((item / "metrics.json").read_text())["metrics"]["residual"] < 1


def test_prior_tile_runs_the_prior_on_tiles_and_checks_them(plugins, tmp_path):
    """toy-gauss acts pixel by pixel, so tiles blended by weights summing to 1 change nothing."""
    save_png(tmp_path / "low.png", picture(16, 24))
    results = {}
    for name, prior in (("whole", ""), ("tiled", "tile = 16\noverlap = 4")):
        cfg = config(tmp_path, 'measurement = "low.png"', 'name = "super-resolution"')
        cfg.write_text(cfg.read_text().replace('name = "toy-gauss"\n', f'name = "toy-gauss"\n{prior}\n'))
        run = pipeline.Pipeline(cfgmod.load(cfg), output=tmp_path / name)
        assert (run.prior is not run.base_prior) == (name == "tiled")  # wrapped by pnpkit.tiling
        run.run(progress=False)
        results[name] = load_file(tmp_path / name / "items" / "low" / "tensors.safetensors")
    torch.testing.assert_close(results["tiled"]["reconstruction"], results["whole"]["reconstruction"],
                               atol=1e-5, rtol=0)
    resolved = json.loads((tmp_path / "tiled" / "config.json").read_text())
    assert resolved["prior"]["tile"] == 16 and resolved["prior"]["overlap"] == 4
