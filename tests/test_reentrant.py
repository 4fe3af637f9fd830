"""One solver instance solves two problems at once: a solver is its configuration only.

Each registered method solver solves two different problems from two threads, the threads
held in lockstep by the callback (a barrier after every iteration), so any per-solve state
kept on the solver would be overwritten by the other solve between two steps. The results
must be exactly those of each problem solved alone.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit.testing import GaussianDiffusionPrior, toy_problem

#: Tiny settings per solver; the two problems differ in every per-solve quantity a solver
#: could keep (signal size, noise, the prior's schedule length, the number of sources).
SOLVERS: dict[str, dict[str, Any]] = {
    "dcdp": dict(iterations=3, tau=5, lr=10.0, t_start=800, purification="tweedie"),
    "reddiff": dict(iterations=10, lr=0.2, order="random"),
    "projdiff": dict(iterations=10, repeats=2, eta=0.5, beta=0.5),
    "msdm-dirac": dict(iterations=20),
    "hqs": dict(iterations=8, sigma=0.2, sigma_end=0.05),
    "admm": dict(iterations=8, sigma=0.2),
    "pgd": dict(iterations=8, stepsize=0.5, sigma=0.1),
}


def _problems(name: str) -> list[tuple[Any, ...]]:
    """Two problems ``(y, operator, prior, reference)``, each with a prior of its own."""
    if name == "msdm-dirac":
        out = []
        for k, seed in ((4, 0), (3, 1)):
            op = pnpkit.create("operator", "mixture", shape=(k, 64))
            x = 0.3 * torch.randn(1, k, 64, generator=torch.Generator().manual_seed(seed))
            out.append((op.A(x), op, GaussianDiffusionPrior(scale=0.3), x))
        return out
    out = []
    for n, m, sigma, seed, steps in ((64, 40, 0.0, 0, 1000), (48, 30, 0.1, 1, 500)):
        op, _, x, y = toy_problem(n=n, m=m, sigma=sigma, seed=seed)
        out.append((y.float(), op, GaussianDiffusionPrior(scale=0.5, steps=steps), x.float()))
    return out


def _solve(solver: Any, problem: tuple[Any, ...], seed: int, callback: Any = None) -> Any:
    y, op, prior, x = problem
    return solver.solve(y, op, prior, generator=torch.Generator().manual_seed(seed),
                        reference=x, callback=callback)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_one_solver_solves_two_problems_at_once(name: str, all_plugins: None) -> None:
    solver = pnpkit.create("solver", name, **SOLVERS[name])
    alone = [_solve(solver, p, seed) for seed, p in enumerate(_problems(name))]

    problems = _problems(name)  # fresh priors: their NFE counters start again at 0
    barrier = threading.Barrier(2, timeout=60)
    results: list[Any] = [None, None]
    errors: list[BaseException] = []

    def lockstep(k: int, x: torch.Tensor, record: dict[str, Any]) -> None:
        barrier.wait()  # both solves are between the same two steps here

    def run(i: int) -> None:
        try:
            results[i] = _solve(solver, problems[i], i, callback=lockstep)
        except BaseException as exc:  # noqa: BLE001 - reported below, with the other thread freed
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"{name} failed when solving two problems at once: {errors[0]!r}"
    for one, both in zip(alone, results, strict=True):
        assert torch.equal(one.x, both.x), f"{name}: a concurrent solve changed the result"
        assert one.nfe == both.nfe and one.iterations == both.iterations
        assert one.history == both.history
