"""Training data of the image priors: dead leaves, augmentation, mixing, the split, the presets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pnpkit_priors import datasets, deadleaves, evaluate, train

HELD_OUT = {"coffee", "camera", "astronaut"}


def test_radii_follow_the_power_law() -> None:
    r = deadleaves.radii(200_000, 1.0, 64.0, np.random.default_rng(0))
    assert r.min() >= 1.0 and r.max() <= 64.0
    # P(r <= x) = (1 - x^-2) / (1 - 64^-2) for p(r) ~ r^-3 on [1, 64]
    for x in (1.5, 2.0, 4.0, 16.0):
        expected = (1 - x ** -2.0) / (1 - 64.0 ** -2.0)
        assert abs((r <= x).mean() - expected) < 0.005, x
    with pytest.raises(ValueError, match=r"dead leaves need 0 < rmin <= rmax, got rmin=5, rmax=2"):
        deadleaves.radii(3, 5, 2, np.random.default_rng(0))


def test_dead_leaves_images() -> None:
    grey = deadleaves.dead_leaves(64, 1, np.random.default_rng(3), supersample=1)
    assert grey.shape == (64, 64, 1) and grey.dtype == np.float32
    assert 0.0 <= grey.min() and grey.max() <= 1.0
    # Opaque disks: few distinct grey levels, every pixel painted by some disk.
    levels = np.unique(grey)
    assert 5 < len(levels) < 64 * 64 / 4
    again = deadleaves.dead_leaves(64, 1, np.random.default_rng(3), supersample=1)
    assert np.array_equal(grey, again)
    colour = deadleaves.dead_leaves(32, 3, np.random.default_rng(4))
    assert colour.shape == (32, 32, 3)
    assert np.abs(colour[..., 0] - colour[..., 1]).mean() > 0.05  # colours, not grey
    with pytest.raises(ValueError, match=r"1 \(grey\) or 3 \(colour\) channels, got 2"):
        deadleaves.dead_leaves(8, 2, np.random.default_rng(0))


class _Recorder:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        real = datasets.load_image

        def load(name: str, channels: int) -> np.ndarray:
            self.names.append(name)
            return real(name, channels)

        monkeypatch.setattr(datasets, "load_image", load)


def test_no_held_out_picture_enters_training(monkeypatch: pytest.MonkeyPatch) -> None:
    assert datasets.HELD_OUT == HELD_OUT
    assert not HELD_OUT & set(datasets.SPLITS["train"])
    seen = _Recorder(monkeypatch)
    monkeypatch.setattr(datasets, "pyramid", lambda image, size: [image])  # (no rescaling: fast)
    calls: list[Any] = []
    monkeypatch.setattr(train, "train_ddpm", lambda *a, **kw: calls.append((a, kw)) or {})
    for preset in ("grey64", "rgb32"):  # both channel counts, both data recipes
        train.train(preset, Path("unused"), steps=1, validation_count=0)
    assert set(seen.names) == set(datasets.SPLITS["train"])
    samplers = [a[2] for a, _ in calls]
    assert all(s.split == "train" and set(s.pictures) <= set(datasets.SPLITS["train"])
               for s in samplers)
    assert all("validation" not in kw for _, kw in calls)
    # The progress bar's validation batch is the validation split's (coffee), not training data.
    seen.names.clear()
    train.train("grey64", Path("unused"), steps=1, validation_count=3)
    assert set(seen.names) == set(datasets.SPLITS["train"]) | {"coffee"}
    assert np.array_equal(calls[-1][1]["validation"],
                          datasets.heldout_patches("validation", 64, 1, 3))
    # A split list that held a held-out picture is refused, not trained on.
    monkeypatch.setitem(datasets.SPLITS, "train", ("brick", "coffee"))
    with pytest.raises(ValueError, match=r"held-out pictures \['coffee'\] are in the train split"):
        datasets.PatchSampler("train", size=32)
    with pytest.raises(ValueError, match=r"the test split is for evaluation: it takes no dead"):
        datasets.PatchSampler("test", size=32, dead_leaves=0.5)


def test_samplers_are_pure_functions_of_their_generator() -> None:
    sampler = datasets.PatchSampler("train", size=16, channels=3, augment="dihedral",
                                    dead_leaves=0.5)
    a = sampler.sample(12, np.random.default_rng([0, 7]))
    b = sampler.sample(12, np.random.default_rng([0, 7]))
    c = sampler.sample(12, np.random.default_rng([0, 8]))
    assert a.shape == (12, 3, 16, 16) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert -1.0 <= a.min() and a.max() <= 1.0


def _toy(monkeypatch: pytest.MonkeyPatch, image: np.ndarray, **kw: Any) -> datasets.PatchSampler:
    monkeypatch.setattr(datasets, "load_image", lambda name, channels: image)
    monkeypatch.setattr(datasets, "pyramid", lambda img, size: [img])
    monkeypatch.setitem(datasets.SPLITS, "train", ("brick",))
    return datasets.PatchSampler("train", size=image.shape[0], channels=1, **kw)


def test_dihedral_augmentation_gives_the_8_flips_and_rotations(
        monkeypatch: pytest.MonkeyPatch) -> None:
    image = np.arange(64, dtype=np.float32).reshape(8, 8, 1) / 63
    sampler = _toy(monkeypatch, image, augment="dihedral")
    got = {p.tobytes() for p in sampler.sample(300, np.random.default_rng(0))}
    base = image[..., 0] * 2 - 1
    group = [np.rot90(f, k) for f in (base, base[:, ::-1]) for k in range(4)]
    assert got == {np.ascontiguousarray(g[None]).astype(np.float32).tobytes() for g in group}
    flips = {p.tobytes() for p in _toy(monkeypatch, image).sample(50, np.random.default_rng(0))}
    assert len(flips) == 2  # the 32-pixel presets' augmentation: a left-right flip


def test_dead_leaves_are_mixed_at_the_given_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    flat = np.full((16, 16, 1), 0.5, dtype=np.float32)  # a picture patch is all zeros in [-1, 1]
    for fraction in (0.0, 0.3, 1.0):
        sampler = _toy(monkeypatch, flat, dead_leaves=fraction)
        batch = sampler.sample(400, np.random.default_rng(1))
        synthetic = (batch.reshape(400, -1).std(axis=1) > 0).mean()
        assert abs(synthetic - fraction) < 0.06, (fraction, synthetic)
    with pytest.raises(ValueError, match=r"dead-leaves fraction must lie in \[0, 1\], got 1.5"):
        _toy(monkeypatch, flat, dead_leaves=1.5)


def test_only_dead_leaves_read_no_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str, channels: int) -> np.ndarray:
        raise AssertionError(f"read {name}")

    monkeypatch.setattr(datasets, "load_image", refuse)
    sampler = datasets.PatchSampler("train", size=24, channels=1, dead_leaves=1.0)
    assert sampler.sample(3, np.random.default_rng(0)).shape == (3, 1, 24, 24)


def test_whole_picture_presets() -> None:
    from diffusers.models.attention_processor import Attention

    shipped = Path(train.__file__).parent / "weights" / "grey32" / "unet" / "config.json"
    cfg = json.loads(shipped.read_text())
    old = train.unet_config(**train.PRESETS["grey32"])  # the old presets are unchanged
    assert all(cfg[k] == (list(v) if isinstance(v, tuple) else v) for k, v in old.items())
    for preset in ("grey64", "rgb64"):
        unet = train.build_unet(**train.PRESETS[preset])
        weights = sum(p.numel() * p.element_size() for p in unet.parameters())
        assert weights <= train.MAX_WEIGHT_BYTES, f"{preset}: {weights / 1e6:.1f} MB"
        assert not any(isinstance(m, Attention) for m in unet.modules()), preset
        assert len(unet.config.block_out_channels) == 4 and unet.config.sample_size == 64
        assert train.data_settings(preset) == {"size": 64, "augment": "dihedral",
                                                "dead_leaves": 0.25}
    with pytest.raises(ValueError, match=r"unknown attention 'all'; choose 'lowest' or 'none'"):
        train.unet_config(1, 32, (8, 16), 1, attention="all")


def test_grey64_trains_resumes_exactly_and_keeps_its_data(tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(batch_size=2, threads=1, patch_size=16, save_every=1,
                              progress=False)
    train.train("grey64", tmp_path / "a", steps=1, **kw)
    resumed = train.train("grey64", tmp_path / "a", steps=2, resume=True, **kw)
    straight = train.train("grey64", tmp_path / "b", steps=2, **kw)
    assert resumed["losses"] == straight["losses"] and len(resumed["losses"]) == 2
    assert straight["data"] == {"size": 16, "augment": "dihedral", "dead_leaves": 0.25}
    from safetensors.torch import load_file

    assert straight["parametrisation"] == "edm"  # an EDM denoiser, loaded with prior 'edm'
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert evaluate.main(["--preset", "grey64", "--weights", str(tmp_path / "b"), "--state",
                          str(tmp_path / "b" / "training_state.json"), "--count", "2",
                          "--size", "32"]) == 0
    card = json.loads((tmp_path / "b" / "card.json").read_text())
    assert card["schedule"]["_class_name"] == "EDMPrecond"
    assert card["evaluation"]["patch_size"] == 32 and len(card["evaluation"]["rows"]) == 8
    assert card["data"]["dead_leaves"] == 0.25 and card["data"]["patch_size"] == 16
    text = (tmp_path / "b" / "MODEL_CARD.md").read_text()
    assert "EDM preconditioning" in text and "25% of the patches" in text
    with pytest.raises(ValueError, match=r"cannot resume .* with other settings: data="):
        train.train("grey64", tmp_path / "a", steps=3, resume=True, **{**kw, "dead_leaves": 0.5})


def test_train_prior_data_options(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(train, "train_ddpm",
                        lambda *a, **kw: calls.append((a, kw)) or {"step": 0, "seconds": 0.0})
    assert train.main(["--preset", "rgb64", "--out", "unused", "--patch-size", "48",
                       "--dead-leaves", "0.5", "--augment", "flip"]) == 0
    (args, kw), = calls
    sampler = args[2]
    assert (sampler.size, sampler.channels, sampler.dead_leaves, sampler.augment) == (48, 3, 0.5,
                                                                                     "flip")
    assert args[5] == (48, 48) and kw["defaults"]["sample_size"] == 48
    assert kw["settings"] == {"preset": "rgb64",
                              "data": {"size": 48, "augment": "flip", "dead_leaves": 0.5}}
    assert kw["validation"].shape == (train.VALIDATION_COUNT, 3, 48, 48)
    assert kw["parametrisation"] == "edm" and kw["edm"] == {"sigma_data": 0.5}
    calls.clear()
    assert train.main(["--preset", "grey64", "--out", "unused", "--parametrisation", "ddpm",
                       "--validation-count", "0"]) == 0
    (args, kw), = calls
    assert "parametrisation" not in kw and "validation" not in kw
