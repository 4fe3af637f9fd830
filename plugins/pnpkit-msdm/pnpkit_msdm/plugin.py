"""Registers the MSDM Dirac separation sampler with pnpkit (imports nothing heavy)."""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    from .dirac import MSDMDirac

    register("msdm-dirac", MSDMDirac,
             description="MSDM Dirac sampler: source separation on the mixture constraint "
                         "(EDM Euler steps of score differences)",
             paper="arXiv:2302.02257")
