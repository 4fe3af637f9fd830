"""HQS, ADMM and PGD converge to the closed-form fixed points of a small linear problem."""

from __future__ import annotations

import pytest
import torch

from pnpkit import ADMM, HQS, PGD
from pnpkit.testing import SolverContract, toy_problem


def _normal_matrices(op):
    a = op.matrix
    return a.T @ a, a.T


@pytest.mark.parametrize("lam,sigma,gamma", [(1.0, 0.5, 1.0), (4.0, 0.3, 0.5)])
def test_hqs_reaches_its_fixed_point(lam, sigma, gamma):
    op, prior, _, y = toy_problem(lam=lam)
    ata, at = _normal_matrices(op)
    c = 1 / (1 + lam * sigma**2)
    n = ata.shape[0]
    # x = prox_f(z), z = c x  =>  (A^T A + (1 - c)/gamma I) x = A^T y ; the iterate is z = c x.
    x = torch.linalg.solve(ata + (1 - c) / gamma * torch.eye(n, dtype=ata.dtype), at @ y[0])
    res = HQS(iterations=400, stepsize=gamma, sigma=sigma, init="zeros").solve(y, op, prior)
    torch.testing.assert_close(res.x.flatten(), c * x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("lam,sigma,gamma", [(1.0, 0.5, 1.0), (2.0, 0.4, 0.7)])
def test_admm_solves_the_regularised_least_squares(lam, sigma, gamma):
    op, prior, _, y = toy_problem(lam=lam)
    ata, at = _normal_matrices(op)
    # The denoiser x/(1 + lam sigma^2) is prox_{gamma g} of g = mu/2 ||x||^2 with
    # mu = lam sigma^2 / gamma; ADMM converges to argmin 1/2||Ax-y||^2 + g(x).
    mu = lam * sigma**2 / gamma
    x = torch.linalg.solve(ata + mu * torch.eye(ata.shape[0], dtype=ata.dtype), at @ y[0])
    res = ADMM(iterations=600, stepsize=gamma, sigma=sigma).solve(y, op, prior)
    torch.testing.assert_close(res.x.flatten(), x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("lam,sigma,gamma", [(1.0, 0.5, 1.0), (3.0, 0.2, 0.5)])
def test_pgd_solves_the_regularised_least_squares(lam, sigma, gamma):
    op, prior, _, y = toy_problem(lam=lam)
    ata, at = _normal_matrices(op)
    mu = lam * sigma**2 / gamma  # same identification as for ADMM
    x = torch.linalg.solve(ata + mu * torch.eye(ata.shape[0], dtype=ata.dtype), at @ y[0])
    res = PGD(iterations=2000, stepsize=gamma, sigma=sigma).solve(y, op, prior)
    torch.testing.assert_close(res.x.flatten(), x, rtol=1e-6, atol=1e-8)


def test_noiseless_problem_recovered_in_the_measured_subspace():
    op, prior, x_true, y = toy_problem(n=12, m=12, lam=1e-6)
    res = ADMM(iterations=300, stepsize=10.0, sigma=1e-3).solve(y, op, prior)
    torch.testing.assert_close(res.x, x_true, rtol=1e-4, atol=1e-5)


def test_tolerance_stops_early_and_callback_can_stop():
    op, prior, _, y = toy_problem()
    res = ADMM(iterations=1000, tol=1e-10).solve(y, op, prior)
    assert 10 < res.iterations < 1000
    seen = []
    res = HQS(iterations=50).solve(y, op, prior, callback=lambda k, x, rec: seen.append(k) or k == 4)
    assert res.iterations == 5 and seen == [0, 1, 2, 3, 4]


def test_history_tracks_psnr_against_reference_and_nfe():
    op, prior, x_true, y = toy_problem()
    res = PGD(iterations=7, stepsize=0.5).solve(y, op, prior, reference=x_true)
    assert [h["iteration"] for h in res.history] == list(range(7))
    assert all("psnr" in h for h in res.history)
    assert res.nfe == 7


def test_settings_validated_with_suggestions():
    with pytest.raises(TypeError, match="unknown setting 'iteratons'.*Did you mean 'iterations'"):
        HQS.from_dict({"name": "hqs", "iteratons": 3})
    with pytest.raises(TypeError, match="hqs.sigma must be"):
        HQS.from_dict({"sigma": "big"})
    with pytest.raises(ValueError, match="config is for solver 'admm'"):
        HQS.from_dict({"name": "admm"})
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        PGD(iterations=0)
    assert HQS.from_dict({"sigma": 1}).sigma == 1.0 and isinstance(HQS.from_dict({"sigma": 1}).sigma, float)


class TestHQSContract(SolverContract):
    @pytest.fixture
    def solver(self):
        return HQS(iterations=8, sigma=0.2, sigma_end=0.05)


class TestADMMContract(SolverContract):
    @pytest.fixture
    def solver(self):
        return ADMM(iterations=8, sigma=0.2)


class TestPGDContract(SolverContract):
    @pytest.fixture
    def solver(self):
        return PGD(iterations=8, stepsize=0.5, sigma=0.1)


def test_pseudo_inverse_baseline():
    from pnpkit.solvers import PseudoInverse

    op, prior, x, y = toy_problem(n=16, m=16)
    res = PseudoInverse(clip=0).solve(y, op, prior, reference=x)
    torch.testing.assert_close(res.x, x)
    assert res.nfe == 0 and res.history[0]["psnr"] > 100
    assert float(PseudoInverse(clip=0.5).solve(y, op, prior).x.abs().max()) <= 0.5


class TestPseudoInverseContract(SolverContract):
    @pytest.fixture
    def solver(self):
        from pnpkit.solvers import PseudoInverse

        return PseudoInverse()
