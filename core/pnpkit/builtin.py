"""The core's own plugin: HQS, ADMM and PGD, registered through the public hooks."""

from __future__ import annotations

from typing import Any

from . import hookimpl


@hookimpl
def register_solvers(register: Any) -> None:
    from .solvers import ADMM, HQS, PGD

    register("hqs", HQS, description="plug-and-play half-quadratic splitting")
    register("admm", ADMM, description="plug-and-play ADMM")
    register("pgd", PGD, description="plug-and-play proximal gradient descent")
