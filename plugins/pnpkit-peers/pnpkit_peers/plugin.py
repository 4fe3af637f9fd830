"""Registers deepinv's samplers and optimisers as pnpkit solvers (imports nothing heavy)."""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    from .samplers import DDRM, DPS, DiffPIR
    from .optim import DeepinvADMM, DeepinvHQS, DeepinvRED

    register("dps", DPS, description="deepinv's diffusion posterior sampling", paper="arXiv:2209.14687")
    register("ddrm", DDRM, description="deepinv's DDRM (decomposable operators)", paper="arXiv:2201.11793")
    register("diffpir", DiffPIR, description="deepinv's DiffPIR", paper="arXiv:2305.08995")
    register("deepinv-hqs", DeepinvHQS, description="deepinv's plug-and-play HQS")
    register("deepinv-admm", DeepinvADMM, description="deepinv's plug-and-play ADMM")
    register("deepinv-red", DeepinvRED, description="deepinv's RED (gradient descent)")
