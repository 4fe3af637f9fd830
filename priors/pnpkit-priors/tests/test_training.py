"""Training the project's own prior for a few steps, loading it, and writing its model card."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from pnpkit_priors import datasets, evaluate, train
from pnpkit_priors.diffusion import DiffusersPrior

# train.py logs float(loss) of a tensor that requires grad; harmless.
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "grey32"
    state = train.train("grey32", out, steps=3, batch_size=2, save_every=2)
    assert state["step"] == 3 and len(state["losses"]) == 3
    return out


def test_a_trained_checkpoint_loads_as_a_prior(trained: Path) -> None:
    assert (trained / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    prior = DiffusersPrior.from_pretrained(trained)
    assert prior.shape == (1, 32, 32) and prior.num_timesteps == 1000
    x = torch.from_numpy(datasets.heldout_patches("validation", 32, 1, 2))
    out = prior.denoise(x + 0.1 * torch.randn_like(x), 0.1)
    assert out.shape == x.shape and torch.isfinite(out).all() and prior.nfe == 1


def test_model_card(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate.main(["--preset", "grey32", "--weights", str(trained), "--state",
                          str(trained / "training_state.json"), "--count", "4"]) == 0
    card = json.loads((trained / "card.json").read_text())
    rows = card["evaluation"]["rows"]
    assert [(r["split"], r["sigma"]) for r in rows] == [
        (s, v) for s in ("validation", "test") for v in (0.05, 0.1, 0.2, 0.4)]
    for r in rows:  # input PSNR of noise std sigma on a peak-to-peak range of 2
        assert abs(r["psnr_in"] - 10 * torch.log10(torch.tensor(4 / r["sigma"] ** 2))) < 0.6
        assert r["patches"] == 4 and isinstance(r["psnr_out"], float)
    assert card["training"]["steps"] == 3 and card["architecture"]["parameters"] > 1e6
    assert card["data"]["splits"]["test"] == ["camera", "astronaut"]
    text = (trained / "MODEL_CARD.md").read_text()
    assert "| split | noise std |" in text and "test: camera, astronaut" in text
    assert "3 optimiser steps" in text
    assert "PSNR" in capsys.readouterr().out


def test_splits_never_overlap() -> None:
    names = [set(v) for v in datasets.SPLITS.values()]
    assert sum(len(n) for n in names) == len(set().union(*names)), "a picture is in two splits"
    digests: dict[str, str] = {}
    for split, pictures in datasets.SPLITS.items():
        for name in pictures:
            digest = hashlib.sha1(datasets.load_image(name, 1).tobytes()).hexdigest()
            assert digest not in digests, f"{name} ({split}) is the same picture as {digests[digest]}"
            digests[digest] = f"{name} ({split})"
    val = datasets.heldout_patches("validation", 32, 1, 8)
    test = datasets.heldout_patches("test", 32, 1, 8)
    assert not any((v == t).all() for v in val for t in test)
