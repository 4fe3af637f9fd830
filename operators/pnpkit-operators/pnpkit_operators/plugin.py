"""Registers the operators with pnpkit. Imports nothing heavy: deepinv is imported by the
factories when an operator is built."""

from __future__ import annotations

from typing import Any

import pnpkit


@pnpkit.hookimpl
def register_operators(register: Any) -> None:
    from . import factories as f

    register("super-resolution", f.super_resolution, linear=True, projection="exact (circular)",
             description="bicubic downsampling by 4 (deepinv Downsampling)")
    register("box-inpainting", f.box_inpainting, linear=True, projection="exact",
             description="centred missing box, 100x100 at 256x256 (deepinv Inpainting)")
    register("random-inpainting", f.random_inpainting, linear=True, projection="exact",
             description="seeded random 50% of pixels/samples missing (deepinv Inpainting)")
    register("gaussian-deblur", f.gaussian_deblur, linear=True,
             projection="iterative (reflect), exact (circular)",
             description="Gaussian blur, std 3 / size 61 at 256x256 (deepinv Blur)")
    register("motion-deblur", f.motion_deblur, linear=True,
             projection="iterative (reflect), exact (circular)",
             description="seeded motion blur, size 61 at 256x256 (deepinv MotionBlurGenerator)")
    register("phase-retrieval", f.phase_retrieval, linear=False,
             projection="error-reduction step (not exact)",
             description="|FFT| of the 2x zero-padded signal (nonlinear)")
    register("denoising", f.denoising, linear=True, projection="exact",
             description="identity plus Gaussian noise (deepinv Denoising)")
    register("compressed-sensing", f.compressed_sensing, linear=True, projection="exact",
             description="seeded Gaussian matrix, 25% measurements (deepinv CompressedSensing)")
    register("mixture", f.mixture, linear=True, projection="exact",
             description="audio source separation: y = sum of the K source channels")
    register("source-masking", f.source_masking, linear=True, projection="exact",
             description="partial generation: the known stems (channels) are observed")
