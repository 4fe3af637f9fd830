"""``precision = "bf16"``: the prior's network under autocast, the solver's arithmetic in float32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit import config as cfgmod
from pnpkit import pipeline
from pnpkit.config import ConfigError
from pnpkit.priors import DiffusionPrior

# The demo's task at 64 x 64: grey camera, noiseless SR x4, the default grey prior, DCDP V2.
DEMO = """
output = "{out}"
metrics = ["psnr"]
{precision}

[data]
sample = "camera"
size = 64
channels = 1

[operator]
name = "super-resolution"
factor = 4

[prior]
name = "default-grey32"

[solver]
name = "dcdp"
preset = "sr4"
purification = "tweedie"
"""


def run(tmp_path: Path, precision: str | None) -> dict[str, Any]:
    path = tmp_path / f"{precision or 'fp32'}.toml"
    line = f'precision = "{precision}"' if precision else ""
    path.write_text(DEMO.format(out=f"out-{precision or 'fp32'}", precision=line))
    return pipeline.run(cfgmod.load(path), progress=False)


def test_bf16_on_the_demo_task_is_within_0_3_db_of_float32(tmp_path: Path) -> None:
    full = run(tmp_path, None)["mean"]["psnr"]
    half = run(tmp_path, "bf16")["mean"]["psnr"]
    assert full > 20  # the task is solved at all
    assert abs(half - full) < 0.3, (full, half)
    saved = (tmp_path / "out-bf16" / "config.toml").read_text()
    assert 'precision = "bf16"' in saved


class _Recorder(DiffusionPrior):
    """Records the dtype the network computes in and the dtype the solver gets back."""

    def __init__(self) -> None:
        from pnpkit.priors import linear_alphas_cumprod

        super().__init__(linear_alphas_cumprod(), clip=1.0)
        self.weight = torch.ones(1, 1, 3, 3) / 9
        self.seen: list[torch.dtype] = []

    def network(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.conv2d(x_t, self.weight, padding=1)
        self.seen.append(out.dtype)
        return out


def test_the_network_runs_in_bf16_and_the_solver_gets_float32() -> None:
    prior = _Recorder()
    x = torch.randn(2, 1, 8, 8)
    ref = prior.eps(x, 10)
    prior.precision = "bf16"
    out = prior.eps(x, 10)
    assert prior.seen == [torch.float32, torch.bfloat16]
    assert out.dtype == torch.float32 and not torch.equal(out, ref)
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=2e-2)
    x0 = prior.x0(x, 10)  # the schedule arithmetic outside the network: float32
    assert x0.dtype == torch.float32
    # outside the prior nothing is autocast
    assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_the_diffusers_prior_honours_precision(grey_ckpt: Path) -> None:
    prior = pnpkit.create("prior", "diffusers", path=str(grey_ckpt))
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        ref = prior.eps(x, 500)
        prior.precision = "bf16"
        out = prior.eps(x, 500)
    assert out.dtype == torch.float32 and not torch.equal(out, ref)
    torch.testing.assert_close(out, ref, rtol=0.05, atol=0.05)


def test_an_unknown_precision_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(DEMO.format(out="out", precision='precision = "int8"'))
    with pytest.raises(ConfigError, match=r'precision must be "bf16" or "fp16" .* got \'int8\''):
        cfgmod.load(path)
