"""DDRM (and the other peers) on the decomposable operators of the DDRM and ProjDiff papers:
average-pooling SR and the separable Gaussian blur (pnpkit-operators' ``sr-avgpool`` and
``separable-gaussian-blur``), on a Gaussian prior whose posterior is known."""

from __future__ import annotations

import pytest
import torch

import pnpkit
from pnpkit import operators as ops
from pnpkit.testing import GaussianDiffusionPrior
from pnpkit_peers.samplers import DDRM, DiffPIR

SCALE = 0.5  # the prior: x ~ N(0, SCALE^2 I)

OPERATORS = {
    "sr-avgpool": {"factor": 2},
    "separable-gaussian-blur": {"kernel_size": 5, "kernel_std": 1.5, "scale_with_size": False},
}


def problem(name: str, batch: int = 16, side: int = 16):
    op = pnpkit.create("operator", name, shape=(1, side, side), **OPERATORS[name])
    g = torch.Generator().manual_seed(0)
    x = SCALE * torch.randn(batch, 1, side, side, generator=g)
    return op, x, op.A(x)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_ddrm_runs_on_decomposable_operators_and_keeps_the_range(name):
    # Noiseless y = A x with x ~ N(0, s^2 I): the posterior holds the range coordinates of V^T x
    # at U^T y / s_i (DDRM sets them from y) and leaves the null-space ones N(0, s^2), free of y.
    op, x, y = problem(name)
    res = DDRM(iterations=50).solve(y, op, GaussianDiffusionPrior(scale=SCALE),
                                    generator=torch.Generator().manual_seed(1))
    assert res.x.shape == x.shape and torch.isfinite(res.x).all() and res.nfe == 50
    coords, true = op.V_adjoint(res.x), op.V_adjoint(x)
    null = (op.mask == 0).expand_as(coords)
    assert int(null[0].sum()) > 0
    # the range: y's, up to the noise of DDRM's last level (sigma(0) = 0.01)
    assert float((coords - true)[~null].pow(2).mean().sqrt()) < 0.05
    assert float(ops.residual(op, res.x, y).max()) < 0.1
    # the null space: drawn, neither the pseudo-inverse's zeros nor the signal's own part.
    # DDRM's own algorithm under-disperses there (0.16-0.17 here at eta 0.85, 50 steps, where
    # the posterior's is 0.25; test_ddrm.py has the exact value on inpainting); deepinv's DDRM
    # as it is gave about half (0.08-0.09), see DDRM's paper_noise.
    assert 0.4 * SCALE**2 < float(coords[null].pow(2).mean()) < 1.3 * SCALE**2
    assert float((coords - true)[null].pow(2).mean()) > SCALE**2


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_diffpir_runs_on_decomposable_operators(name):
    op, x, y = problem(name, batch=2)
    res = DiffPIR(iterations=10).solve(y, op, GaussianDiffusionPrior(scale=SCALE),
                                       generator=torch.Generator().manual_seed(1))
    assert res.x.shape == x.shape and torch.isfinite(res.x).all()
    assert float(ops.residual(op, res.x, y).max()) < 0.5
