"""Forward operators for pnpkit, built on deepinv physics.

The registered operators (``pnpkit plugins`` lists them) are built by the factories in
:mod:`pnpkit_operators.factories`; the classes below are importable from here, deepinv being
imported only when one of them is first used::

    from pnpkit_operators import LatentOperator, SuperResolution
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first access: importing this package
#: must stay cheap, it is imported when pnpkit lists its plugins)
_LAZY = {
    "SuperResolution": "super_resolution",
    "MaskInpainting": "inpainting",
    "box_mask": "inpainting",
    "random_mask": "inpainting",
    "ConvolutionBlur": "deblur",
    "CircularBlur": "deblur",
    "gaussian_kernel": "deblur",
    "motion_kernel": "deblur",
    "kernel_std": "deblur",
    "FourierPhaseRetrieval": "phase_retrieval",
    "Denoising": "denoising",
    "CompressedSensing": "compressed_sensing",
    "Mixture": "mixture",
    "SourceMasking": "source_masking",
    "LatentOperator": "latent",
    "AveragePoolingSR": "decomposable",
    "SeparableBlur": "decomposable",
    "conv_matrix": "decomposable",
}

__all__ = sorted(_LAZY) + ["factories"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name == "factories":
        return importlib.import_module(".factories", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
