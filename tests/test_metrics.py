"""The core's metrics: the generic ones, found by name through the plugin manager (bare,
qualified, clashing, unknown), and the pipeline handing audio metrics the item's sample rate.

MSDM's windowed SI-SNRi is tested with its plugin (plugins/pnpkit-msdm/tests/test_metrics.py),
phase retrieval's metrics with the operators (operators/pnpkit-operators/tests/test_metrics.py).
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from pnpkit import config as cfgmod
from pnpkit import metrics, pipeline
from pnpkit.metrics import compute, psnr, si_snr
from pnpkit.plugins import PluginManager, reset_manager

RATE = 100

SPY = '''
"""A per-stem metric that records the sample rate it is given."""
import pnpkit

SEEN = []


def spy(x, ref, sample_rate):
    from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio
    SEEN.append(sample_rate)
    return scale_invariant_signal_noise_ratio(x.float(), ref.float())   # (B, K): per stem


@pnpkit.hookimpl
def register_metrics(register):
    register("spy", spy, description="per-channel SI-SNR, recording the sample rate")
    register("psnr", "pnpkit.metrics:mse")   # claims the core's name: a clash
'''


def test_existing_metrics_are_unchanged():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 2, 64, generator=g) * 2 - 1
    est = ref + 0.1 * torch.randn(ref.shape, generator=g)
    out = compute(["psnr", "si_snr", "si_snri", "mse"], est, ref, sample_rate=RATE, channel_names=["a", "b"])
    assert list(out) == ["psnr", "si_snr", "si_snri", "mse"]
    assert out["psnr"] == [float(v) for v in psnr(est, ref)]
    assert out["si_snr"] == [float(v) for v in si_snr(est, ref)]
    assert compute(["psnr"], est, ref) == {"psnr": out["psnr"]}
    assert compute(["builtin:psnr"], est, ref) == {"builtin:psnr": out["psnr"]}


def test_unknown_metric_suggests_the_closest(monkeypatch):
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "")
    reset_manager()
    try:
        x = torch.zeros(1, 1, 4)
        with pytest.raises(ValueError, match=r"unknown metric 'psnrr'. Did you mean 'psnr'\? "
                                             r"Available: mse, psnr, si_snr, si_snri, ssim, builtin:mse"):
            compute(["psnrr"], x, x)
        with pytest.raises(ValueError, match="unknown metric 'nobody:psnr'"):
            metrics.get("nobody:psnr")
    finally:
        reset_manager()


def _spy_manager(fake_site, monkeypatch, load: str = "fake-spy"):
    site = fake_site("pnpkit-fake-spy", "fake_spy", SPY, entry_name="fake-spy")
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", load)
    reset_manager(PluginManager())
    return site


def test_a_metric_name_two_plugins_claim_needs_its_qualified_name(fake_site, monkeypatch):
    _spy_manager(fake_site, monkeypatch)
    x, ref = torch.zeros(1, 1, 4), torch.ones(1, 1, 4)
    with pytest.raises(ValueError, match=r"metric 'psnr' is registered by 2 plugins \('builtin', "
                                         r"'fake-spy'\); use a qualified name: 'builtin:psnr' or "
                                         r"'fake-spy:psnr'"):
        compute(["psnr"], x, ref)
    assert compute(["fake-spy:psnr"], x, ref) == {"fake-spy:psnr": [1.0]}   # the spy's mse
    assert compute(["builtin:psnr"], x, ref)["builtin:psnr"] == pytest.approx([10 * 0.60206], abs=1e-4)


def test_pipeline_passes_the_items_sample_rate(toy_site, fake_site, tmp_path, monkeypatch):
    _spy_manager(fake_site, monkeypatch, load="toy,fake-spy")
    seen = sys.modules["fake_spy"].SEEN
    path = tmp_path / "audio.toml"
    # Qualified names work in a configuration as anywhere else.
    path.write_text("""
output = "aout"
metrics = ["spy", "si_snr"]
[data]
dataset = "toy:toy-audio"
count = 1
[operator]
name = "toy:toy-mask"
[prior]
name = "toy-gauss"
[solver]
name = "builtin:pgd"
iterations = 3
""")
    summary = pipeline.run(cfgmod.load(path), progress=False)
    assert seen and set(seen) == {8000}  # the toy clips' rate, for the result and the baseline
    rec = json.loads((tmp_path / "aout" / "items" / "clip0" / "metrics.json").read_text())
    assert {"spy", "spy/0", "spy/1", "si_snr"} <= set(rec["metrics"])
    assert rec["metrics"]["spy"] == pytest.approx((rec["metrics"]["spy/0"] + rec["metrics"]["spy/1"]) / 2)
    assert rec["metrics"]["spy"] == pytest.approx(rec["metrics"]["si_snr"], abs=1e-4)
    assert "spy/1" in rec["pseudo_inverse_metrics"]
    assert summary["mean"]["spy"] == pytest.approx(rec["metrics"]["spy"])


def test_every_committed_config_and_sweep_names_registered_metrics(all_plugins):
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [*sorted((root / "configs").glob("*.toml")),
             *sorted((root / "benchmarks" / "sweeps").glob("*.toml"))]
    named = {name for f in files for name in tomllib.loads(f.read_text()).get("metrics", [])}
    assert {"psnr", "psnr_pr", "ssim_pr", "si_snri_msdm", "si_snri"} <= named
    owners = {name: metrics_owner(name) for name in sorted(named)}
    assert owners["psnr_pr"] == owners["ssim_pr"] == "operators"
    assert owners["si_snri_msdm"] == "msdm" and owners["psnr"] == "builtin"


def metrics_owner(name: str) -> str:
    from pnpkit.plugins import get_manager

    assert callable(metrics.get(name)), name
    return get_manager().get("metric", name).plugin
