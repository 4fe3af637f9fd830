"""Registers the ProjDiff solver with pnpkit (imports nothing heavy: the class is a reference).

``presets`` is written out so that listing needs no import of the solver; a test checks it
against ``ProjDiff.PRESETS``.
"""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    register("projdiff", "pnpkit_projdiff.projdiff:ProjDiff",
             description="projected gradient descent with a truncated diffusion denoiser",
             paper="arXiv:2406.06959",
             presets=["box-inpainting", "box-inpainting-noisy", "gaussian-deblur",
                      "gaussian-deblur-noisy", "phase-retrieval", "phase-retrieval-noisy",
                      "random-inpainting", "random-inpainting-noisy", "separation", "sr4",
                      "sr4-noisy"])
