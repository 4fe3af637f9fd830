"""Registers the DCDP solver with pnpkit (imports nothing heavy)."""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    from .dcdp import DCDP

    register("dcdp", DCDP, description="decoupled data consistency + diffusion purification",
             paper="arXiv:2403.06054", presets=sorted(DCDP.PRESETS))
