"""HQS, ADMM and PGD converge to the closed-form fixed points of a small linear problem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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


def test_history_tracks_quality_against_reference_and_nfe():
    # the toy problem's (1, 1, n) vectors are (B, C, T)-shaped: scored by SI-SNR
    # (tests/test_history_metrics.py: images by PSNR, separated stems by SI-SNR)
    op, prior, x_true, y = toy_problem()
    res = PGD(iterations=7, stepsize=0.5).solve(y, op, prior, reference=x_true)
    assert [h["iteration"] for h in res.history] == list(range(7))
    assert all("si_snr" in h and "psnr" not in h for h in res.history)
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
    assert res.nfe == 0 and res.history[0]["si_snr"] > 60  # exact up to float32 rounding
    assert float(PseudoInverse(clip=0.5).solve(y, op, prior).x.abs().max()) <= 0.5


class TestPseudoInverseContract(SolverContract):
    @pytest.fixture
    def solver(self):
        from pnpkit.solvers import PseudoInverse

        return PseudoInverse()


def test_check_choice_names_the_setting_and_suggests():
    from pnpkit.solvers import check_choice

    check_choice("dcdp", "optimizer", "adam", ("sgd", "adam"))  # an allowed value passes
    with pytest.raises(ValueError, match=r"^dcdp: optimizer must be one of sgd, adam, got 'adma'\. "
                                         r"Did you mean 'adam'\?$"):
        check_choice("dcdp", "optimizer", "adma", ("sgd", "adam"))
    with pytest.raises(ValueError, match=r"^hqs: init must be one of pinv, adjoint, zeros, got 3\.$"):
        check_choice("hqs", "init", 3, ("pinv", "adjoint", "zeros"))
    with pytest.raises(ValueError, match="hqs: init must be one of pinv, adjoint, zeros, got 'pinvv'. "
                                         "Did you mean 'pinv'"):
        HQS(init="pinvv")


def test_presets_override_base_key_by_key():
    from pnpkit.solvers import Solver

    @dataclass(kw_only=True)
    class Toy(Solver):
        name = "toy"
        PRESETS: ClassVar[dict] = {"fast": dict(steps=5), "full": dict(steps=50, eta=0.1)}
        BASE: ClassVar[dict] = dict(steps=10, eta=1.0, beta=0.5)
        preset: str | None = None
        steps: int | None = None
        eta: float | None = None
        beta: float | None = None

        def __post_init__(self):
            self.apply_preset()

    def resolved(**kw):
        t = Toy(**kw)
        return t.steps, t.eta, t.beta

    assert resolved() == (10, 1.0, 0.5)
    assert resolved(preset="fast") == (5, 1.0, 0.5), "what a preset leaves unset comes from BASE"
    assert resolved(preset="full") == (50, 0.1, 0.5)
    assert resolved(preset="full", eta=2.0, beta=0.0) == (50, 2.0, 0.0), "explicit settings win"
    with pytest.raises(ValueError, match="toy: preset must be one of fast, full, got 'fats'. "
                                         "Did you mean 'fast'"):
        Toy(preset="fats")


def test_every_shipped_preset_resolves_as_before(all_plugins):
    import pnpkit

    for name in ("dcdp", "reddiff", "projdiff"):
        cls = pnpkit.get_manager().get("solver", name).factory
        for preset, values in cls.PRESETS.items():
            config = cls(preset=preset).to_dict()
            for key, value in {**cls.BASE, **values}.items():
                assert config[key] == value, (name, preset, key)
    # ProjDiff's presets name only what differs: the rest is BASE (its hand re-application once).
    sr4 = pnpkit.get_manager().get("solver", "projdiff").factory(preset="sr4")
    assert (sr4.iterations, sr4.repeats, sr4.eta, sr4.beta, sr4.levels, sr4.sigma_min, sr4.sigma_max,
            sr4.rho) == (100, 1, 1.7, 0.0, "ddpm", 1e-4, 1.0, 7.0)
    dcdp = pnpkit.get_manager().get("solver", "dcdp").factory(preset="phase-retrieval")
    assert (dcdp.iterations, dcdp.tau, dcdp.lr, dcdp.t_start, dcdp.t_end,
            dcdp.lr_reference_entries) == (200, 100, 500.0, 1000, 20, 3 * 384 * 384)


def test_solvers_are_typed_with_the_core_interfaces(all_plugins):
    import typing

    import pnpkit
    from pnpkit.operators import Operator
    from pnpkit.priors import Prior
    from pnpkit.solvers import IterativeSolver, SolveContext

    solvers = pnpkit.get_manager().components["solver"]
    assert {"hqs", "admm", "pgd", "pinv", "dcdp", "reddiff", "projdiff", "msdm-dirac", "dps"} <= set(solvers)
    for name, comp in solvers.items():
        cls = comp.factory
        hints = typing.get_type_hints(cls.solve)
        assert hints["operator"] is Operator and hints["prior"] is Prior, name
        if issubclass(cls, IterativeSolver):
            for method in (cls.setup, cls.step):
                assert typing.get_type_hints(method)["ctx"] is SolveContext, name
    ctx_hints = typing.get_type_hints(SolveContext.__init__)
    assert ctx_hints["operator"] is Operator and ctx_hints["prior"] is Prior
    assert isinstance(toy_problem()[0], Operator)


def test_result_repr_is_one_short_line() -> None:
    from pnpkit.solvers import HQS
    from pnpkit.testing import TikhonovPrior, toy_problem

    op, _, x, y = toy_problem(n=16, m=10)
    res = HQS(iterations=3).solve(y, op, TikhonovPrior(lam=0.1))
    text = repr(res)
    assert "\n" not in text and len(text) < 200, text
    assert text.startswith("Result(solver='hqs', x=(1, 1, 16) float64, iterations=3, nfe=")
    assert "residual=" in text and "tensor(" not in text
