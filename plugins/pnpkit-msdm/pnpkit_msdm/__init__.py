"""The MSDM "Dirac" separation sampler (multi-source diffusion models) for pnpkit."""

from .dirac import MSDMDirac

__all__ = ["MSDMDirac"]
