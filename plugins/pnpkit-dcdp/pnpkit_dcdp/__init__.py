"""Decoupled data consistency with diffusion purification (DCDP) as a pnpkit solver."""

from .dcdp import DCDP, linear_schedule

__all__ = ["DCDP", "linear_schedule"]
