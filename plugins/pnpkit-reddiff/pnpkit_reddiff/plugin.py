"""Registers the RED-Diff solver with pnpkit (imports nothing heavy)."""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    from .reddiff import REDDiff

    register("reddiff", REDDiff, description="variational sampling, regularisation by denoising diffusion",
             paper="arXiv:2305.04391", presets=sorted(REDDiff.PRESETS))
