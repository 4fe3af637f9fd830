"""The one DDPM trainer on (B, C, H, W) images: checkpoints, exact resumption, refusals, commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pnpkit_priors import train
from pnpkit_priors.diffusion import DiffusersPrior
from pnpkit_priors.trainer import learning_rate, stream_seed, train_ddpm

TINY = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
            layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


class Blobs:
    """(B, 1, 8, 8) images in [-1, 1]: a bright square at a random place, a pure function of rng."""

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        out = -np.ones((batch_size, 1, 8, 8), dtype=np.float32)
        for b in range(batch_size):
            i, j = rng.integers(0, 5, size=2)
            out[b, 0, i:i + 3, j:j + 3] = rng.uniform(0.0, 1.0)
        return out


def _train(out: Path, steps: int, model_config: dict[str, Any] | None = None,
           **kw: Any) -> dict[str, Any]:
    from diffusers import UNet2DModel

    settings = dict(batch_size=2, lr=1e-3, save_every=2, threads=1, progress=False,
                    defaults=TINY, schedule_steps=4)
    return train_ddpm(UNet2DModel, model_config, Blobs(), out, steps, (8, 8),
                      **{**settings, **kw})


def test_images_train_and_resume_bit_for_bit(tmp_path: Path) -> None:
    stopped = _train(tmp_path / "resumed", 2)
    assert stopped["step"] == 2 and stopped["model_config"]["block_out_channels"] == [8, 16]
    resumed = _train(tmp_path / "resumed", 4, resume=True)
    straight = _train(tmp_path / "straight", 4)
    assert resumed["step"] == straight["step"] == 4 and len(resumed["losses"]) == 4
    assert resumed["losses"] == straight["losses"]
    a = load_file(str(tmp_path / "resumed" / WEIGHTS))
    b = load_file(str(tmp_path / "straight" / WEIGHTS))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    prior = DiffusersPrior.from_pretrained(tmp_path / "straight")
    assert prior.shape == (1, 8, 8) and prior.num_parameters == straight["parameters"]
    assert "DiffusersPrior(name='straight', shape=(1, 8, 8)" in repr(prior)
    assert prior.dtype == torch.float32 and prior.device.type == "cpu"


def test_refusals(tmp_path: Path) -> None:
    _train(tmp_path / "run", 1)
    with pytest.raises(FileExistsError, match=r"already holds a training run .* pass resume=True"):
        _train(tmp_path / "run", 2)
    with pytest.raises(ValueError, match=r"cannot resume .* with other settings: batch_size=3 "
                       r"\(the run has 2\)"):
        _train(tmp_path / "run", 2, resume=True, batch_size=3)
    with pytest.raises(ValueError, match=r"other settings: model_config"):
        _train(tmp_path / "run", 2, resume=True, model_config={"layers_per_block": 2})
    again = _train(tmp_path / "run", 2, overwrite=True)  # train-prior's behaviour: start afresh
    assert again["step"] == 2 and len(again["losses"]) == 2

    class Wrong(Blobs):
        def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
            return super().sample(batch_size, rng)[..., :4]

    from diffusers import UNet2DModel

    with pytest.raises(ValueError, match=r"batch of shape \(2, 1, 8, 4\), expected \(2, 1, 8, 8\)"):
        train_ddpm(UNet2DModel, None, Wrong(), tmp_path / "wrong", 1, (8, 8), defaults=TINY,
                   batch_size=2, lr=1e-3, progress=False)


def test_schedule_and_stream() -> None:
    # The image trainer's old schedule, lr * min(1, (s+1)/200) * (1 + cos(pi s / S)) / 2.
    for s in (0, 199, 1000, 3999):
        old = 5e-4 * min(1.0, (s + 1) / 200) * 0.5 * (1 + np.cos(np.pi * s / 4000))
        assert learning_rate(s, 5e-4, 200, 4000) == pytest.approx(old, rel=1e-12)
    assert stream_seed(0, 1) == stream_seed(0, 1) != stream_seed(0, 2) != stream_seed(1, 2)


def test_train_prior_command_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grey32"
    argv = ["--preset", "grey32", "--out", str(out), "--steps", "1", "--batch-size", "2",
            "--threads", "1"]
    assert train.main(argv) == 0
    first = json.loads((out / "training_state.json").read_text())
    assert first["step"] == 1 and first["preset"] == "grey32" and first["stopped_by"] == "steps"
    copy = Path(shutil.copytree(out, tmp_path / "copy"))
    assert train.main(argv[:5] + ["2"] + argv[6:] + ["--resume"]) == 0
    state = json.loads((out / "training_state.json").read_text())
    assert state["step"] == 2 and state["losses"][:1] == first["losses"]
    assert first["schedule_steps"] == 1 and state["schedule_steps"] == 2
    # --schedule-steps given to a resumed run replaces the run's decay length
    assert train.main(argv[:5] + ["3"] + argv[6:] + ["--resume", "--schedule-steps", "9"]) == 0
    assert json.loads((out / "training_state.json").read_text())["schedule_steps"] == 9
    # Without --resume, train-prior starts the run afresh (as it always did).
    assert train.main([*argv[:3], str(copy), *argv[4:]]) == 0
    assert json.loads((copy / "training_state.json").read_text())["losses"] == first["losses"]
    assert "trained 1 steps" in capsys.readouterr().out


def test_training_emits_no_warning(tmp_path: Path) -> None:
    # e.g. float(loss) on the loss tensor, which requires grad, warns on every step
    import warnings

    from diffusers import UNet2DModel  # noqa: F401  (imported before: import-time notices aside)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(tmp_path / "quiet", 2)
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


def test_bf16_steps_are_mixed_precision_and_recorded(tmp_path: Path) -> None:
    """bf16 runs the forward pass in bfloat16 (the losses differ from float32's, the weights
    stay float32), records when the precision changed, and a run resumes in either."""
    fp32 = _train(tmp_path / "fp32", 2)
    bf16 = _train(tmp_path / "bf16", 2, precision="bf16")
    assert bf16["precisions"] == [{"from_step": 0, "precision": "bf16"}]
    assert fp32["precisions"] == [{"from_step": 0, "precision": "fp32"}]
    assert all(np.isfinite(bf16["losses"])) and bf16["losses"] != fp32["losses"]
    # The same data and noise: the mixed-precision loss is within bfloat16's rounding of fp32's.
    assert np.allclose(bf16["losses"][0], fp32["losses"][0], rtol=3e-2)
    weights = load_file(str(tmp_path / "bf16" / WEIGHTS))
    assert all(w.dtype == torch.float32 for w in weights.values())
    resumed = _train(tmp_path / "bf16", 4, resume=True)
    assert resumed["step"] == 4 and resumed["precisions"] == [
        {"from_step": 0, "precision": "bf16"}, {"from_step": 2, "precision": "fp32"}]
    with pytest.raises(ValueError, match="precision must be one of 'fp32', 'bf16', got 'fp16'"):
        _train(tmp_path / "fp16", 2, precision="fp16")
