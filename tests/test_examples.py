"""The examples under examples/ run as a user runs them (a fresh process), at a tiny size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_restore_your_photo_restores_blurry_png_at_its_own_size(tmp_path: Path) -> None:
    env = {**os.environ, "PNPKIT_EXAMPLE_SIZE": "48", "PNPKIT_EXAMPLE_ITERATIONS": "2",
           "PNPKIT_EXAMPLE_OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "restore_your_photo.py")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # the photo and its PSF, as a user would have them: 8-bit PNGs, a 3:4 landscape
    blurry = np.asarray(Image.open(tmp_path / "blurry.png"))
    assert blurry.shape == (36, 48) and blurry.dtype == np.uint8
    assert np.asarray(Image.open(tmp_path / "psf.png")).shape == (15, 15)
    # both routes give reconstruction.png at the photo's size, and pnpkit run its scores
    for folder in (tmp_path / "python", tmp_path / "cli" / "items" / "blurry"):
        assert np.asarray(Image.open(folder / "reconstruction.png")).shape == (36, 48)
    record = json.loads((tmp_path / "cli" / "items" / "blurry" / "metrics.json").read_text())
    assert record["status"] == "done" and record["nfe"] == 2
    assert 10 < record["metrics"]["psnr"] < 60
    assert str(tmp_path / "cli" / "items" / "blurry" / "reconstruction.png") in done.stdout
