"""MSDM's released Lightning checkpoint: refused in one line that says why (pnpkit_audio.msdm)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from pnpkit_audio.msdm import MSDMCheckpointError, describe_checkpoint
from pnpkit_audio.prior import AudioDiffusionPrior


def _fake_module(name: str, cls_name: str) -> tuple[types.ModuleType, type]:
    """A stand-in for a class MSDM's pickle names (the real library is not installed)."""
    module = types.ModuleType(name)

    def init(self, mean: float, std: float) -> None:
        self.mean, self.std = mean, std

    cls = type(cls_name, (), {"__init__": init, "__module__": name})
    setattr(module, cls_name, cls)
    return module, cls


def msdm_layout() -> dict:
    """A checkpoint dict laid out as MSDM's (Lightning 1.7.7, save_weights_only=True), random
    tensors of reduced widths under MSDM's module paths."""
    g = torch.Generator().manual_seed(0)
    net = {"to_time.0.weight": torch.randn(16, 1, generator=g),
           "to_in.0.conv.weight": torch.randn(16, 64, 1, generator=g),
           "downsamples.0.blocks.0.block1.groupnorm.weight": torch.ones(16),
           "to_out.0.weight": torch.randn(64, 16, 1, generator=g)}
    state = {f"model.unet.{k}": v for k, v in net.items()}
    state.update({f"model.diffusion.net.{k}": v for k, v in net.items()})
    ckpt = {"epoch": 729, "global_step": 1000, "pytorch-lightning_version": "1.7.7",
            "state_dict": state, "loops": {"fit_loop": {"state_dict": {}}},
            "hparams_name": "kwargs",
            "hyper_parameters": {"learning_rate": 1e-4, "in_channels": 4, "channels": 256,
                                 "patch_factor": 16, "diffusion_sigma_data": 0.2}}
    return ckpt


@pytest.fixture
def released(tmp_path, monkeypatch):
    """A file in the released checkpoint's layout, its hyper-parameters holding the pickled
    ``audio_diffusion_pytorch.diffusion.LogNormalDistribution`` object."""
    package = types.ModuleType("audio_diffusion_pytorch")
    module, cls = _fake_module("audio_diffusion_pytorch.diffusion", "LogNormalDistribution")
    package.diffusion = module
    monkeypatch.setitem(sys.modules, "audio_diffusion_pytorch", package)
    monkeypatch.setitem(sys.modules, "audio_diffusion_pytorch.diffusion", module)
    ckpt = msdm_layout()
    ckpt["hyper_parameters"]["diffusion_sigma_distribution"] = cls(-3.0, 1.0)
    path = tmp_path / "epoch=729-valid_loss=0.014.ckpt"
    torch.save(ckpt, path)
    monkeypatch.delitem(sys.modules, "audio_diffusion_pytorch.diffusion")
    monkeypatch.delitem(sys.modules, "audio_diffusion_pytorch")
    return path


def test_the_released_layout_is_refused_by_weights_only_and_said_in_one_line(released):
    # What pnpkit's loader stands on: torch itself refuses the file.
    with pytest.raises(Exception, match="audio_diffusion_pytorch.diffusion.LogNormalDistribution"):
        torch.load(released, weights_only=True)
    with pytest.raises(MSDMCheckpointError) as err:
        AudioDiffusionPrior.from_pretrained(released)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (f"{released}: torch.load(weights_only=True) refuses it: MSDM's Lightning "
                   "checkpoint pickles its training objects "
                   "(audio_diffusion_pytorch.diffusion.LogNormalDistribution) and pnpkit "
                   "unpickles no classes; and its network is audio-diffusion-pytorch 0.0.43's "
                   "UNet1d, an architecture pnpkit does not have, so no pnpkit prior can use "
                   "these weights (see pnpkit-audio's README, 'MSDM's released checkpoint')")
    assert isinstance(err.value, ValueError)


def test_the_plugin_prior_says_the_same(released):
    import pnpkit

    with pytest.raises(ValueError, match=r"refuses it: MSDM's Lightning checkpoint pickles"):
        pnpkit.create("prior", "audio-diffusion", path=str(released))


def test_its_tensors_alone_still_name_the_missing_architecture(tmp_path):
    path = tmp_path / "state.pt"
    torch.save(msdm_layout(), path)
    assert torch.load(path, weights_only=True)["epoch"] == 729  # readable safely
    err = describe_checkpoint(path)
    assert str(err) == (f"{path}: holds MSDM's network (4 tensors under model.unet.*), but its "
                        "network is audio-diffusion-pytorch 0.0.43's UNet1d, an architecture "
                        "pnpkit does not have, so no pnpkit prior can use these weights (see "
                        "pnpkit-audio's README, 'MSDM's released checkpoint')")


def test_other_single_files_are_told_to_give_a_folder(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2)}, path)
    assert describe_checkpoint(path) is None
    junk = tmp_path / "notes.txt"
    junk.write_text("not a checkpoint")
    assert describe_checkpoint(junk) is None
    for f in (path, junk):
        with pytest.raises(FileNotFoundError, match=r"is a file; give the checkpoint's folder"):
            AudioDiffusionPrior.from_pretrained(f)
