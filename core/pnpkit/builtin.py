"""The core's own plugin: HQS, ADMM, PGD and the pseudo-inverse, registered through the public hooks."""

from __future__ import annotations

from typing import Any

from . import hookimpl


@hookimpl
def register_solvers(register: Any) -> None:
    from .solvers import ADMM, HQS, PGD, PseudoInverse

    register("hqs", HQS, description="plug-and-play half-quadratic splitting")
    register("admm", ADMM, description="plug-and-play ADMM")
    register("pgd", PGD, description="plug-and-play proximal gradient descent")
    register("pinv", PseudoInverse, description="the pseudo-inverse A^+ y (baseline, no prior)")
