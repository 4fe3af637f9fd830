"""Phase retrieval's metrics: quality up to the measurement's trivial ambiguities.

Registered by this package's plugin as the pipeline metrics ``psnr_pr`` and ``ssim_pr``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pnpkit.metrics import psnr, ssim


def phase_retrieval_twin(x: Tensor, ref: Tensor) -> Tensor:
    """``x`` up to the trivial ambiguities of Fourier phase retrieval, aligned to ``ref``.

    ``|F(P x)|`` (the operator ``phase-retrieval``, centred zero padding) is the same for
    ``x``, ``-x`` and their rotations by 180 degrees over the spatial axes (the conjugate
    reflection), so no method can tell them apart from the measurement. Per item, the one of
    the four closest to ``ref`` (least squared error) is returned.

    :param torch.Tensor x: estimates (B, C, *spatial).
    :param torch.Tensor ref: references, shaped like ``x``.

    >>> ref = torch.arange(4.0).view(1, 1, 2, 2)
    >>> phase_retrieval_twin(-ref.flip(-1, -2), ref).equal(ref)
    True
    """
    if x.shape != ref.shape:
        raise ValueError(f"estimate shape {tuple(x.shape)} differs from reference shape "
                         f"{tuple(ref.shape)}")
    x = x.detach()
    spatial = tuple(range(2, x.dim()))
    flipped = torch.flip(x, dims=spatial)
    candidates = torch.stack([x, -x, flipped, -flipped])              # (4, B, ...)
    err = (candidates - ref).flatten(2).pow(2).mean(2)                 # (4, B)
    best = err.argmin(0)
    return candidates[best, torch.arange(x.shape[0])]


def psnr_pr(x: Tensor, ref: Tensor) -> Tensor:
    """PSNR up to phase retrieval's trivial ambiguities (:func:`phase_retrieval_twin`), per item."""
    return psnr(phase_retrieval_twin(x, ref), ref)


def ssim_pr(x: Tensor, ref: Tensor) -> Tensor:
    """SSIM of the :func:`phase_retrieval_twin` of ``x`` (the one :func:`psnr_pr` scores), per item."""
    return ssim(phase_retrieval_twin(x, ref), ref)
