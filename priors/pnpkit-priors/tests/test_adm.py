"""The adm prior: guided-diffusion checkpoints (.pt / .safetensors) at the papers' architectures.

The FFHQ 256 and ImageNet 256 architectures are built at their published configuration but a
quarter of the base width (32 channels instead of 128 / 256), with random weights, saved as a
user downloads them (a plain state dict in a ``.pt``, or ``.safetensors``) and loaded back by
name through the registry and through a configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import pnpkit
from pnpkit import config as cfgmod
from pnpkit import operators as ops
from pnpkit import pipeline
from pnpkit.testing import PriorContract
from pnpkit_priors import diffusion as memory_mod
from pnpkit_priors.adm import PRESETS, ADMPrior, ADMUNet, architecture, read_state_dict

WIDTH = 32  # a quarter of FFHQ's 128: GroupNorm's 32 groups and 64-channel heads still fit


def randomised(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill the layers guided-diffusion initialises at zero, so every output depends on them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()


def small(preset: str, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return randomised(ADMUNet(architecture(preset, num_channels=WIDTH)), seed)


@pytest.fixture(scope="module")
def ffhq(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    """The FFHQ 256 architecture at width 32: (network, .pt file, .safetensors file)."""
    net = small("ffhq256")
    folder = tmp_path_factory.mktemp("adm")
    torch.save(net.state_dict(), folder / "ffhq_10m.pt")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "ffhq.safetensors")
    return net, folder / "ffhq_10m.pt", folder / "ffhq.safetensors"


def load(path: Path, preset: str = "ffhq256", **settings: Any) -> Any:
    settings.setdefault("check_size", False)
    return pnpkit.create("prior", "adm", path=str(path), preset=preset, num_channels=WIDTH, **settings)


# -- the architecture ---------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "large", "params"), [("ffhq256", False, 93_563_910),
                                                         ("imagenet256-uncond", True, 552_814_086)])
def test_presets_are_deepinvs_diffunet(preset: str, large: bool, params: int) -> None:
    """Key for key and shape for shape, the network deepinv builds (its schedule buffers aside)."""
    from deepinv.models import DiffUNet

    with torch.device("meta"):
        ref = DiffUNet(large_model=large, pretrained=None)
        mine = ADMUNet(architecture(preset))
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items() if "alphas_cumprod" not in k}
    got = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    assert list(got) == list(want) and got == want
    assert sum(p.numel() for p in mine.parameters()) == params
    assert isinstance(mine, DiffUNet)
    assert got["out.2.weight"] == (6, ref.model_channels, 3, 3)  # learned sigma: 6 channels


def test_preset_flags() -> None:
    ffhq, uncond, cond = PRESETS["ffhq256"], PRESETS["imagenet256-uncond"], PRESETS["imagenet256"]
    assert (ffhq.num_channels, ffhq.num_res_blocks, ffhq.attention_resolutions) == (128, 1, (16,))
    assert (uncond.num_channels, uncond.num_res_blocks, uncond.attention_resolutions) == (
        256, 2, (32, 16, 8))
    assert ffhq.num_head_channels == uncond.num_head_channels == 64 and ffhq.num_heads == 4
    assert ffhq.mult == (1, 1, 2, 2, 4, 4) and ffhq.factor == 32 and ffhq.out_channels == 6
    assert cond.class_cond and not uncond.class_cond
    with torch.device("meta"):
        extra = set(ADMUNet(cond).state_dict()) - set(ADMUNet(uncond).state_dict())
    assert extra == {"label_emb.weight"}


def test_the_schedule_is_guided_diffusions_linear_one() -> None:
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    want = torch.from_numpy(np.cumprod(1.0 - betas))
    torch.testing.assert_close(PRESETS["ffhq256"].alphas_cumprod(), want, rtol=1e-12, atol=0)
    # rescaled to other lengths as guided-diffusion does (betas times 1000 / steps)
    short = architecture(diffusion_steps=250).alphas_cumprod()
    torch.testing.assert_close(short, torch.from_numpy(np.cumprod(1 - np.linspace(4e-4, 0.08, 250))))
    cosine = architecture(noise_schedule="cosine").alphas_cumprod()
    assert cosine.shape == (1000,) and bool((cosine[1:] < cosine[:-1]).all())


# -- loading --------------------------------------------------------------------------------------


def test_pt_and_safetensors_load_the_same_weights(ffhq: tuple[Any, Path, Path]) -> None:
    net, pt, st = ffhq
    for path in (pt, st):
        prior = load(path)
        assert isinstance(prior, ADMPrior) and prior.model.training is False
        want = net.state_dict()
        got = prior.model.state_dict()
        assert list(got) == list(want)
        for key in want:
            assert torch.equal(got[key], want[key]), key
        assert not any(p.requires_grad for p in prior.model.parameters())


def test_eps_and_tweedie_against_the_network(ffhq: tuple[Any, Path, Path]) -> None:
    net, pt, _ = ffhq
    prior = load(pt)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 64, 64, generator=g)
    t = torch.tensor([20, 700])
    with torch.no_grad():
        raw = net.forward_diffusion(x, t)
        assert raw.shape == (2, 6, 64, 64)
        eps = prior.eps(x, t)
        torch.testing.assert_close(eps, raw[:, :3])  # the variance channels dropped
        betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
        abar = torch.from_numpy(np.cumprod(1.0 - betas))[t].float().view(-1, 1, 1, 1)
        x0 = (x - (1 - abar).sqrt() * raw[:, :3]) / abar.sqrt()
        torch.testing.assert_close(prior.x0(x, t), x0, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(prior.x0(x, t, clip=True), x0.clamp(-1, 1), rtol=1e-4, atol=1e-4)
    assert prior.nfe == 3 and prior.prediction_type == "epsilon"


def test_any_size_is_padded_and_float64_signals_come_back_float64(ffhq: tuple[Any, Path, Path]) -> None:
    net, pt, _ = ffhq
    prior = load(pt)
    x = torch.randn(1, 3, 40, 72, dtype=torch.float64)
    with torch.no_grad():
        eps = prior.eps(x, 100)
        assert eps.shape == x.shape and eps.dtype == torch.float64
        full = torch.nn.functional.pad(x.float(), (0, 24, 0, 24), mode="reflect")
        ref = net.forward_diffusion(full, torch.tensor([100]))[:, :3, :40, :72]
        torch.testing.assert_close(eps, ref.double(), rtol=1e-5, atol=1e-5)


def test_size_is_checked_by_default(ffhq: tuple[Any, Path, Path]) -> None:
    prior = load(ffhq[1], check_size=True)
    assert prior.fixed_shape == (256, 256) and load(ffhq[1]).fixed_shape is None
    with pytest.raises(ValueError, match=r"trained on \(3, 256, 256\) images but got \(3, 64, 64\); "
                                         r"resize the data .*check_size = false.*tile = 256"):
        prior.eps(torch.zeros(1, 3, 64, 64), 10)
    with pytest.raises(ValueError, match=r"give it 3-channel images"):
        prior.eps(torch.zeros(1, 1, 256, 256), 10)


class TestADMPrior(PriorContract):
    @pytest.fixture
    def prior(self, ffhq: tuple[Any, Path, Path]) -> Any:
        return load(ffhq[2])

    @pytest.fixture
    def signal(self) -> torch.Tensor:
        return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_class_conditional_imagenet(tmp_path: Path) -> None:
    net = small("imagenet256", seed=1)
    torch.save(net.state_dict(), tmp_path / "256x256_diffusion.pt")
    path = tmp_path / "256x256_diffusion.pt"
    with pytest.raises(ValueError, match=r"class-conditional \(1000 ImageNet classes\): pass "
                                         r"class_label = N \(0 to 999\)"):
        load(path, "imagenet256")
    with pytest.raises(ValueError, match="class_label must be 0 to 999, got 1000"):
        load(path, "imagenet256", class_label=1000)
    prior = load(path, "imagenet256", class_label=7)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([300, 300])
    with torch.no_grad():
        eps = prior.eps(x, t)
        torch.testing.assert_close(eps, net.forward_diffusion(x, t, y=torch.tensor([7, 7]))[:, :3])
        assert not torch.allclose(eps, net.forward_diffusion(x, t, y=torch.tensor([8, 8]))[:, :3])
    with pytest.raises(ValueError, match=r"1 unexpected \(label_emb.weight, ...\) parameters; the "
                                         r"checkpoint has class_cond = true but the preset "
                                         r"'imagenet256-uncond' says class_cond = false"):
        load(path, "imagenet256-uncond")


def test_imagenet_uncond_at_its_configuration(tmp_path: Path) -> None:
    net = small("imagenet256-uncond", seed=3)
    save_file(dict(net.state_dict()), tmp_path / "uncond.safetensors")
    prior = load(tmp_path / "uncond.safetensors", "imagenet256-uncond")
    assert prior.arch.num_res_blocks == 2 and prior.arch.attention_resolutions == (32, 16, 8)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(prior.eps(x, 999), net.forward_diffusion(x, torch.tensor([999]))[:, :3])
    with pytest.raises(ValueError, match="not class-conditional: remove class_label"):
        load(tmp_path / "uncond.safetensors", "imagenet256-uncond", class_label=3)


def test_explicit_flags_without_a_preset(ffhq: tuple[Any, Path, Path]) -> None:
    """guided-diffusion's MODEL_FLAGS, by their names, give the same network as the preset."""
    flags = dict(image_size=256, num_channels=WIDTH, num_res_blocks=1, attention_resolutions="16",
                 num_heads=4, num_head_channels=64, resblock_updown=True, learn_sigma=True,
                 use_scale_shift_norm=True, check_size=False)
    prior = pnpkit.create("prior", "adm", path=str(ffhq[1]), **flags)
    assert prior.arch == architecture("ffhq256", num_channels=WIDTH)


def test_wrong_checkpoints_are_one_line(ffhq: tuple[Any, Path, Path], tmp_path: Path) -> None:
    _, pt, _ = ffhq
    with pytest.raises(ValueError, match=r"does not fit the architecture .*the checkpoint has "
                                         r"num_channels = 32 but the preset 'ffhq256' says "
                                         r"num_channels = 128; set those in \[prior\]"):
        pnpkit.create("prior", "adm", path=str(pt), preset="ffhq256")
    with pytest.raises(ValueError, match=r"does not fit .*missing \(input_blocks\..*check "
                                         r"num_res_blocks, attention_resolutions"):
        load(pt, "imagenet256-uncond")
    with pytest.raises(ValueError, match=r"unknown preset 'ffhq512'; presets: ffhq256, "
                                         r"imagenet256-uncond, imagenet256"):
        load(pt, "ffhq512")
    with pytest.raises(FileNotFoundError, match=r"does not exist; give the checkpoint file"):
        load(tmp_path / "nothing.pt")
    with pytest.raises(FileNotFoundError, match=r"is a folder"):
        load(tmp_path)
    torch.save({"step": 3, "args": {"lr": 1e-4}}, tmp_path / "not_weights.pt")
    with pytest.raises(ValueError, match=r"holds no state dict of tensors"):
        load(tmp_path / "not_weights.pt")


def test_wrapped_and_data_parallel_checkpoints(ffhq: tuple[Any, Path, Path], tmp_path: Path) -> None:
    net = ffhq[0]
    torch.save({"ema": {"module." + k: v for k, v in net.state_dict().items()}}, tmp_path / "w.pt")
    state = read_state_dict(tmp_path / "w.pt")
    assert list(state) == list(net.state_dict())


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    import argparse

    # a training script's checkpoint with its arguments pickled next to the weights
    torch.save({"weight": torch.zeros(1), "args": argparse.Namespace(lr=1e-4)}, tmp_path / "pickle.pt")
    with pytest.raises(ValueError, match=r"does not load as a state dict of tensors "
                                         r"\(torch.load\(weights_only=True\)"):
        read_state_dict(tmp_path / "pickle.pt")


def test_through_a_configuration(ffhq: tuple[Any, Path, Path], tmp_path: Path) -> None:
    """``[prior] name = "adm"``, ``preset``, ``path``: one DCDP V2 iteration end to end."""
    config = tmp_path / "run.toml"
    config.write_text(f"""
output = "out"
metrics = ["psnr"]

[data]
sample = "astronaut"
size = 64
channels = 3

[operator]
name = "super-resolution"
factor = 4

[prior]
name = "adm"
preset = "ffhq256"
path = "{ffhq[1]}"
num_channels = {WIDTH}
check_size = false

[solver]
name = "dcdp"
preset = "sr4"
purification = "tweedie"
iterations = 1
tau = 3
""")
    summary = pipeline.run(cfgmod.load(config), progress=False)
    assert summary["items"] == 1 and summary["mean"]["nfe"] == 1
    resolved = (tmp_path / "out" / "config.toml").read_text()
    assert 'preset = "ffhq256"' in resolved and f'path = "{ffhq[1]}"' in resolved
    assert "num_channels = 32" in resolved


# -- memory -----------------------------------------------------------------------------------


def test_the_pipeline_checks_memory_before_the_output_folder(
        ffhq: tuple[Any, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "run.toml"
    config.write_text(f"""
output = "out"
[data]
sample = "astronaut"
size = 64
channels = 3
[operator]
name = "super-resolution"
factor = 4
[prior]
name = "adm"
preset = "ffhq256"
path = "{ffhq[1]}"
num_channels = {WIDTH}
check_size = false
[solver]
name = "dcdp"
preset = "sr4"
iterations = 1
""")
    monkeypatch.setattr(memory_mod, "available_memory", lambda device: 2**20)
    with pytest.raises(MemoryError, match=r"needs about \d+ MiB for one network call on 1 x 3 x 64 x "
                                          r"64 inputs .* but cpu has 1 MiB free"):
        pipeline.run(cfgmod.load(config), progress=False)
    assert not (tmp_path / "out").exists()



def test_the_memory_estimate_at_full_size() -> None:
    """The estimate of the full FFHQ 256 network at 256 x 256 against the measured peaks
    (resident set on CPU: 1.75 GiB with a backward pass, 0.27 GiB without)."""
    with torch.device("meta"):
        net = ADMUNet(architecture("ffhq256"))
    prior = ADMPrior(net, architecture("ffhq256"))
    gib = 2**30
    grad = prior.memory.estimate((1, 3, 256, 256), grad=True) / gib
    nograd = prior.memory.estimate((1, 3, 256, 256), grad=False) / gib
    assert 1.5 < grad < 2.5 and 0.25 < nograd < 0.8
    assert prior.memory.estimate((2, 3, 256, 256), grad=True) == pytest.approx(2 * grad * gib, rel=0.01)
    prior.check_memory((1, 3, 256, 256))  # meta tensors: free memory unknown, nothing raised


def test_a_network_too_large_for_the_memory_says_so_before_it_runs(
        ffhq: tuple[Any, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    prior = load(ffhq[1])
    shape = (1, 3, 64, 64)
    need = prior.memory.estimate(shape, grad=True)
    calls = []
    monkeypatch.setattr(prior.model, "forward_diffusion", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(memory_mod, "available_memory", lambda device: need // 10)
    x = torch.zeros(shape, requires_grad=True)
    with pytest.raises(MemoryError, match=r"prior 'adm' needs about \d+ MiB for one network call "
                                          r"with gradients on 1 x 3 x 64 x 64 inputs \(5\.9 M "
                                          r"parameters.* but cpu has \d+ MiB free; use a device "
                                          r"with more memory"):
        prior.eps(x, 10)
    assert calls == []  # refused before the network ran
    # bf16 would fit: the message says so, and it runs with it
    monkeypatch.setattr(memory_mod, "available_memory", lambda device: int(need * 0.8))
    with pytest.raises(MemoryError, match=r'precision = "bf16" would fit'):
        prior.eps(x, 10)
    with torch.no_grad():  # without gradients the same call fits
        monkeypatch.setattr(prior.model, "forward_diffusion",
                            lambda x, t, y=None: torch.zeros(x.shape[0], 6, *x.shape[2:]))
        assert prior.eps(x, 10).shape == shape
    monkeypatch.setenv("PNPKIT_MEMORY_CHECK", "0")
    assert prior.eps(x, 10).shape == shape


# -- the full-width network ------------------------------------------------------------------------


@pytest.mark.slow
def test_full_width_ffhq256_runs_one_dcdp_v2_iteration(tmp_path: Path) -> None:
    """DPS's FFHQ 256 architecture at full width (93.6 M parameters, random weights), saved as
    ``ffhq_10m.pt``, loaded by name, one DCDP V2 round on a 256 x 256 SR x4 problem: one
    network call (about 5 s on one CPU thread)."""
    import skimage.data

    from pnpkit.data import image_to_tensor

    torch.manual_seed(0)
    net = randomised(ADMUNet(architecture("ffhq256")))
    torch.save(net.state_dict(), tmp_path / "ffhq_10m.pt")
    del net
    prior = pnpkit.create("prior", "adm", preset="ffhq256", path=str(tmp_path / "ffhq_10m.pt"))
    assert prior.num_parameters == 93_563_910 and prior.fixed_shape == (256, 256)
    x = image_to_tensor(skimage.data.astronaut(), 256, 3)[None]
    op = pnpkit.create("operator", "super-resolution", factor=4, shape=(3, 256, 256))
    y = ops.measure(op, x)
    solver = pnpkit.create("solver", "dcdp", preset="sr4", purification="tweedie", iterations=1,
                           tau=2)
    res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(0))
    assert res.x.shape == (1, 3, 256, 256) and res.nfe == 1
    assert torch.isfinite(res.x).all() and res.x.abs().max() <= 1  # the clipped Tweedie estimate
