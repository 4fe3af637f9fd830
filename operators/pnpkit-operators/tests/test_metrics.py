"""Phase retrieval's metrics (moved here from the core with ``psnr_pr`` / ``ssim_pr``)."""

from __future__ import annotations

import doctest

import pytest
import torch

import pnpkit
from pnpkit_operators import metrics as pr_metrics
from pnpkit_operators.metrics import phase_retrieval_twin, psnr_pr, ssim_pr


def test_phase_retrieval_metrics_see_through_the_trivial_ambiguities():
    from pnpkit.metrics import psnr

    g = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 1, 16, 16, generator=g) * 2 - 1
    twins = torch.stack([ref[0], -ref[1], -torch.flip(ref[2], dims=(-2, -1))])
    assert float(psnr(twins, ref)[1:].max()) < 20
    torch.testing.assert_close(phase_retrieval_twin(twins, ref), ref)
    assert float(psnr_pr(twins, ref).min()) > 150
    torch.testing.assert_close(ssim_pr(twins, ref), torch.ones(3), atol=1e-4, rtol=0)
    # The same magnitudes: the operator cannot tell the four apart.
    from pnpkit_operators.phase_retrieval import FourierPhaseRetrieval

    op = FourierPhaseRetrieval((1, 16, 16))
    torch.testing.assert_close(op.A(twins), op.A(ref), atol=1e-5, rtol=0)
    # A wrong estimate stays wrong: the metric only chooses among the four.
    other = torch.rand(3, 1, 16, 16, generator=g) * 2 - 1
    assert float(psnr_pr(other, ref).max()) < 15


def test_registered_as_pipeline_metrics():
    manager = pnpkit.get_manager()
    assert manager.get("metric", "psnr_pr").factory is psnr_pr
    assert manager.get("metric", "operators:ssim_pr").factory is ssim_pr
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
    out = pnpkit.metrics.compute(["psnr_pr", "ssim_pr"], -ref, ref)
    assert min(out["psnr_pr"]) > 150
    assert out["ssim_pr"] == pytest.approx([1.0, 1.0], abs=1e-4)


def test_doctests():
    assert doctest.testmod(pr_metrics).failed == 0
