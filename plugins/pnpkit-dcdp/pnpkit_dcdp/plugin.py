"""Registers the DCDP solver with pnpkit (imports nothing heavy: the class is a reference).

``presets`` is written out so that listing needs no import of the solver; a test checks it
against ``DCDP.PRESETS``.
"""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    register("dcdp", "pnpkit_dcdp.dcdp:DCDP",
             description="decoupled data consistency + diffusion purification",
             paper="arXiv:2403.06054",
             presets=["box-inpainting", "box-inpainting-noisy", "gaussian-deblur",
                      "gaussian-deblur-noisy", "motion-deblur", "phase-retrieval", "sr4",
                      "sr4-noisy"])
