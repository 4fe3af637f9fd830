"""
Restore your own blurry photo
=============================

You have a blurry picture (``blurry.png``) and the point-spread function that blurred it
(``psf.png``: a small picture of a blurred point; a measured star, a calibration dot, or a
kernel from a deblurring tool). pnpkit restores it at its own size, with the project's
default grey prior, in two ways: from Python, and with ``pnpkit run`` and a TOML file.

Run it as a script (``python examples/restore_your_photo.py``) or cell by cell (``# %%``) in
an editor that knows cells. ``PNPKIT_EXAMPLE_SIZE`` (the picture's width, default 256) and
``PNPKIT_EXAMPLE_ITERATIONS`` (default 30) make it smaller and quicker; ``PNPKIT_EXAMPLE_OUT``
is where it writes (default ``runs/restore-your-photo``). At the default size it takes about
4 minutes on 2 CPU cores (each route: 30 network calls and 30 least-squares blur steps).
"""
# ruff: noqa: E402  (gallery style: each cell imports what it introduces)

# %%
# Make a blurry photo and its PSF
# -------------------------------
#
# Here we make both from scikit-image's ``camera`` (the test split: no shipped prior was
# trained on it), cropped to a 3:4 landscape so nothing is square, blurred by a Gaussian PSF
# and given a little noise (``sigma_y = 0.02`` on pnpkit's [-1, 1] range), then saved as
# 8-bit PNGs as a camera would. With your own photo, skip this cell.

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import skimage.data
import skimage.transform
import torch
from PIL import Image
from torch.nn.functional import conv2d, pad

WIDTH = int(os.environ.get("PNPKIT_EXAMPLE_SIZE", "256"))
ITERATIONS = int(os.environ.get("PNPKIT_EXAMPLE_ITERATIONS", "30"))
OUT = Path(os.environ.get("PNPKIT_EXAMPLE_OUT", "runs/restore-your-photo")).resolve()
SIGMA_Y = 0.02
OUT.mkdir(parents=True, exist_ok=True)

camera = skimage.data.camera()[64:448]  # 384 x 512: a landscape crop
height = WIDTH * 3 // 4
sharp = skimage.transform.resize(camera, (height, WIDTH), anti_aliasing=True)  # in [0, 1]
r = np.arange(-7, 8)
psf = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 2.0 ** 2))  # 15 x 15, std 2 pixels
psf /= psf.sum()
rng = np.random.default_rng(0)
# the blur: the (symmetric) PSF convolved with the picture, its edges reflected
blurred = conv2d(pad(torch.from_numpy(sharp)[None, None].float(), (7, 7, 7, 7), mode="reflect"),
                 torch.from_numpy(psf)[None, None].float())[0, 0].double().numpy()
blurry = blurred + SIGMA_Y / 2 * rng.standard_normal(sharp.shape)
Image.fromarray(np.round(np.clip(blurry, 0, 1) * 255).astype(np.uint8)).save(OUT / "blurry.png")
Image.fromarray(np.round(psf / psf.max() * 255).astype(np.uint8)).save(OUT / "psf.png")
Image.fromarray(np.round(sharp * 255).astype(np.uint8)).save(OUT / "sharp.png")
print(f"wrote {OUT / 'blurry.png'} ({height} x {WIDTH}) and {OUT / 'psf.png'} (15 x 15)")

# %%
# Restore it from Python
# ----------------------
#
# Read the measurement, let the operator say which signal shape gives it (a blur keeps the
# size), build the blur from ``psf.png`` (normalised to sum 1 on reading), the default grey
# prior (a convolutional network trained on 32 x 32 patches: it runs on the whole picture)
# and PnP-HQS (the core's half-quadratic splitting with the prior's network as denoiser).

import pnpkit
from pnpkit.data import load_measurements, save_signal
from pnpkit.metrics import psnr
from pnpkit.operators import infer_signal_shape

(item,) = load_measurements({"measurement": "blurry.png"}, OUT)
y = item.measurement[None]  # (1, 1, H, W) in [-1, 1]
settings = {"kernel": str(OUT / "psf.png"), "sigma_y": SIGMA_Y}
shape = infer_signal_shape(pnpkit.get_manager().get("operator", "blur"), tuple(y.shape[1:]), settings)
blur = pnpkit.create("operator", "blur", shape=shape, **settings)
prior = pnpkit.create("prior", "default-grey32")
solver = pnpkit.create("solver", "hqs", iterations=ITERATIONS, stepsize=1.0, sigma=0.4,
                       sigma_end=0.02)
result = solver.solve(y, blur, prior, generator=torch.Generator().manual_seed(0))
(OUT / "python").mkdir(exist_ok=True)
restored = save_signal(result.x[0].clamp(-1, 1), OUT / "python" / "reconstruction", "image")
reference = load_measurements({"measurement": "sharp.png"}, OUT)[0].measurement[None]
score = float(psnr(result.x.clamp(-1, 1), reference))
print(f"{restored}: {tuple(result.x.shape[-2:])}, PSNR {score:.2f} dB "
      f"(the blurry photo: {float(psnr(y, reference)):.2f} dB), {result.nfe} network calls, "
      f"{result.wall_time:.1f} s")

# %%
# Restore it with ``pnpkit run``
# ------------------------------
#
# The same restoration as a configuration file: ``[data] measurement`` is the photo,
# ``reference`` (optional) adds the scores, ``[operator] sigma_y`` states the noise the photo
# has (none is added). Paths are relative to the TOML file.

config = OUT / "restore.toml"
config.write_text(f"""\
output = "cli"
metrics = ["psnr", "ssim"]

[data]
measurement = "blurry.png"
reference = "sharp.png"

[operator]
name = "blur"
kernel = "psf.png"
sigma_y = {SIGMA_Y}

[prior]
name = "default-grey32"

[solver]
name = "hqs"
iterations = {ITERATIONS}
stepsize = 1.0
sigma = 0.4
sigma_end = 0.02
""")
pnpkit_cli = Path(sys.executable).with_name("pnpkit")
command = [str(pnpkit_cli), "run", str(config), "--overwrite"] if pnpkit_cli.exists() else \
    [sys.executable, "-m", "pnpkit", "run", str(config), "--overwrite"]
subprocess.run(command, check=True)

# %%
# Where to look
# -------------
#
# ``pnpkit run`` writes one folder per measurement, named after the file: the restoration at
# the photo's own size, a figure (measurement / A^+ y / restoration / reference) and the scores.

folder = OUT / "cli" / "items" / "blurry"
for name in ("reconstruction.png", "figure.png", "metrics.json"):
    print(folder / name)
with Image.open(folder / "reconstruction.png") as im:
    assert im.size == (WIDTH, height), im.size  # the photo's own size: nothing cropped
