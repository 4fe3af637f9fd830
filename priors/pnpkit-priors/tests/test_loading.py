"""The one loader behind the three diffusers prior factories, and their shared documentation."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from pnpkit_priors import loading
from pnpkit_priors.consistency import consistency_prior
from pnpkit_priors.diffusion import DiffusersPrior, diffusers_prior
from pnpkit_priors.latent import latent_diffusion_prior

SHARED = {"scheduler": None, "model_dtype": None, "variant": None, "check_size": True,
          "class_label": None, "cache_dir": None, "channels_last": True, "device": "cpu",
          "dtype": "float32"}
FACTORIES = {diffusers_prior: {"clip": 1.0}, consistency_prior: {"clip": None},
             latent_diffusion_prior: {"scaling_factor": None}}


@pytest.mark.parametrize("factory", list(FACTORIES), ids=lambda f: f.__name__)
def test_factories_keep_their_settings_and_document_the_shared_ones(factory) -> None:
    params = inspect.signature(factory).parameters
    defaults = {n: p.default for n, p in params.items() if n != "path"}
    assert list(params)[0] == "path" and defaults == {**SHARED, **FACTORIES[factory]}
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params.values())
    doc = inspect.getdoc(factory)
    assert "{loading}" not in doc
    for line in loading.LOADING_DOCS.strip().splitlines():
        assert line in doc.splitlines(), line
    documented = {ln.split()[2].rstrip(":") for ln in doc.splitlines() if ln.startswith(":param")}
    assert documented == set(params)


def test_pnpkit_show_prints_the_shared_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from pnpkit.cli import main

    assert main(["show", "prior", "latent-diffusion"]) == 0
    out = capsys.readouterr().out
    # every shared setting with its type and default, its :param: text rendered beneath it
    assert "  check_size: bool = True\n" in out and "  cache_dir: str | None = None\n" in out
    assert "the Hugging Face cache to search for a hub id." in out and ":param" not in out


def test_load_pretrained_gives_the_parts(grey_ckpt: Path) -> None:
    parts = loading.load_pretrained(grey_ckpt, dtype="float64")
    assert type(parts.unet).__name__ == "UNet2DModel" and parts.vae is None
    assert parts.name == "tiny-grey" and type(parts.scheduler).__name__ == "DDPMScheduler"
    assert next(parts.unet.parameters()).dtype == torch.float64 and not parts.unet.training
    named = loading.load_pretrained(grey_ckpt, name="mine", model_dtype="float16")
    assert named.name == "mine" and next(named.unet.parameters()).dtype == torch.float16
    with pytest.raises(TypeError, match="unexpected keyword argument 'sheduler'"):
        DiffusersPrior.from_pretrained(grey_ckpt, sheduler="x")


def test_load_model_takes_classes_from_elsewhere(grey_ckpt: Path) -> None:
    from diffusers import UNet2DModel

    class Mine(UNet2DModel):
        pass

    model = loading.load_model(grey_ckpt / "unet", {"UNet2DModel": Mine}, "cpu", torch.float32)
    assert type(model) is Mine and not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match=r"unknown model class 'UNet2DModel': .*config.json "
                       r"describes a 'UNet2DModel'; this prior loads Other, see there"):
        loading.load_model(grey_ckpt / "unet", {"Other": Mine}, "cpu", torch.float32,
                           hint=", see there")


def test_check_folder_names_what_is_missing(grey_ckpt: Path, tmp_path: Path) -> None:
    parts = {"unet": ("config.json",), "scheduler": ("scheduler_config.json",)}
    assert loading.check_folder(grey_ckpt, "thing", "LAYOUT", parts) == grey_ckpt
    with pytest.raises(FileNotFoundError, match=r"thing '.*nowhere' does not exist; expected LAYOUT"):
        loading.check_folder(tmp_path / "nowhere", "thing", "LAYOUT", parts)
    (tmp_path / "unet").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds no scheduler/ \(found: unet/\); expected"):
        loading.check_folder(tmp_path, "thing", "LAYOUT", parts)
    (tmp_path / "scheduler").mkdir()
    with pytest.raises(FileNotFoundError, match=r"unet holds no config.json \(found: nothing"):
        loading.check_folder(tmp_path, "thing", "LAYOUT", parts)
