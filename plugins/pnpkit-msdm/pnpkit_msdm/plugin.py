"""Registers the MSDM Dirac separation sampler and MSDM's metric with pnpkit (imports nothing heavy)."""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    register("msdm-dirac", "pnpkit_msdm.dirac:MSDMDirac",
             description="MSDM Dirac sampler: source separation on the mixture constraint "
                         "(EDM Euler steps of score differences)",
             paper="arXiv:2302.02257")


@pnpkit.hookimpl
def register_metrics(register: Any) -> None:
    register("si_snri_msdm", "pnpkit_msdm.metrics:si_snri_msdm",
             description="MSDM's per-stem SI-SNRi over 4 s windows (2 s hop), silent windows skipped",
             paper="arXiv:2302.02257")
