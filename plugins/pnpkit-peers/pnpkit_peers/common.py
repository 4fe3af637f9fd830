"""What every peer solver shares: range conversion, seeding, and the Result."""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from pnpkit import operators as ops
from pnpkit.operators import Operator
from pnpkit.priors import Prior
from pnpkit.solvers import Callback, DoesNotApply, Result, SolveContext, Solver


def derived_seed(generator: torch.Generator | None) -> int:
    """A positive int seed drawn from ``generator`` (deepinv's samplers take int seeds)."""
    return int(torch.randint(1, 2**31 - 1, (1,), generator=generator,
                             device=generator.device if generator is not None else "cpu"))


def to_unit_range(y: Tensor, operator: Operator, sigma_floor: float = 0.0) -> tuple[Tensor, Any]:
    """Measurements and operator of the same problem with images in deepinv's [0, 1].

    pnpkit signals are in [-1, 1]; with ``x01 = (x + 1) / 2`` a linear operator gives
    ``y01 = (y + A 1) / 2`` and noise ``sigma / 2``. The returned operator is a copy whose
    noise model carries that level (deepinv's DDRM and DiffPIR read it), at least
    ``sigma_floor`` (pnpkit units).
    """
    if not ops.is_linear(operator):
        raise DoesNotApply(f"{type(operator).__name__} is nonlinear: this deepinv method works "
                           "on [0, 1] images and needs a linear operator to change the range")
    with torch.no_grad():
        ones = torch.ones_like(operator.A_adjoint(y))
        y01 = (y + operator.A(ones)) / 2
    physics = copy.deepcopy(operator)
    sigma = max(ops.noise_sigma(operator), sigma_floor)
    noise = getattr(physics, "noise_model", None)
    if noise is not None and hasattr(noise, "sigma"):
        if isinstance(noise.sigma, Tensor):
            with torch.no_grad():
                level = torch.as_tensor(sigma / 2, dtype=noise.sigma.dtype)
                noise.sigma.data = level.expand_as(noise.sigma).clone()
        else:
            noise.sigma = sigma / 2
    return y01, physics


#: Held while a method that seeds and draws from torch's global generator runs: concurrent
#: solves then take their turns and each gets the numbers it gets alone.
_GLOBAL_RNG = threading.Lock()


@dataclass(kw_only=True)
class PeerSolver(Solver):
    """A deepinv method run once; its history is the final estimate's record."""

    #: deepinv's DDRM and DiffPIR call ``torch.manual_seed(seed)`` and use the global generator.
    global_rng: ClassVar[bool] = False

    def run(self, ctx: SolveContext, seed: int) -> Tensor:
        raise NotImplementedError

    def solve(self, y: Tensor, operator: Operator, prior: Prior, *, x_init: Tensor | None = None,
              generator: torch.Generator | None = None, callback: Callback | None = None,
              reference: Tensor | None = None, progress: bool = False) -> Result:
        ctx = SolveContext(y, operator, prior, generator, reference)
        nfe0 = getattr(prior, "nfe", 0)
        start = time.perf_counter()
        with _GLOBAL_RNG if self.global_rng else contextlib.nullcontext():
            x = self.run(ctx, derived_seed(generator)).detach().to(y.dtype)
        wall = time.perf_counter() - start
        rec = ctx.log(0, x, stage="final")
        if callback is not None:
            callback(0, x, rec)
        return Result(x=x, history=ctx.history, nfe=getattr(prior, "nfe", 0) - nfe0,
                      wall_time=wall, iterations=1, config=self.to_dict())
