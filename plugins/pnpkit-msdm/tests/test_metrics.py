"""MSDM's separation metric: windowed SI-SNRi, silent-window skipping, NaN, and compute()
finding it through the plugin (moved here from the core with the metric)."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

import pnpkit
from pnpkit.metrics import compute, si_snr
from pnpkit_msdm import metrics
from pnpkit_msdm.metrics import si_snri_msdm, si_snri_windows

RATE = 100  # 4 s windows = 400 samples, 2 s hop = 200 samples


def tone(cycles: int, n: int, amp: float = 1.0) -> torch.Tensor:
    """A whole number of cycles per 200 samples: zero-mean and orthogonal to other tones on
    every window that starts on a multiple of 200 and spans 400 samples."""
    k = torch.arange(n, dtype=torch.float64)
    return amp * torch.sin(2 * math.pi * cycles * k / 200)


def db(power_ratio: float) -> float:
    return 10 * math.log10(power_ratio)


def three_sources(n: int) -> torch.Tensor:
    return torch.stack([tone(3, n, 0.5), tone(5, n, 0.3), tone(7, n, 0.2)])[None]  # (1, 3, n)


@pytest.mark.parametrize("n, windows", [(400, 1), (800, 3)])
def test_known_si_snri_on_orthogonal_tones(n, windows):
    ref = three_sources(n)
    noise = tone(11, n)  # orthogonal to every source, zero mean
    scales = torch.tensor([0.05, 0.1, 0.02], dtype=torch.float64).view(1, 3, 1)
    est = ref + scales * noise
    power = torch.tensor([0.5, 0.3, 0.2]) ** 2  # tone power is amp^2 / 2: the halves cancel
    want = []
    for k in range(3):
        estimate = db(float(power[k]) / float(scales.flatten()[k]) ** 2)  # alpha = 1: no rescale
        mixture = db(float(power[k]) / float(power.sum() - power[k]))
        want.append(estimate - mixture)
    got = si_snri_windows(est.float(), ref.float(), RATE)
    assert got.shape == (1, 3)
    torch.testing.assert_close(got, torch.tensor([want]), rtol=0, atol=1e-3)
    assert math.ceil((n - 400 + 200) / 200) == windows
    # Same as the whole-signal SI-SNRi: the windows all carry the same figures.
    whole = si_snr(est.float(), ref.float()) - si_snr(ref.float().sum(1, keepdim=True).expand(1, 3, n),
                                                      ref.float())
    torch.testing.assert_close(got.mean(1), whole, rtol=0, atol=1e-3)


def test_windows_with_one_active_source_are_skipped():
    n = 800  # windows [0, 400), [200, 600), [400, 800)
    ref = three_sources(n)
    ref[:, 1:, 200:] = 0  # sources 1 and 2 play only in [0, 200): windows 2 and 3 have one source
    g = torch.Generator().manual_seed(0)
    est = ref + 0.05 * torch.randn(ref.shape, generator=g, dtype=ref.dtype)
    got = si_snri_windows(est.float(), ref.float(), RATE)
    first = si_snri_windows(est[..., :400].float(), ref[..., :400].float(), RATE)  # window 1 alone
    torch.testing.assert_close(got, first, rtol=0, atol=1e-5)
    # The skipped windows do not count: spoiling the estimate there changes nothing.
    spoiled = est.clone()
    spoiled[..., 400:] = torch.randn(spoiled[..., 400:].shape, generator=g, dtype=ref.dtype)
    torch.testing.assert_close(si_snri_windows(spoiled.float(), ref.float(), RATE), got, rtol=0, atol=1e-5)
    # ... while in a kept window it does.
    spoiled[..., :400] = 0.5 * spoiled[..., :400] + 0.5 * torch.randn(400, generator=g, dtype=ref.dtype)
    assert float((si_snri_windows(spoiled.float(), ref.float(), RATE) - got).abs().max()) > 1.0


def test_silence_is_norm_over_samples_below_the_threshold():
    n = 400
    ref = three_sources(n)[:, :2]
    est = ref + 0.01 * tone(11, n)
    threshold = metrics.MSDM_SILENCE
    for factor, kept in ((0.5, False), (2.0, True)):
        quiet = ref.clone()
        # ||s|| / n = factor * threshold for a tone of amplitude a: ||s|| = a sqrt(n / 2).
        amp = factor * threshold * n / math.sqrt(n / 2)
        quiet[:, 1] = tone(5, n, amp)
        got = si_snri_windows(est.float(), quiet.float(), RATE)
        assert bool(torch.isfinite(got).all()) is kept
        custom = si_snri_windows(est.float(), quiet.float(), RATE, silence_threshold=threshold / 4)
        assert bool(torch.isfinite(custom).all())


def test_nan_when_no_window_is_kept():
    n = 800
    ref = three_sources(n).repeat(2, 1, 1)
    ref[1, 1:] = 0  # item 1: one source only, nowhere two
    est = ref + 0.05 * tone(11, n)
    got = si_snri_windows(est.float(), ref.float(), RATE)
    assert bool(torch.isfinite(got[0]).all()) and bool(torch.isnan(got[1]).all())
    out = compute(["si_snri_msdm"], est.float(), ref.float(), sample_rate=RATE)
    assert math.isfinite(out["si_snri_msdm"][0]) and math.isnan(out["si_snri_msdm"][1])
    assert math.isnan(out["si_snri_msdm/2"][1])


def test_window_settings_are_checked():
    x = torch.zeros(1, 2, 100)
    with pytest.raises(ValueError, match="need 0 < hop <= window"):
        si_snri_windows(x, x, RATE, window_s=1.0, hop_s=2.0)
    with pytest.raises(ValueError, match=r"sources stacked as channels \(B, K, L\)"):
        si_snri_windows(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), RATE)


def test_compute_passes_the_sample_rate_and_names_the_stems():
    n = 800
    ref = three_sources(n)
    ref[:, 1:, 200:] = 0
    est = (ref + 0.05 * tone(11, n)).float()
    ref = ref.float()
    out = compute(["si_snri_msdm"], est, ref, sample_rate=RATE)
    want = si_snri_windows(est, ref, RATE)
    assert set(out) == {"si_snri_msdm", "si_snri_msdm/0", "si_snri_msdm/1", "si_snri_msdm/2"}
    assert out["si_snri_msdm"] == pytest.approx([float(want.mean())])
    assert [out[f"si_snri_msdm/{k}"][0] for k in range(3)] == pytest.approx(want[0].tolist())
    # At 200 Hz one window spans the whole signal: the rate does reach the metric.
    whole = compute(["si_snri_msdm"], est, ref, sample_rate=200)
    assert whole["si_snri_msdm"] == pytest.approx([float(si_snri_windows(est, ref, 200).mean())])
    assert whole["si_snri_msdm"][0] != pytest.approx(out["si_snri_msdm"][0], abs=1e-2)
    named = compute(["si_snri_msdm"], est, ref, sample_rate=RATE, channel_names=["bass", "drums", "piano"])
    assert named["si_snri_msdm/drums"] == out["si_snri_msdm/1"]
    with pytest.raises(ValueError, match="metric 'si_snri_msdm' needs the sample rate"):
        compute(["si_snri_msdm"], est, ref)


def test_registered_as_a_pipeline_metric():
    comp = pnpkit.get_manager().get("metric", "si_snri_msdm")
    assert comp.plugin == "msdm" and comp.factory is si_snri_msdm
    assert pnpkit.get_manager().get("metric", "msdm:si_snri_msdm") is comp


def test_doctests():
    assert doctest.testmod(metrics).failed == 0
