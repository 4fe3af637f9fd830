"""Write the measurement files `make demo` restores: real inputs, as a user would give them.

The demo restores files, not simulations: this script makes them once, from held-out data
(the test split no shipped prior was trained on), through the registered operators, so a
measurement is exactly what the operator gives (``y = A x``, plus the stated noise):

- ``measurements/camera.png``: scikit-image's grey ``camera`` (512 x 512) measured by 4x
  super-resolution (``super-resolution``, factor 4): a 128 x 128 PNG, noiseless (the 8-bit PNG
  quantises it, as a real file would);
- ``measurements/astronaut.png``: the colour ``astronaut`` (512 x 512) with half of its pixels
  missing (``random-inpainting``, seed 0) and noise ``sigma_y = 0.02``, at full size;
- ``measurements/chorale.wav``: the mixture of one whole held-out rendered chorale (music21's
  ``bach/bwv6.6``, test split, 18.7 s at 8 kHz), rendered with FluidSynth as
  ``pnpkit build-audio-dataset`` renders it. Without FluidSynth (or its soundfont) the
  longest piece that ships with pnpkit-audio is used instead: an 8.192 s excerpt
  (``chorales-excerpts`` holds excerpts only);
- ``references/<same name>``: the clean picture, and the four stems (one 4-channel WAV,
  bass / drums / guitar / piano); ``stems/chorale_<stem>.wav``: each stem alone, to listen to.

Usage::

    python examples/make_demo_inputs.py                # runs/demo-inputs/
    python examples/make_demo_inputs.py --size 64      # smaller pictures (tests)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The held-out chorale the demo separates: the shortest whole test-split piece (18.7 s).
SONG = "bach/bwv6.6"
STEMS = ("bass", "drums", "guitar", "piano")
#: What each picture goes through: (picture, channels, operator, settings, sigma_y).
PICTURES: tuple[tuple[str, int, str, dict[str, Any], float], ...] = (
    ("camera", 1, "super-resolution", {"factor": 4}, 0.0),
    ("astronaut", 3, "random-inpainting", {"fraction": 0.5, "seed": 0}, 0.02),
)


def write_pictures(out: Path, size: int | None = None) -> list[dict[str, Any]]:
    """Measure the held-out pictures through their registered operators; write both PNGs.

    :param pathlib.Path out: the inputs folder (``measurements/``, ``references/`` in it).
    :param int size: resize the (square) pictures to ``size`` first; None keeps 512 x 512.
    :return: one record per picture (files, operator, shapes).
    """
    import skimage.data
    import torch

    from pnpkit import operators as ops
    from pnpkit.data import image_to_tensor, save_signal
    from pnpkit.plugins import get_manager

    records = []
    for sub in ("measurements", "references"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for name, channels, operator, settings, sigma_y in PICTURES:
        x = image_to_tensor(getattr(skimage.data, name)(), size, channels)
        op = get_manager().get("operator", operator).build(
            {**settings, "sigma_y": sigma_y}, shape=tuple(x.shape))
        # One seeded draw of the noise: the same files on every machine.
        y = ops.measure(op, x[None], torch.Generator().manual_seed(0))[0]
        measured = save_signal(y, out / "measurements" / name, "image")
        reference = save_signal(x, out / "references" / name, "image")
        records.append({"measurement": str(measured.relative_to(out)),
                        "reference": str(reference.relative_to(out)), "operator": operator,
                        "settings": settings, "sigma_y": sigma_y,
                        "signal_shape": list(x.shape), "measurement_shape": list(y.shape)})
    return records


def render_song(source: str = SONG) -> tuple[np.ndarray, int, str] | None:
    """The whole piece's (4, L) stems, rendered as the dataset builder does; None without FluidSynth."""
    from pnpkit_audio import render

    try:
        render.check_renderer()
    except render.RendererMissing as exc:
        print(f"note: {exc}; using the longest shipped excerpt instead", file=sys.stderr)
        return None
    from pnpkit_audio.dataset import load_stems

    with tempfile.TemporaryDirectory() as tmp:
        manifest = render.build_dataset(tmp, sources=[source], progress=False)
        (piece,) = manifest["pieces"].values()
        if piece["split"] != "test":  # the demo must separate a piece no prior was trained on
            raise ValueError(f"{source} is in the {piece['split']} split, not the test split")
        stems, rate = load_stems(Path(tmp) / piece["file"])
    return stems, rate, f"{source} (whole piece, {stems.shape[1] / rate:.1f} s)"


def shipped_song() -> tuple[np.ndarray, int, str]:
    """The longest test piece that ships with pnpkit-audio (the excerpts are 8.192 s each)."""
    from pnpkit_audio.dataset import EXCERPTS_DIR, load_stems

    best = max(sorted(EXCERPTS_DIR.glob("*.flac")), key=lambda p: load_stems(p)[0].shape[1])
    stems, rate = load_stems(best)
    return stems, rate, f"{best.stem} (shipped excerpt, {stems.shape[1] / rate:.3f} s)"


def write_song(out: Path, render_whole: bool = True) -> dict[str, Any]:
    """Write the chorale's mixture (the measurement), its 4-stem reference and each stem.

    The mixture is the registered ``mixture`` operator applied to the stems (their sum),
    written as 32-bit float WAV so the file holds exactly ``A x``.
    """
    import soundfile
    import torch

    from pnpkit import operators as ops
    from pnpkit.plugins import get_manager

    song = render_song() if render_whole else None
    stems, rate, what = song if song is not None else shipped_song()
    x = torch.from_numpy(np.ascontiguousarray(stems))
    op = get_manager().get("operator", "mixture").build({"sigma_y": 0.0}, shape=tuple(x.shape))
    y = ops.measure(op, x[None])[0]
    for sub in ("measurements", "references", "stems"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    soundfile.write(str(out / "measurements" / "chorale.wav"), y.numpy().T, rate, subtype="FLOAT")
    soundfile.write(str(out / "references" / "chorale.wav"), stems.T, rate, subtype="FLOAT")
    for k, stem in enumerate(STEMS):
        soundfile.write(str(out / "stems" / f"chorale_{stem}.wav"), stems[k], rate, subtype="FLOAT")
    return {"measurement": "measurements/chorale.wav", "reference": "references/chorale.wav",
            "piece": what, "sample_rate": rate, "samples": int(stems.shape[1]),
            "stems": list(STEMS)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo-inputs",
                        help="the inputs folder (default: runs/demo-inputs)")
    parser.add_argument("--size", type=int, default=None,
                        help="resize the pictures to SIZE x SIZE first (default: 512, as they are)")
    parser.add_argument("--no-song", action="store_true", help="write the pictures only")
    parser.add_argument("--shipped-song", action="store_true",
                        help="use the longest shipped excerpt, not a whole rendered piece")
    args = parser.parse_args(argv)
    out: Path = args.out
    for sub in ("measurements", "references", "stems"):
        shutil.rmtree(out / sub, ignore_errors=True)  # no stale file from another size
    record: dict[str, Any] = {"pictures": write_pictures(out, args.size)}
    if not args.no_song:
        record["song"] = write_song(out, render_whole=not args.shipped_song)
    (out / "inputs.json").write_text(json.dumps(record, indent=1) + "\n")
    for pic in record["pictures"]:
        print(f"{out / pic['measurement']}: {pic['operator']} {pic['settings']}, sigma_y "
              f"{pic['sigma_y']}, {pic['measurement_shape']} from {pic['signal_shape']}")
    if "song" in record:
        print(f"{out / record['song']['measurement']}: the mixture of {record['song']['piece']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
