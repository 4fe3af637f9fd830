"""Registers the RED-Diff solver with pnpkit (imports nothing heavy: the class is a reference).

``presets`` is written out so that listing needs no import of the solver; a test checks it
against ``REDDiff.PRESETS``.
"""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    register("reddiff", "pnpkit_reddiff.reddiff:REDDiff",
             description="variational sampling, regularisation by denoising diffusion",
             paper="arXiv:2305.04391",
             presets=["box-inpainting", "gaussian-deblur", "motion-deblur", "phase-retrieval",
                      "quick", "random-inpainting", "sr4"])
