"""ProjDiff (projected gradient descent with a diffusion denoiser) for pnpkit."""

from .projdiff import ProjDiff, equivalent_noise_std, karras_sigmas

__all__ = ["ProjDiff", "equivalent_noise_std", "karras_sigmas"]
