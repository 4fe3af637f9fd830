"""The contract tests plugin authors subclass (they import pytest; see :mod:`pnpkit.testing`)."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
import torch
from torch import Tensor

from . import operators as ops
from .priors import DiffusionPrior
from .solvers.base import Result, Solver
from .testing import GaussianDiffusionPrior, solve_in_lockstep, toy_problem

__all__ = ["OperatorContract", "PriorContract", "SolverContract"]


def _inner(u: Tensor, v: Tensor) -> Tensor:
    return (u * v).flatten(1).sum(1)


class OperatorContract:
    """What every operator must do. Fixtures: ``operator``, ``signal`` (B, C, *spatial)."""

    rtol = 1e-4

    def test_measurement_is_batched_and_keeps_dtype(self, operator: Any, signal: Tensor) -> None:
        y = operator.A(signal)
        assert y.shape[0] == signal.shape[0], "A must keep the batch axis"
        assert y.dtype == signal.dtype or (y.is_complex() and not signal.is_complex())
        assert y.device == signal.device

    def test_items_are_independent(self, operator: Any, signal: Tensor) -> None:
        together = operator.A(signal)
        alone = torch.cat([operator.A(signal[i:i + 1]) for i in range(signal.shape[0])])
        torch.testing.assert_close(together, alone, rtol=self.rtol, atol=1e-5)

    def test_adjointness(self, operator: Any, signal: Tensor) -> None:
        if not ops.is_linear(operator):
            pytest.skip("nonlinear operator")
        y = operator.A(signal)
        g = torch.Generator().manual_seed(0)
        v = torch.randn(y.shape, generator=g, dtype=y.dtype)
        lhs, rhs = _inner(operator.A(signal), v), _inner(signal, operator.A_adjoint(v))
        torch.testing.assert_close(lhs, rhs, rtol=1e-3, atol=1e-3 * float(lhs.abs().max()))

    def test_pseudo_inverse_shape(self, operator: Any, signal: Tensor) -> None:
        if getattr(operator, "A_dagger", None) is None:
            pytest.skip("no A_dagger")
        assert ops.pseudo_inverse(operator, operator.A(signal)).shape == signal.shape

    def test_projection_is_measurement_consistent(self, operator: Any, signal: Tensor) -> None:
        if not ops.is_linear(operator):
            pytest.skip("nonlinear operator")
        y = operator.A(signal)
        start = torch.zeros_like(signal)
        x = ops.project(operator, start, y)
        assert x.shape == signal.shape
        err = float(ops.residual(operator, x, y).max())
        assert err < getattr(self, "projection_tol", 1e-2), f"||A P(x) - y|| / ||y|| = {err}"

    def test_data_gradient_matches_autograd(self, operator: Any, signal: Tensor) -> None:
        y = ops.measure(operator, signal)
        x = (0.5 * signal).clone()
        g = ops.data_gradient(operator, x, y)
        xg = x.clone().requires_grad_(True)
        (ref,) = torch.autograd.grad(ops.data_fidelity(operator, xg, y).sum(), xg)
        torch.testing.assert_close(g, ref, rtol=1e-3, atol=1e-4 * float(ref.abs().max() + 1))


class PriorContract:
    """What every prior must do. Fixtures: ``prior``, ``signal`` (shaped as the prior's data).

    NFE counting is exact: one ``denoise`` call counts :attr:`denoise_nfe` evaluations (1 by
    default; a denoiser that runs its network several times per call sets it), and a
    :class:`~pnpkit.priors.DiffusionPrior` counts one per ``eps`` call (so one per ``x0`` and
    ``denoise``, ``n`` per ``ddim`` of ``n`` steps). ``DiffusionPrior.eps`` already counts:
    a subclass that counts again in ``network`` counts every evaluation twice, and fails here.
    """

    #: Network evaluations one ``denoise`` call makes.
    denoise_nfe = 1

    def test_denoise_keeps_shape_and_counts_nfe(self, prior: Any, signal: Tensor) -> None:
        before = prior.nfe
        with torch.no_grad():
            out = prior.denoise(signal + 0.1 * torch.randn_like(signal), 0.1)
        assert out.shape == signal.shape and out.dtype == signal.dtype
        assert torch.isfinite(out).all()
        counted = prior.nfe - before
        assert counted > 0, "a prior must count its network evaluations in .nfe"
        assert counted == self.denoise_nfe, (
            f"one denoise call counted {counted} network evaluations, expected "
            f"{self.denoise_nfe}: count each evaluation once (a DiffusionPrior counts in eps, "
            f"never in network); set denoise_nfe on the test class if denoise really makes "
            f"{counted}")

    def test_diffusion_counts_each_evaluation_once(self, prior: Any, signal: Tensor) -> None:
        if not isinstance(prior, DiffusionPrior):
            pytest.skip("not a diffusion prior")
        t = prior.num_timesteps // 2
        x_t = prior.noise(signal, t, generator=torch.Generator().manual_seed(0))
        calls = {"eps": lambda: prior.eps(x_t, t), "x0": lambda: prior.x0(x_t, t),
                 "denoise": lambda: prior.denoise(signal, 0.1), "ddim": lambda: prior.ddim(x_t, t, steps=3)}
        for name, call in calls.items():
            before = prior.nfe
            with torch.no_grad():
                call()
            expected = min(3, t) if name == "ddim" else 1
            assert prior.nfe - before == expected, (
                f"{name} counted {prior.nfe - before} network evaluations, expected {expected}: "
                f"DiffusionPrior.eps already counts each one; do not count again in network")

    def test_diffusion_interface(self, prior: Any, signal: Tensor) -> None:
        if not isinstance(prior, DiffusionPrior):
            pytest.skip("not a diffusion prior")
        a = prior.alphas_cumprod
        assert a.dim() == 1 and bool((a[1:] <= a[:-1]).all()) and 0 < float(a[-1]) < float(a[0]) <= 1
        g = torch.Generator().manual_seed(0)
        t = prior.num_timesteps // 2
        with torch.no_grad():
            x_t = prior.noise(signal, t, generator=g)
            assert prior.eps(x_t, t).shape == signal.shape
            assert prior.x0(x_t, t).shape == signal.shape
            per_item = prior.x0(x_t, torch.full((signal.shape[0],), t))
            torch.testing.assert_close(per_item, prior.x0(x_t, t))
            one = prior.ddim(x_t, t, steps=3)
            assert one.shape == signal.shape
            torch.testing.assert_close(one, prior.ddim(x_t, t, steps=3), msg="DDIM(eta=0) "
                                       "must be deterministic")

    def test_forward_noising_statistics(self, prior: Any, signal: Tensor) -> None:
        if not isinstance(prior, DiffusionPrior):
            pytest.skip("not a diffusion prior")
        t = prior.num_timesteps - 1
        g = torch.Generator().manual_seed(1)
        x = torch.zeros(64, *signal.shape[1:], dtype=signal.dtype)
        z = prior.noise(x, t, generator=g)
        std = math.sqrt(1 - float(prior.alphas_cumprod[t]))
        assert abs(float(z.std()) - std) < 0.1 * std


class SolverContract:
    """What every solver must do. Fixture: ``solver`` (an instance); override ``problem``
    (``(operator, prior, x_true, y)``) to test on a problem of your own.

    The default ``problem`` is :func:`~pnpkit.testing.toy_problem` ``(n=64, m=40,
    sigma=0.0)`` in float32: a noiseless (40, 64) Gaussian matrix of spectral norm 1
    (:class:`~pnpkit.operators.MatrixOperator`, linear, no ``prox_l2``) on signals shaped
    (1, 1, 64), with the exact diffusion prior of Gaussian data
    :class:`~pnpkit.testing.GaussianDiffusionPrior` ``(scale=0.6)`` (a
    :class:`~pnpkit.priors.DiffusionPrior`, and so a denoiser too). A solver that needs
    another operator (one with ``prox_l2``, a decomposable one) or an image-shaped signal
    overrides ``problem``.

    Besides running, determinism and the config round trip, it checks that one instance
    solves two problems at once (:func:`solve_in_lockstep`): keep per-solve state in the
    ``state`` ``setup`` returns, never on ``self``; and that ``solve`` gives the same result
    inside ``torch.no_grad()``: ``solve`` does not run under ``no_grad`` for you, and a solver
    that needs autograd (an optimiser step, a gradient through the prior) turns it on itself
    with ``torch.enable_grad()``."""

    @pytest.fixture
    def problem(self) -> tuple[Any, Any, Tensor, Tensor]:
        op, _, x, y = toy_problem(n=64, m=40, sigma=0.0)
        return op, GaussianDiffusionPrior(scale=0.6), x.float(), y.float()

    def _solve(self, solver: Solver, problem: tuple[Any, Any, Tensor, Tensor], seed: int) -> Result:
        op, prior, x, y = problem
        return solver.solve(y, op, prior, generator=torch.Generator().manual_seed(seed),
                            reference=x)

    def test_runs_and_reports(self, solver: Solver, problem: Any) -> None:
        res = self._solve(solver, problem, 0)
        assert res.x.shape == problem[2].shape
        assert torch.isfinite(res.x).all()
        assert res.history and {"iteration", "stage", "objective", "residual"} <= set(res.history[0])
        assert res.wall_time > 0 and res.nfe >= 0 and res.iterations >= 1

    def test_deterministic_under_seed(self, solver: Solver, problem: Any) -> None:
        a, b = self._solve(solver, problem, 7), self._solve(solver, problem, 7)
        torch.testing.assert_close(a.x, b.x, rtol=0, atol=0)

    def test_config_round_trip(self, solver: Solver, problem: Any) -> None:
        cls = type(solver)
        again = cls.from_json(json.dumps(solver.to_dict()))
        assert again.to_dict() == solver.to_dict()
        torch.testing.assert_close(self._solve(again, problem, 3).x, self._solve(solver, problem, 3).x)
        res = self._solve(solver, problem, 3)
        assert res.config == solver.to_dict()

    def test_one_instance_solves_two_problems_at_once(self, solver: Solver, problem: Any) -> None:
        op, prior, x, y = problem
        problems = [dict(y=y, operator=op, reference=x), dict(y=0.5 * y, operator=op, reference=x)]

        def fresh() -> list[dict[str, Any]]:  # a prior and a generator of its own per solve
            return [dict(p, prior=copy.deepcopy(prior), generator=torch.Generator().manual_seed(i))
                    for i, p in enumerate(problems)]

        alone = [solver.solve(**p) for p in fresh()]
        for one, both in zip(alone, solve_in_lockstep(solver, fresh()), strict=True):
            assert torch.equal(one.x, both.x), "a concurrent solve changed the result"
            assert one.nfe == both.nfe and one.history == both.history

    def test_same_result_under_no_grad(self, solver: Solver, problem: Any) -> None:
        free = self._solve(solver, problem, 5)
        with torch.no_grad():
            under = self._solve(solver, problem, 5)
        torch.testing.assert_close(under.x, free.x, rtol=0, atol=0, msg="solve gave another "
                                   "result inside torch.no_grad(); wrap the steps that need "
                                   "autograd in torch.enable_grad()")
        assert not free.x.requires_grad, "Result.x must be detached"

    def test_unknown_setting_is_rejected(self, solver: Solver) -> None:
        bad = dict(solver.to_dict(), not_a_setting=1)
        with pytest.raises(TypeError, match="unknown setting 'not_a_setting'"):
            type(solver).from_dict(bad)
