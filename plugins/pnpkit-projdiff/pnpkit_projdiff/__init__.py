"""ProjDiff (projected gradient descent with a diffusion denoiser) for pnpkit."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DecomposableSpectral", "FFTSpectral", "ProjDiff", "Spectral", "ddpm_timesteps", "decomposable",
           "equivalent_noise_std", "fourier", "karras_sigmas", "range_gain", "spectral_of",
           "truncated_projection"]


def __getattr__(name: str) -> Any:
    # Imported on first access: pnpkit imports this package (for its plugin module) to list
    # plugins, and that must not import torch.
    if name in __all__:
        return getattr(importlib.import_module(".projdiff", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
