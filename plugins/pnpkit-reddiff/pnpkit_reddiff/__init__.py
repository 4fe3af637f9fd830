"""RED-Diff (variational diffusion sampling with regularisation by denoising) for pnpkit."""

from .reddiff import WEIGHTINGS, REDDiff, timestep_order

__all__ = ["REDDiff", "WEIGHTINGS", "timestep_order"]
