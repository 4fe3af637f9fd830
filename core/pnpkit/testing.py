"""Reusable contract tests and toy problems for plugin authors.

Subclass a contract in your package's tests and provide its fixtures::

    from pnpkit.testing import OperatorContract

    class TestMyOperator(OperatorContract):
        @pytest.fixture
        def operator(self):
            return MyOperator(size=16)

        @pytest.fixture
        def signal(self):
            return torch.rand(2, 1, 16, 16) * 2 - 1

Every ``test_*`` method of the contract then runs against your component. Toy problems with
closed-form answers (:func:`toy_problem`, :class:`GaussianDiffusionPrior`) need no network.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from typing import Any

import pytest
import torch
from torch import Tensor

from . import operators as ops
from .operators import MatrixOperator
from .priors import DenoiserPrior, DiffusionPrior, linear_alphas_cumprod
from .solvers.base import Result, Solver


class TikhonovPrior(DenoiserPrior):
    """The prior ``g(x) = lam/2 ||x||^2``: its MAP denoiser is ``x / (1 + lam sigma^2)``."""

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        self.nfe += 1
        return x / (1 + self.lam * float(sigma) ** 2)


class GaussianDiffusionPrior(DiffusionPrior):
    """The exact diffusion model of data ``x0 ~ N(0, s^2 I)`` on the papers' linear schedule.

    Its noise predictor is the true posterior mean
    ``E[eps | x_t] = sqrt(1 - abar) x_t / (abar s^2 + 1 - abar)``, so solvers can be tested
    on any signal shape (images or audio) without a trained network.
    """

    def __init__(self, scale: float = 0.5, steps: int = 1000) -> None:
        super().__init__(linear_alphas_cumprod(steps), prediction_type="epsilon", clip=1.0)
        self.scale = scale

    def network(self, x_t: Tensor, t: Tensor) -> Tensor:
        a = self.abar(t, x_t)
        return (1 - a).sqrt() * x_t / (a * self.scale**2 + 1 - a)


def toy_problem(n: int = 16, m: int = 10, sigma: float = 0.0, seed: int = 0,
                lam: float = 1.0) -> tuple[MatrixOperator, TikhonovPrior, Tensor, Tensor]:
    """A small underdetermined linear problem: ``(operator, prior, x_true, y)``.

    ``A`` is an (m, n) Gaussian matrix scaled to spectral norm 1, signals are (1, 1, n) in
    float64 so closed-form solutions can be compared to machine precision.
    """
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, n, generator=g, dtype=torch.float64)
    a = a / torch.linalg.matrix_norm(a, ord=2)
    op = MatrixOperator(a, shape=(1, n), sigma=sigma)
    x = torch.randn(1, 1, n, generator=g, dtype=torch.float64).clamp(-1, 1)
    y = ops.measure(op, x, generator=g)
    return op, TikhonovPrior(lam), x, y


def solve_in_lockstep(solver: Solver, problems: list[dict[str, Any]], timeout: float = 60.0) -> list[Result]:
    """Solve every problem with the one ``solver`` instance, each in a thread of its own.

    A callback holds the threads in lockstep (a barrier after every iteration), so per-solve
    state kept on the solver would be overwritten by another solve between two steps: with
    no such state the results are exactly those of each problem solved alone.

    :param Solver solver: the instance every thread uses.
    :param list problems: ``solve`` keyword arguments per problem (``y``, ``operator``,
        ``prior``, ``generator``...; no ``callback``). Give each its own prior: a prior
        counts NFE on itself, shared by two solves it counts both.
    :param float timeout: seconds a thread waits for the others at the barrier.
    :raises AssertionError: when a solve raises (its exception chained).
    """
    barrier = threading.Barrier(len(problems), timeout=timeout)
    results: list[Any] = [None] * len(problems)
    errors: list[BaseException] = []

    def lockstep(k: int, x: Tensor, record: dict[str, Any]) -> None:
        barrier.wait()  # every solve is between the same two steps here

    def run(i: int) -> None:
        try:
            results[i] = solver.solve(**problems[i], callback=lockstep)
        except BaseException as exc:  # reported below, the other threads freed
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError(f"{solver.name} failed solving {len(problems)} problems at once: "
                             f"{errors[0]!r}") from errors[0]
    return results


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
    """What every prior must do. Fixtures: ``prior``, ``signal`` (shaped as the prior's data)."""

    def test_denoise_keeps_shape_and_counts_nfe(self, prior: Any, signal: Tensor) -> None:
        before = prior.nfe
        with torch.no_grad():
            out = prior.denoise(signal + 0.1 * torch.randn_like(signal), 0.1)
        assert out.shape == signal.shape and out.dtype == signal.dtype
        assert torch.isfinite(out).all()
        assert prior.nfe > before, "a prior must count its network evaluations in .nfe"

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

    Besides running, determinism and the config round trip, it checks that one instance
    solves two problems at once (:func:`solve_in_lockstep`): keep per-solve state in the
    ``state`` ``setup`` returns, never on ``self``."""

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

    def test_unknown_setting_is_rejected(self, solver: Solver) -> None:
        bad = dict(solver.to_dict(), not_a_setting=1)
        with pytest.raises(TypeError, match="unknown setting 'not_a_setting'"):
            type(solver).from_dict(bad)
