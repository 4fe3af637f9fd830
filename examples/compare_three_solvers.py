"""
Compare three solvers on one problem
====================================

One measurement, three solvers, side by side: the core's PnP-HQS (a denoiser in a
half-quadratic splitting loop), DCDP version 2 (data consistency, then one Tweedie step of the
diffusion prior) and ProjDiff (projected gradient descent with a truncated diffusion denoiser),
each with the project's default grey prior, against the pseudo-inverse ``A^+ y``. The problem:
4x super-resolution of scikit-image's ``camera`` (held out: the prior never saw it) with a
little noise. Every solver gets the same ``y``, the same prior and the same seed, and is scored
the same way: PSNR / SSIM, network calls (NFE) and time. Measured at the defaults (128 x 128):
``A^+ y`` 23.91 dB, PnP-HQS 21.96 dB (the image sweep's settings, not tuned for this task),
DCDP V2 25.43 dB in 10 network calls, ProjDiff 25.91 dB in 101.

Run it as a script (``python examples/compare_three_solvers.py``) or cell by cell (``# %%``).
``PNPKIT_EXAMPLE_SIZE`` (the picture's side, default 128, a multiple of 4) and
``PNPKIT_EXAMPLE_ITERATIONS`` (every solver's iterations, default: each solver's own) make it
smaller and quicker; ``PNPKIT_EXAMPLE_OUT`` is where it writes (default
``runs/compare-three-solvers``). At the defaults it takes about 30 s on 2 CPU cores.
"""
# ruff: noqa: E402  (gallery style: each cell imports what it introduces)

# %%
# The problem
# -----------
#
# ``camera`` at ``SIZE x SIZE`` in pnpkit's [-1, 1] range, measured by the registered
# ``super-resolution`` operator (bicubic filter, keep one pixel in 4 per axis) with noise
# ``sigma_y = 0.02``. The measurement is drawn once, from a seeded generator.

from __future__ import annotations

import os
from pathlib import Path

import torch

import pnpkit
from pnpkit import operators as ops
from pnpkit.data import sample_item, save_signal
from pnpkit.metrics import psnr, ssim

SIZE = int(os.environ.get("PNPKIT_EXAMPLE_SIZE", "128"))
ITERATIONS = os.environ.get("PNPKIT_EXAMPLE_ITERATIONS")
OUT = Path(os.environ.get("PNPKIT_EXAMPLE_OUT", "runs/compare-three-solvers")).resolve()
OUT.mkdir(parents=True, exist_ok=True)

x = sample_item("camera", size=SIZE, channels=1).signal[None]  # (1, 1, SIZE, SIZE)
op = pnpkit.create("operator", "super-resolution", shape=tuple(x.shape[1:]), factor=4, sigma_y=0.02)
y = ops.measure(op, x, generator=torch.Generator().manual_seed(0))  # (1, 1, SIZE/4, SIZE/4)
prior = pnpkit.create("prior", "default-grey32")
print(f"x {tuple(x.shape)} -> y {tuple(y.shape)}")

# %%
# The solvers
# -----------
#
# Each with its settings for this task: HQS's noise schedule (the image sweep's), DCDP's
# ``sr4`` preset with the Tweedie purification (version 2), ProjDiff's ``sr4-noisy`` preset.
# ``pnpkit show solver NAME`` lists every setting and what each preset sets.

solvers = {
    "PnP-HQS": pnpkit.create("solver", "hqs", iterations=30, stepsize=1.0, sigma=0.4, sigma_end=0.02),
    "DCDP V2": pnpkit.create("solver", "dcdp", preset="sr4", purification="tweedie"),
    "ProjDiff": pnpkit.create("solver", "projdiff", preset="sr4-noisy"),
}
if ITERATIONS:  # a quick look: every solver on the same small budget
    solvers = {label: type(s).from_dict({**s.to_dict(), "iterations": int(ITERATIONS)})
               for label, s in solvers.items()}

# %%
# Solve and score
# ---------------
#
# The same ``y``, prior and seed for all; ``reference=x`` adds PSNR to each history record.

results = {}
for label, solver in solvers.items():
    prior.reset_nfe()
    results[label] = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(0),
                                  reference=x)
pinv = ops.pseudo_inverse(op, y)

FILES = {"A^+ y": "pinv", "PnP-HQS": "hqs", "DCDP V2": "dcdp", "ProjDiff": "projdiff"}  # PNG names
rows = [("A^+ y", pinv, 0, 0.0)] + [(label, r.x, r.nfe, r.wall_time) for label, r in results.items()]
print(f"{'solver':<10} {'PSNR':>7} {'SSIM':>6} {'NFE':>5} {'time':>7}")
scores = {}
for label, estimate, nfe, seconds in rows:
    estimate = estimate.clamp(-1, 1)
    scores[label] = float(psnr(estimate, x))
    print(f"{label:<10} {scores[label]:7.2f} {float(ssim(estimate, x)):6.3f} {nfe:5d} {seconds:6.1f}s")
    save_signal(estimate[0], OUT / FILES[label], "image")
print(f"reconstructions in {OUT}")

# %%
# Look at them
# ------------
#
# The reference, ``A^+ y`` and the three results in one figure, drawn on a
# ``matplotlib.figure.Figure`` (the caller's plotting backend is left alone). Without
# matplotlib (the core does not need it) the PNGs above are the results.

try:
    from matplotlib.figure import Figure
except ImportError:
    Figure = None
if Figure is not None:
    panels = [("reference", x)] + [(label, estimate) for label, estimate, _, _ in rows]
    fig = Figure(figsize=(2.4 * len(panels), 2.8))
    for i, (label, image) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(image[0, 0].clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(label if label == "reference" else f"{label}\n{scores[label]:.2f} dB", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "comparison.png", dpi=120)
    print(OUT / "comparison.png")
