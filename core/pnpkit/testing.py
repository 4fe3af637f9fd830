"""Reusable contract tests and toy problems for plugin authors.

The toy problems need nothing but torch. The contracts (:class:`OperatorContract`,
:class:`PriorContract`, :class:`SolverContract`) live in :mod:`pnpkit.contracts`, which imports
pytest; they are importable from here too, and pytest is imported only when one is asked for.
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

import threading
from typing import Any

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

    def __init__(self, scale: float = 0.5, steps: int = 1000, below_floor: str = "score") -> None:
        super().__init__(linear_alphas_cumprod(steps), prediction_type="epsilon", clip=1.0,
                         below_floor=below_floor)
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


#: The contract classes, imported from :mod:`pnpkit.contracts` (and pytest) on first use.
CONTRACTS = ("OperatorContract", "PriorContract", "SolverContract")


def __getattr__(name: str) -> Any:
    if name in CONTRACTS:
        from . import contracts

        return getattr(contracts, name)
    raise AttributeError(f"module 'pnpkit.testing' has no attribute {name!r}")
