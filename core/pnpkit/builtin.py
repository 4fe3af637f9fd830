"""The core's own plugin: HQS, ADMM, PGD, the pseudo-inverse and the generic metrics,
registered through the public hooks.

Factories are given as ``"module:attr"`` references: listing plugins imports no torch.
"""

from __future__ import annotations

from typing import Any

from . import hookimpl


@hookimpl
def register_solvers(register: Any) -> None:
    register("hqs", "pnpkit.solvers:HQS", description="plug-and-play half-quadratic splitting")
    register("admm", "pnpkit.solvers:ADMM", description="plug-and-play ADMM")
    register("pgd", "pnpkit.solvers:PGD", description="plug-and-play proximal gradient descent")
    register("pinv", "pnpkit.solvers:PseudoInverse",
             description="the pseudo-inverse A^+ y (baseline, no prior)")


@hookimpl
def register_metrics(register: Any) -> None:
    register("psnr", "pnpkit.metrics:psnr", description="PSNR in dB (signals in [-1, 1])")
    register("ssim", "pnpkit.metrics:ssim", description="SSIM (deepinv's), images")
    register("si_snr", "pnpkit.metrics:si_snr", description="scale-invariant SNR in dB, audio")
    register("si_snri", "pnpkit.metrics:si_snri",
             description="SI-SNR improvement of separated channels over their mixture")
    register("mse", "pnpkit.metrics:mse", description="mean squared error")
