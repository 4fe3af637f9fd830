"""The pseudo-inverse ``A^+ y``: the baseline every comparison reports."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import operators as ops
from ..operators import Operator
from ..priors import Prior
from .base import Callback, Result, SolveContext, Solver, check_finite


@dataclass(kw_only=True)
class PseudoInverse(Solver):
    """Return ``A^+ y`` (the operator's ``A_dagger``), clipped to the signal range.

    No prior and no network: it is the floor a restoration method has to beat.

    :param float clip: clip the estimate to [-clip, clip] (0: no clipping).

    >>> from pnpkit.testing import toy_problem
    >>> op, prior, x, y = toy_problem()
    >>> PseudoInverse().solve(y, op, prior).nfe
    0
    """

    name = "pinv"
    clip: float = 1.0

    def solve(self, y: Tensor, operator: Operator, prior: Prior, *, x_init: Tensor | None = None,
              generator: torch.Generator | None = None, callback: Callback | None = None,
              reference: Tensor | None = None, progress: bool = False) -> Result:
        check_finite(y, f"{self.name}: the measurement y")
        ctx = SolveContext(y, operator, prior, generator, reference)
        start = time.perf_counter()
        x = ops.pseudo_inverse(operator, y)
        if self.clip > 0:
            x = x.clamp(-self.clip, self.clip)
        wall = time.perf_counter() - start
        rec = ctx.log(0, x, stage="final")
        if callback is not None:
            callback(0, x, rec)
        return Result(x=x, history=ctx.history, nfe=0, wall_time=wall, iterations=1,
                      config=self.to_dict())
