"""The 1-D UNet: shapes, timesteps, length and configuration errors, diffusers save/load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pnpkit_audio.network import DEFAULT_CONFIG, AudioUNet1DModel, AudioUNet1DOutput

TINY = dict(channels=(8, 16, 16), down_factors=(4, 4))


@pytest.fixture
def net() -> AudioUNet1DModel:
    torch.manual_seed(0)
    return AudioUNet1DModel(**TINY).eval()


def test_output_shape_and_type(net: AudioUNet1DModel) -> None:
    x = torch.randn(3, 4, 64)
    out = net(x, torch.tensor([0, 10, 999]))
    assert isinstance(out, AudioUNet1DOutput) and out.sample.shape == x.shape
    assert torch.isfinite(out.sample).all()
    (tup,) = net(x, torch.tensor([0, 10, 999]), return_dict=False)
    torch.testing.assert_close(tup, out.sample, rtol=0, atol=0)
    assert net.total_factor == 16


def test_one_timestep_equals_one_per_item(net: AudioUNet1DModel) -> None:
    x = torch.randn(2, 4, 32)
    with torch.no_grad():
        a, b = net(x, 250).sample, net(x, torch.tensor(250)).sample
        c = net(x, torch.full((2,), 250)).sample
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    with torch.no_grad():  # the timestep matters
        assert not torch.allclose(a, net(x, 900).sample)


def test_items_are_independent(net: AudioUNet1DModel) -> None:
    x, t = torch.randn(3, 4, 48), torch.tensor([5, 500, 950])
    with torch.no_grad():
        together = net(x, t).sample
        alone = torch.cat([net(x[i:i + 1], t[i:i + 1]).sample for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_length_error_says_which_lengths_work(net: AudioUNet1DModel) -> None:
    with pytest.raises(ValueError, match=r"signal length 70 is not a multiple of 16, the network's "
                       r"total down-sampling factor \(4 x 4\); lengths that work: 16, 32, 48, "
                       r"\.\.\. \(the nearest: 64 or 80\)"):
        net(torch.zeros(1, 4, 70), 3)
    with pytest.raises(ValueError, match=r"the nearest: 16\)"):
        net(torch.zeros(1, 4, 5), 3)
    full = AudioUNet1DModel(**DEFAULT_CONFIG)
    with pytest.raises(ValueError,
                       match=r"not a multiple of 256, .*\(4 x 4 x 4 x 4\).* 16128 or 16384"):
        full(torch.zeros(1, 4, 16300), 3)


def test_shape_and_timestep_errors(net: AudioUNet1DModel) -> None:
    with pytest.raises(ValueError, match=r"takes \(B, 4, L\) signals, got \(1, 2, 64\)"):
        net(torch.zeros(1, 2, 64), 3)
    with pytest.raises(ValueError, match=r"takes \(B, 4, L\) signals, got \(4, 64\)"):
        net(torch.zeros(4, 64), 3)
    with pytest.raises(ValueError,
                       match=r"timestep must be a number or have shape \(2,\), got \(3,\)"):
        net(torch.zeros(2, 4, 64), torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("kw, message", [
    (dict(channels=(8, 16), down_factors=(4, 4)), r"one width per resolution, .* 3 values, got 2"),
    (dict(channels=(8, 12, 16), down_factors=(4, 4)), r"multiple of norm_num_groups = 8; \[12\]"),
    (dict(kernel_size=8), r"kernel_size must be odd"),
    (dict(channels=(8, 16, 16), down_factors=(4, 0)), r"down_factors must be positive"),
])
def test_bad_configuration(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AudioUNet1DModel(**kw)


@pytest.mark.parametrize("factors", [(2, 3), (5, 1)])
def test_odd_and_unit_factors_keep_the_length(factors: tuple[int, int]) -> None:
    net = AudioUNet1DModel(channels=(8, 8, 8), down_factors=factors)
    n = 4 * factors[0] * factors[1]
    assert net(torch.randn(1, 4, n), 1).sample.shape == (1, 4, n)


def test_default_network_size() -> None:
    net = AudioUNet1DModel(**DEFAULT_CONFIG)
    assert 1.8e6 < sum(p.numel() for p in net.parameters()) < 2.4e6
    assert net.total_factor == 256 and net.config.in_channels == 4


def test_save_pretrained_round_trip(net: AudioUNet1DModel, tmp_path: Path) -> None:
    net.save_pretrained(tmp_path / "unet")
    assert sorted(p.name for p in (tmp_path / "unet").iterdir()) == [
        "config.json", "diffusion_pytorch_model.safetensors"]
    again = AudioUNet1DModel.from_pretrained(tmp_path / "unet", local_files_only=True).eval()
    def public(config: dict) -> dict:
        return json.loads(json.dumps({k: v for k, v in config.items() if not k.startswith("_")}))

    assert public(again.config) == public(net.config)
    x, t = torch.randn(2, 4, 32), torch.tensor([3, 600])
    with torch.no_grad():
        torch.testing.assert_close(again(x, t).sample, net(x, t).sample, rtol=0, atol=0)
