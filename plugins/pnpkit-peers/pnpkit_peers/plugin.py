"""Registers deepinv's samplers and optimisers as pnpkit solvers (imports nothing heavy:
each class is a ``"module:attr"`` reference, imported with deepinv when first used)."""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    s, o = "pnpkit_peers.samplers:", "pnpkit_peers.optim:"
    register("dps", s + "DPS", description="deepinv's diffusion posterior sampling",
             paper="arXiv:2209.14687")
    register("ddrm", s + "DDRM", description="deepinv's DDRM (decomposable operators)",
             paper="arXiv:2201.11793")
    register("diffpir", s + "DiffPIR", description="deepinv's DiffPIR", paper="arXiv:2305.08995")
    register("deepinv-hqs", o + "DeepinvHQS", description="deepinv's plug-and-play HQS")
    register("deepinv-admm", o + "DeepinvADMM", description="deepinv's plug-and-play ADMM")
    register("deepinv-red", o + "DeepinvRED", description="deepinv's RED (gradient descent)")
