"""`pnpkit.load_run`: a finished run read back (configuration, metrics, per-item tensors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pnpkit
from pnpkit import config as cfgmod
from pnpkit import pipeline

CONFIG = """
seed = 1
output = "out"
metrics = ["psnr", "mse"]

[data]
dataset = "toy-images"
count = 2
size = 16

[operator]
name = "toy-mask"
sigma_y = 0.05

[prior]
name = "toy-gauss"

[solver]
name = "hqs"
iterations = 3
sigma = 0.3
"""


@pytest.fixture
def finished(toy_site, tmp_path: Path) -> Path:
    (tmp_path / "run.toml").write_text(CONFIG)
    pipeline.run(cfgmod.load(tmp_path / "run.toml"), progress=False)
    return tmp_path / "out"


def test_load_run_gives_config_metrics_and_the_saved_tensors(finished: Path) -> None:
    run = pnpkit.load_run(finished)
    assert run.finished and run.path == finished
    assert run.config == json.loads((finished / "config.json").read_text())
    assert run.config["solver"]["name"] == "hqs" and run.config["solver"]["iterations"] == 3
    assert run.metrics["items"] == 2 and set(run.metrics["mean"]) >= {"psnr", "mse", "nfe"}
    assert list(run.items) == ["img0", "img1"]
    saved = load_file(finished / "items" / "img1" / "tensors.safetensors")
    item = run.items["img1"]
    assert torch.equal(item.reconstruction, saved["reconstruction"])
    assert item.reconstruction.shape == (1, 16, 16)
    assert torch.equal(item.reference, saved["reference"])
    assert torch.equal(item.measurement, saved["measurement"])
    assert item.nfe == 3 and len(item.history) == 3 * 2  # HQS logs two stages per iteration
    assert item.metrics == run.metrics["per_item"]["img1"]
    mean = sum(i.metrics["psnr"] for i in run.items.values()) / 2
    assert abs(run.metrics["mean"]["psnr"] - mean) < 1e-9
    assert repr(run).startswith(f"Run({str(finished)!r}, solver='hqs', 2 item(s): mse ")
    assert repr(item).startswith("RunItem('img1', psnr=") and repr(item).endswith("nfe=3)")


def test_an_unfinished_run_gives_its_finished_items(finished: Path) -> None:
    (finished / "metrics.json").unlink()
    manifest = json.loads((finished / "manifest.json").read_text())
    del manifest["items"]["img1"]
    (finished / "manifest.json").write_text(json.dumps(manifest))
    run = pnpkit.load_run(finished)
    assert not run.finished and list(run.items) == ["img0"]
    assert "not finished" in repr(run)


def test_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run folder '.*nowhere' does not exist; give the "
                                                "output folder of a `pnpkit run`"):
        pnpkit.load_run(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="is not a pnpkit run folder \\(it has no "
                                                "manifest.json\\)"):
        pnpkit.load_run(tmp_path)
