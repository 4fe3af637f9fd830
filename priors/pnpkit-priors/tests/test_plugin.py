"""The plugin: cheap to import, its names, datasets, commands and default priors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import pnpkit
import pnpkit.metrics
from pnpkit.priors import ContinuousDiffusionPrior
from pnpkit_priors.defaults import WEIGHTS_DIR, default_prior

PRIORS = {"diffusers", "adm", "latent-diffusion", "consistency", "deepinv-denoiser", "drunet", "tv",
          "default-grey32", "default-rgb32", "default-grey64", "default-rgb64"}
DATASETS = {"heldout-grey32", "heldout-rgb32", "validation-grey32", "validation-rgb32"}


def test_loading_the_plugin_imports_neither_diffusers_nor_deepinv() -> None:
    code = ("import sys\n"
            "from pnpkit.plugins import PluginManager\n"
            "m = PluginManager()\n"
            "info = m.plugins['priors']\n"
            "assert info.error is None, info.error\n"
            "heavy = [n for n in ('diffusers', 'deepinv') if n in sys.modules]\n"
            "assert not heavy, heavy\n")
    env = dict(os.environ, PNPKIT_LOAD_PLUGINS="priors")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_registered_names() -> None:
    manager = pnpkit.get_manager()
    assert manager.plugins["priors"].error is None
    assert PRIORS <= set(manager.components["prior"])
    assert DATASETS <= set(manager.components["dataset"])
    for kind, name in manager.plugins["priors"].components:
        assert manager.get(kind, name).factory.__doc__, f"{kind} {name} has no documentation"


def test_heldout_datasets() -> None:
    items = pnpkit.create("dataset", "heldout-grey32")
    assert len(items) == 8 and len({it.id for it in items}) == 8
    for it in items:
        assert it.kind == "image" and it.signal.shape == (1, 32, 32)
        assert it.signal.dtype == torch.float32 and -1 <= it.signal.min() <= it.signal.max() <= 1
    again = pnpkit.create("dataset", "heldout-grey32", count=3)
    assert [it.id for it in again] == [it.id for it in items[:3]]
    torch.testing.assert_close(again[0].signal, items[0].signal)  # fixed, seeded patches
    rgb = pnpkit.create("dataset", "heldout-rgb32", count=2)
    assert rgb[0].signal.shape == (3, 32, 32) and rgb[0].id == "test-rgb32-000"
    val = pnpkit.create("dataset", "validation-grey32", count=2)
    assert val[0].id == "validation-grey32-000"
    assert not torch.equal(val[0].signal, items[0].signal)


def test_commands_are_added() -> None:
    from pnpkit.cli import build_parser
    from pnpkit_priors import evaluate, train

    parser = build_parser()
    args = parser.parse_args(["train-prior", "--preset", "grey32", "--out", "somewhere"])
    assert args._run is train.run and args.steps == 4000
    args = parser.parse_args(["prior-card", "--preset", "rgb32", "--weights", "w", "--state", "s"])
    assert args._run is evaluate.run and args.count == 64


def test_default_prior_without_weights(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="grey32 prior's weights are not installed.*"
                                                "pnpkit train-prior --preset grey32"):
        default_prior("grey32", weights_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"grey64 prior's weights are not installed: .* should "
                       r"hold config.json and model.safetensors. Train them with `pnpkit train-prior "
                       r"--preset grey64 --out DIR`"):
        default_prior("grey64", weights_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown preset 'grey128'"):
        default_prior("grey128")


def test_default_prior_loads_a_weights_folder(tmp_path: Path, tiny: Any) -> None:
    tiny.save(tmp_path / "rgb32", unet=tiny.unet2d(channels=3), scheduler=tiny.ddpm())
    prior = default_prior("rgb32", weights_dir=tmp_path)
    assert prior.name == "default-rgb32" and prior.shape == (3, 8, 8)


@pytest.mark.parametrize("preset,channels", [("grey32", 1), ("rgb32", 3)])
def test_packaged_default_priors(preset: str, channels: int) -> None:
    if not (WEIGHTS_DIR / preset).is_dir():
        with pytest.raises(FileNotFoundError, match="not installed"):
            pnpkit.create("prior", f"default-{preset}")
        pytest.skip(f"no packaged {preset} weights in {WEIGHTS_DIR}")
    prior = pnpkit.create("prior", f"default-{preset}")
    assert prior.shape == (channels, 32, 32)
    x = torch.stack([it.signal for it in pnpkit.create("dataset", f"heldout-{preset}", count=8)])
    noisy = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = prior.denoise(noisy, 0.2)
    # the shipped weights denoise held-out patches (model cards: about +9 to +10 dB at 0.2)
    gain = (pnpkit.metrics.psnr(out, x) - pnpkit.metrics.psnr(noisy, x)).mean()
    assert float(gain) > 6.0


@pytest.mark.parametrize("preset,channels", [("grey64", 1), ("rgb64", 3)])
def test_packaged_whole_picture_priors(preset: str, channels: int) -> None:
    if not (WEIGHTS_DIR / preset / "config.json").is_file():
        with pytest.raises(FileNotFoundError, match="not installed"):
            pnpkit.create("prior", f"default-{preset}")
        pytest.skip(f"no packaged {preset} weights in {WEIGHTS_DIR}")
    prior = pnpkit.create("prior", f"default-{preset}")
    assert isinstance(prior, ContinuousDiffusionPrior) and prior.fixed_shape is None
    assert prior.name == f"default-{preset}" and prior.num_parameters < 25e6 / 4
    # a size no down-sampling divides: padded and cropped back
    odd = torch.zeros(1, channels, 40, 28)
    with torch.no_grad():
        assert prior.denoise(odd, 0.1).shape == odd.shape
    x = torch.stack([it.signal for it in pnpkit.create("dataset", f"heldout-{preset[:-2]}32", count=8)])
    noisy = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = prior.denoise(noisy, 0.2)
    gain = (pnpkit.metrics.psnr(out, x) - pnpkit.metrics.psnr(noisy, x)).mean()
    assert float(gain) > 6.0
