"""Registers the operators and the phase-retrieval metrics with pnpkit. Imports nothing heavy:
each factory is a ``"module:attr"`` reference, imported (with deepinv) when first used, and so
is each operator's ``signal_shape`` rule (:mod:`pnpkit_operators.shapes`, the signal shape that
gives a measurement shape; :func:`pnpkit.operators.infer_signal_shape` reads it)."""

from __future__ import annotations

from typing import Any

import pnpkit

#: where every operator factory lives (a reference prefix: nothing is imported to register)
FACTORIES = "pnpkit_operators.factories:"
#: the operators built from the user's files (a kernel, a mask)
FILES = "pnpkit_operators.files:"
#: where every operator's signal-shape rule lives
SHAPES = "pnpkit_operators.shapes:"


@pnpkit.hookimpl
def register_operators(register: Any) -> None:
    register("super-resolution", FACTORIES + "super_resolution",
             signal_shape=SHAPES + "super_resolution", linear=True, projection="exact (circular)",
             description="bicubic downsampling by 4 (deepinv Downsampling)")
    register("box-inpainting", FACTORIES + "box_inpainting",
             signal_shape=SHAPES + "box_inpainting", linear=True, projection="exact",
             description="missing box, 100x100 at [100:200, 100:200] of 256x256 as DCDP (deepinv Inpainting)")
    register("sr-avgpool", FACTORIES + "sr_avgpool",
             signal_shape=SHAPES + "sr_avgpool", linear=True, projection="exact",
             description="average pooling by 4, decomposable (DDRM, ProjDiff; DecomposablePhysics)")
    register("separable-gaussian-blur", FACTORIES + "separable_gaussian_blur",
             signal_shape=SHAPES + "separable_gaussian_blur", linear=True, projection="exact",
             description="separable zero-boundary Gaussian blur, decomposable (DDRM, ProjDiff)")
    register("random-inpainting", FACTORIES + "random_inpainting",
             signal_shape=SHAPES + "random_inpainting", linear=True, projection="exact",
             description="seeded random 50% of pixels/samples missing (deepinv Inpainting)")
    register("gaussian-deblur", FACTORIES + "gaussian_deblur",
             signal_shape=SHAPES + "gaussian_deblur", linear=True,
             projection="iterative (reflect), exact (circular)",
             description="Gaussian blur, std 3 / size 61 at 256x256 (deepinv Blur)")
    register("motion-deblur", FACTORIES + "motion_deblur",
             signal_shape=SHAPES + "motion_deblur", linear=True,
             projection="iterative (reflect), exact (circular)",
             description="seeded motion blur, size 61 at 256x256 (deepinv MotionBlurGenerator)")
    register("phase-retrieval", FACTORIES + "phase_retrieval",
             signal_shape=SHAPES + "phase_retrieval", linear=False,
             projection="error-reduction step (not exact)",
             description="|FFT| of the 2x zero-padded signal (nonlinear)")
    register("denoising", FACTORIES + "denoising",
             signal_shape=SHAPES + "denoising", linear=True, projection="exact",
             description="identity plus Gaussian noise (deepinv Denoising)")
    register("compressed-sensing", FACTORIES + "compressed_sensing",
             signal_shape=SHAPES + "compressed_sensing", linear=True, projection="exact",
             description="seeded Gaussian matrix, 25% measurements (deepinv CompressedSensing)")
    register("mixture", FACTORIES + "mixture",
             signal_shape=SHAPES + "mixture", linear=True, projection="exact",
             description="audio source separation: y = sum of the K source channels")
    register("source-masking", FACTORIES + "source_masking",
             signal_shape=SHAPES + "source_masking", linear=True, projection="exact",
             description="partial generation: the known stems (channels) are observed")
    register("blur", FILES + "blur", signal_shape=SHAPES + "blur", linear=True,
             projection="iterative (reflect), exact (circular)",
             description="blur by a given kernel: kernel = \"psf.png\" or \"psf.npy\" (normalised to sum 1)")
    register("inpainting", FILES + "inpainting", signal_shape=SHAPES + "inpainting", linear=True,
             projection="exact", description="given mask: mask = \"mask.png\" (white = observed)")


@pnpkit.hookimpl
def register_metrics(register: Any) -> None:
    """Phase retrieval scored up to its trivial ambiguities (x, -x and their 180-degree rotations)."""
    register("psnr_pr", "pnpkit_operators.metrics:psnr_pr",
             description="PSNR of the best of x, -x and their 180-degree rotations (phase retrieval)")
    register("ssim_pr", "pnpkit_operators.metrics:ssim_pr",
             description="SSIM of the twin psnr_pr scores (phase retrieval)")
