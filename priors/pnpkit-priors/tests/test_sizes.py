"""Any size: reflect padding to the network's down-sampling, fixed_shape, the size hints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.nn import functional as F

import pnpkit
from pnpkit_priors.defaults import WEIGHTS_DIR
from pnpkit_priors.diffusion import DiffusersPrior
from pnpkit_priors.network import down_factor, pad_to_multiple


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def grey() -> Any:
    if not (WEIGHTS_DIR / "grey32").is_dir():
        pytest.skip("no packaged grey32 weights")
    return pnpkit.create("prior", "default-grey32")


def test_shipped_prior_runs_at_any_size(grey: Any) -> None:
    assert grey.fixed_shape is None and grey.net.factor == 4
    x, t = _randn(2, 1, 37, 50), torch.tensor([20, 600])
    with torch.no_grad():
        eps = grey.eps(x, t)
        assert eps.shape == (2, 1, 37, 50) and grey.denoise(x, 0.1).shape == x.shape
        # what it does: reflect-pad to 40 x 52, run, crop back
        ref = grey.unet(F.pad(x, (0, 2, 0, 3), mode="reflect"), t).sample[..., :37, :50]
    assert torch.equal(eps, ref)


def test_shipped_prior_at_a_multiple_is_the_plain_call(grey: Any) -> None:
    x, t = _randn(2, 1, 32, 48), torch.tensor([20, 600])
    with torch.no_grad():
        assert torch.equal(grey.eps(x, t), grey.unet(x, t).sample)  # no padding: bit for bit


def test_default_prior_can_still_check_the_size() -> None:
    if not (WEIGHTS_DIR / "grey32").is_dir():
        pytest.skip("no packaged grey32 weights")
    strict = pnpkit.create("prior", "default-grey32", check_size=True)
    assert strict.fixed_shape == (32, 32)
    with pytest.raises(ValueError, match=r"trained on \(1, 32, 32\) signals but got \(1, 37, 50\);"
                                         r" .*\[data\] size = 32.*\[prior\] check_size = false .*"
                                         r"multiple of 4.*\[prior\] tile = 32"):
        strict.eps(torch.zeros(1, 1, 37, 50), 10)


def test_checkpoints_keep_the_size_check(grey_ckpt: Path) -> None:
    prior = pnpkit.create("prior", "diffusers", path=str(grey_ckpt))
    assert prior.fixed_shape == (8, 8)
    free = pnpkit.create("prior", "diffusers", path=str(grey_ckpt), check_size=False)
    assert free.fixed_shape is None and free.net.factor == 2
    x = _randn(3, 1, 11, 13)
    with torch.no_grad():
        out = free.eps(x, 50)
        ref = free.unet(F.pad(x, (0, 1, 0, 1), mode="reflect"), torch.full((3,), 50)).sample
    assert out.shape == x.shape and torch.equal(out, ref[..., :11, :13])


def test_1d_network_pads_too(make_ckpt: Any, tiny: Any) -> None:
    net = tiny.unet1d()
    assert down_factor(net) == 4
    with pytest.raises(RuntimeError):
        net(_randn(1, 2, 18), torch.tensor([5]))  # the bare network cannot run at 18
    prior = DiffusersPrior.from_pretrained(make_ckpt(unet=net), check_size=False)
    with torch.no_grad():
        out = prior.eps(_randn(1, 2, 18), 5)
        pad = F.pad(_randn(1, 2, 18), (0, 2), mode="reflect")
        ref = prior.unet(pad, torch.tensor([5])).sample
    assert out.shape == (1, 2, 18) and torch.equal(out, ref[..., :18])


def test_other_priors_say_their_fixed_shape(tmp_path: Path, tiny: Any) -> None:
    from diffusers import CMStochasticIterativeScheduler

    from pnpkit_priors.consistency import ConsistencyPrior
    from pnpkit_priors.latent import LatentDiffusionPrior

    folder = tiny.save(tmp_path / "ldm", vae=tiny.vae(), unet=tiny.unet2d(channels=2, size=4),
                       scheduler=tiny.ddpm())
    assert LatentDiffusionPrior.from_pretrained(folder).fixed_shape == (8, 8)  # 4 x 4 latents
    assert LatentDiffusionPrior.from_pretrained(folder, check_size=False).fixed_shape is None
    cm = tiny.save(tmp_path / "cm", unet=tiny.unet2d(), scheduler=CMStochasticIterativeScheduler())
    assert ConsistencyPrior.from_pretrained(cm).fixed_shape == (8, 8)
    assert pnpkit.create("prior", "tv").fixed_shape is None


def test_pad_to_multiple() -> None:
    x = torch.arange(6.0).view(1, 1, 2, 3)
    padded, spatial = pad_to_multiple(x, 4)
    assert spatial == (2, 3) and padded.shape == (1, 1, 4, 4)
    assert padded[0, 0].tolist() == [[0, 1, 2, 2]] * 1 + [[3, 4, 5, 5]] * 3  # too short: replicated
    same, _ = pad_to_multiple(x, 1)
    assert same is x


@pytest.mark.parametrize("preset", ["grey32", "rgb32"])
def test_model_cards_say_they_run_at_any_size(preset: str) -> None:
    import json

    from pnpkit_priors.evaluate import size_text

    folder = WEIGHTS_DIR / preset
    if not folder.is_dir():
        pytest.skip(f"no packaged {preset} weights")
    text = size_text(json.loads((folder / "card.json").read_text()))
    assert "next multiple of 4" in text and f"`default-{preset}` (`check_size = false`)" in text
    assert text in (folder / "MODEL_CARD.md").read_text()
