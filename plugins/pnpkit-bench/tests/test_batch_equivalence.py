"""A batch of two different items solves to those items solved one by one, for every solver
a sweep runs in batches (``batch = N``).

Deterministic solvers (pinv, PnP-HQS/ADMM/PGD) are compared as they run. Stochastic solvers
(DPS, DiffPIR, DDRM through pnpkit-peers; RED-Diff, ProjDiff, DCDP V1/V2) draw their noise
for the whole batch at once, so item 2 of a batch cannot see the numbers it sees alone; the
test gives every item of the batch the same noise instead (:func:`same_noise_per_item`:
every draw of shape (2, ...) is one draw of shape (1, ...) repeated), which is exactly the
noise each item gets alone from the same seed. With that noise, each item of the batch must
equal its own solve to float32 round-off: a loss averaged over the batch, a norm over the
batch, a shared step size or early stopping on the batch would all show.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit import operators as ops
from pnpkit.plugins import reset_manager
from pnpkit.testing import GaussianDiffusionPrior

#: (solver, settings, operator, noise, stochastic): tiny problems, few iterations.
CASES: dict[str, tuple[str, dict[str, Any], str, float, bool]] = {
    "pinv": ("pinv", {}, "random-inpainting", 0.0, False),
    "hqs": ("hqs", dict(iterations=6, sigma=0.2, sigma_end=0.05), "super-resolution", 0.05, False),
    "hqs-tol": ("hqs", dict(iterations=60, sigma=0.1, tol=1e-2), "super-resolution", 0.0, False),
    "admm": ("admm", dict(iterations=6, sigma=0.2), "box-inpainting", 0.05, False),
    "pgd": ("pgd", dict(iterations=6, stepsize=0.5, sigma=0.1), "super-resolution", 0.0, False),
    "dps": ("dps", dict(iterations=8, weight=1.0), "super-resolution", 0.0, True),
    "diffpir": ("diffpir", dict(iterations=8), "box-inpainting", 0.05, True),
    "ddrm": ("ddrm", dict(iterations=8), "random-inpainting", 0.05, True),
    "reddiff": ("reddiff", dict(iterations=8, lr=0.2, order="random"), "random-inpainting", 0.0, True),
    "reddiff-sgd": ("reddiff", dict(iterations=8, lr=50.0, optimizer="SGD", sigma_x0=0.05),
                    "super-resolution", 0.05, True),
    "projdiff": ("projdiff", dict(iterations=8, repeats=2, eta=0.5, beta=0.5), "random-inpainting",
                 0.0, True),
    "projdiff-noisy": ("projdiff", dict(iterations=8, repeats=2, eta=0.5, beta=0.5), "box-inpainting",
                       0.05, True),
    "dcdp-v1": ("dcdp", dict(iterations=3, tau=5, lr=10.0, t_start=600, purification="ddim",
                             ddim_steps=3), "super-resolution", 0.0, True),
    "dcdp-v2": ("dcdp", dict(iterations=3, tau=5, lr=10.0, t_start=600, purification="tweedie",
                             early_stop=True), "box-inpainting", 0.05, True),
}

SHAPE = (1, 8, 8)


@pytest.fixture
def installed_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every installed pnpkit plugin, in a fresh plugin manager."""
    monkeypatch.delenv("PNPKIT_LOAD_PLUGINS", raising=False)
    reset_manager()
    yield
    reset_manager()


@contextlib.contextmanager
def same_noise_per_item(batch: int) -> Iterator[None]:
    """Inside, every Gaussian draw whose first dimension is ``batch`` is one draw for a single
    item repeated over the batch: the numbers each item gets alone from the same seed."""
    randn, randn_like, normal_ = torch.randn, torch.randn_like, torch.Tensor.normal_

    def _randn(*size: Any, **kw: Any) -> torch.Tensor:
        shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else tuple(size)
        if len(shape) > 1 and shape[0] == batch:
            return randn((1, *shape[1:]), **kw).repeat(batch, *[1] * (len(shape) - 1))
        return randn(*size, **kw)

    def _randn_like(x: torch.Tensor, **kw: Any) -> torch.Tensor:
        if x.dim() > 1 and x.shape[0] == batch:
            return randn_like(x[:1], **kw).repeat(batch, *[1] * (x.dim() - 1))
        return randn_like(x, **kw)

    def _normal_(self: torch.Tensor, *args: Any, **kw: Any) -> torch.Tensor:
        if self.dim() > 1 and self.shape[0] == batch:
            one = normal_(torch.empty_like(self[:1]), *args, **kw)
            with torch.no_grad():
                return self.copy_(one.expand_as(self))
        return normal_(self, *args, **kw)

    torch.randn, torch.randn_like, torch.Tensor.normal_ = _randn, _randn_like, _normal_  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.randn, torch.randn_like, torch.Tensor.normal_ = randn, randn_like, normal_  # type: ignore[assignment]


def _items() -> list[torch.Tensor]:
    """Two different images in [-1, 1] (one smooth, one rough)."""
    g = torch.Generator().manual_seed(3)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 1, 4, 4, generator=g) * 1.6 - 0.8,
                                             size=SHAPE[1:], mode="bilinear", align_corners=False)
    rough = (0.6 * torch.randn(1, *SHAPE, generator=g)).clamp(-1, 1)
    return [smooth, rough]


def _solve(case: str, x: torch.Tensor, y: torch.Tensor) -> Any:
    name, settings, op_name, noise, _ = CASES[case]
    op = pnpkit.create("operator", op_name, shape=SHAPE, sigma_y=noise)
    solver = pnpkit.create("solver", name, **settings)
    return solver.solve(y, op, GaussianDiffusionPrior(scale=0.5), reference=x,
                        generator=torch.Generator().manual_seed(11))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_batch_of_two_equals_its_items_solved_one_by_one(case: str, installed_plugins: None) -> None:
    _, _, op_name, noise, stochastic = CASES[case]
    op = pnpkit.create("operator", op_name, shape=SHAPE, sigma_y=noise)
    xs = _items()
    ys = [ops.measure(op, x, torch.Generator().manual_seed(i)) for i, x in enumerate(xs)]
    alone = [_solve(case, x, y) for x, y in zip(xs, ys, strict=True)]
    with same_noise_per_item(2) if stochastic else contextlib.nullcontext():
        both = _solve(case, torch.cat(xs), torch.cat(ys))
    assert both.x.shape == (2, *SHAPE)
    assert not torch.allclose(alone[0].x, alone[1].x, atol=1e-2), "the two items must differ"
    for i, one in enumerate(alone):
        err = float((both.x[i] - one.x[0]).abs().max())
        assert err < 2e-4, f"{case}: item {i} of the batch is {err:.3g} from its solve alone"
        assert both.item_diverged_at[i:i + 1] in ([], [None])
    if case == "hqs-tol":  # the items converge at different iterations; each stops on its own
        assert alone[0].iterations != alone[1].iterations
        assert both.iterations == max(a.iterations for a in alone)


def test_same_noise_per_item_gives_each_item_the_numbers_it_gets_alone() -> None:
    alone = torch.randn(1, 3, 4, generator=torch.Generator().manual_seed(5))
    with same_noise_per_item(2):
        batch = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(5))
        torch.manual_seed(5)
        like = torch.randn_like(torch.zeros(2, 3, 4))
        filled = torch.empty(2, 3, 4).normal_(generator=torch.Generator().manual_seed(5))
        other = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(batch[0], alone[0]) and torch.equal(batch[1], alone[0])
    assert torch.equal(filled[1], alone[0])
    assert torch.equal(other, torch.randn(3, 4, generator=torch.Generator().manual_seed(5)))
    torch.manual_seed(5)
    assert torch.equal(like[1], torch.randn_like(torch.zeros(1, 3, 4))[0])


def test_an_item_that_diverges_in_a_batch_keeps_its_row_and_the_other_goes_on() -> None:
    """The shared loop stops a diverging item alone (its last finite iterate), not the batch."""
    from pnpkit.solvers.base import IterativeSolver
    from pnpkit.testing import MatrixOperator, TikhonovPrior

    class Blows(IterativeSolver):
        name = "blows"

        def step(self, ctx: Any, state: dict[str, Any], k: int) -> dict[str, Any]:
            x = state["x"] * 0.5
            if k == 2 and x.shape[0] > 1:  # item 1 becomes non-finite at iteration 2
                x = x.clone()
                x[1] = float("nan")
            return {**state, "x": x}

    x0 = torch.ones(2, 1, 4)
    op = MatrixOperator(torch.eye(4), shape=(1, 4))
    res = Blows(iterations=5).solve(x0.clone(), op, TikhonovPrior(1.0), x_init=x0.clone())
    assert res.item_diverged_at == [None, 2] and res.diverged_at == 2
    assert res.iterations == 5
    assert torch.allclose(res.x[0], torch.full((1, 4), 0.5**5))
    assert torch.allclose(res.x[1], torch.full((1, 4), 0.5**2))  # its iterate before iteration 2
    assert all(torch.isfinite(torch.tensor(r["objective"])) for r in res.history)
    alone = Blows(iterations=5).solve(x0[:1].clone(), op, TikhonovPrior(1.0), x_init=x0[:1].clone())
    assert alone.diverged_at is None and torch.equal(alone.x[0], res.x[0])
