"""Registers the ProjDiff solver with pnpkit (imports nothing heavy)."""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    from .projdiff import ProjDiff

    register("projdiff", ProjDiff, description="projected gradient descent with a truncated diffusion denoiser",
             paper="arXiv:2406.06959", presets=sorted(ProjDiff.PRESETS))
