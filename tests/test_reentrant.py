"""One solver instance solves two problems at once: a solver is its configuration only.

Each registered method solver solves two different problems from two threads, held in
lockstep by the callback (``pnpkit.testing.solve_in_lockstep``: a barrier after every
iteration), so any per-solve state kept on the solver would be overwritten by the other
solve between two steps. The results must be exactly those of each problem solved alone.
The two problems differ in all a solver could keep; ``SolverContract`` runs a lighter
version (one problem, two scalings) for every solver that subclasses it.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import pnpkit
from pnpkit.testing import GaussianDiffusionPrior, solve_in_lockstep, toy_problem

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


def _kwargs(problem: tuple[Any, ...], seed: int) -> dict[str, Any]:
    y, op, prior, x = problem
    return dict(y=y, operator=op, prior=prior, generator=torch.Generator().manual_seed(seed),
                reference=x)


def _solve(solver: Any, problem: tuple[Any, ...], seed: int) -> Any:
    return solver.solve(**_kwargs(problem, seed))


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_one_solver_solves_two_problems_at_once(name: str, all_plugins: None) -> None:
    solver = pnpkit.create("solver", name, **SOLVERS[name])
    alone = [_solve(solver, p, seed) for seed, p in enumerate(_problems(name))]
    # fresh priors: their NFE counters start again at 0
    both = solve_in_lockstep(solver, [_kwargs(p, seed) for seed, p in enumerate(_problems(name))])
    for one, concurrent in zip(alone, both, strict=True):
        assert torch.equal(one.x, concurrent.x), f"{name}: a concurrent solve changed the result"
        assert one.nfe == concurrent.nfe and one.iterations == concurrent.iterations
        assert one.history == concurrent.history
