"""The quality a solver's history logs against a reference: SI-SNR for audio-shaped signals
(B, C, T), PSNR for images, as ``SolveContext.log`` documents."""

from __future__ import annotations

import math

import pytest
import torch

from pnpkit import HQS, PGD, metrics
from pnpkit.operators import MatrixOperator, measure
from pnpkit.solvers import PseudoInverse, SolveContext
from pnpkit.testing import GaussianDiffusionPrior, TikhonovPrior

T = 64  # samples per stem


def separation(stems: int = 2) -> tuple[MatrixOperator, torch.Tensor, torch.Tensor]:
    """Two sine stems (1, 2, T) and their mixture: ``A = [I I]`` sums the stems."""
    t = torch.arange(T, dtype=torch.float64) / T
    x = torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in (3, 7)][:stems])[None]
    op = MatrixOperator(torch.eye(T, dtype=torch.float64).repeat(1, stems), shape=(stems, T))
    return op, x, measure(op, x)


def test_a_separation_solve_logs_si_snr_and_no_psnr() -> None:
    op, x, y = separation()
    res = HQS(iterations=6, sigma=0.2, sigma_end=0.05).solve(
        y, op, GaussianDiffusionPrior(scale=0.5), generator=torch.Generator().manual_seed(0),
        reference=x)
    assert res.history and all("si_snr" in h and "psnr" not in h for h in res.history)
    # the record is the mean over stems and items of pnpkit.metrics.si_snr
    last = res.history[-1]["si_snr"]
    assert last == pytest.approx(float(metrics.si_snr(res.x, x).mean()), abs=1e-4)
    # mixture / 2 on each stem (the pseudo-inverse start) is far from either stem
    start = metrics.si_snr(op.A_dagger(y), x)
    assert float(start.mean()) < 5


def test_si_snr_is_the_mean_over_stems_and_ignores_scale() -> None:
    op, x, y = separation()
    est = x.clone()
    est[:, 1] = 0.3 * x[:, 1] + 0.05 * torch.randn(T, generator=torch.Generator().manual_seed(1),
                                                     dtype=torch.float64)
    rec = SolveContext(y, op, TikhonovPrior(), None, x).log(0, est)
    per_stem = [float(metrics.si_snr(est[:, k:k + 1], x[:, k:k + 1])) for k in range(2)]
    assert per_stem[0] > 60 and per_stem[1] < 20  # an exact stem and a noisy, scaled one
    assert rec["si_snr"] == pytest.approx(sum(per_stem) / 2, abs=1e-4)
    assert "psnr" not in rec
    # SI-SNR is scale-invariant: the same estimate against the reference scaled by 3
    again = SolveContext(y, op, TikhonovPrior(), None, 3 * x).log(0, est)
    assert again["si_snr"] == pytest.approx(rec["si_snr"], abs=1e-3)


def test_an_image_solve_still_logs_psnr_only() -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 1, 6, 6, generator=g, dtype=torch.float64) * 2 - 1)
    a = torch.randn(24, 36, generator=g, dtype=torch.float64)
    op = MatrixOperator(a / torch.linalg.matrix_norm(a, ord=2), shape=(1, 6, 6))
    y = measure(op, x)
    res = PGD(iterations=5, stepsize=0.5, sigma=0.1).solve(y, op, TikhonovPrior(), reference=x)
    assert all("psnr" in h and "si_snr" not in h for h in res.history)
    for h, k in zip(res.history, range(5), strict=True):
        assert h["iteration"] == k
    mse = float((res.x - x).pow(2).mean())
    assert res.history[-1]["psnr"] == pytest.approx(10 * math.log10(4 / mse), rel=1e-6)


def test_no_reference_logs_no_quality() -> None:
    op, _, y = separation()
    res = PseudoInverse().solve(y, op, TikhonovPrior())
    assert not {"psnr", "si_snr"} & set(res.history[0])
