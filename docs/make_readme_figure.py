"""The README's opening picture, from the demo's outputs: measurement / restoration / reference.

Run after ``make demo``: it reads one whole-picture demo's run folder (``runs/demo-camera/``
by default) and writes ``docs/demo.png``, three panels side by side at the same display
size (a measurement smaller than the picture, as SR x4's 128 x 128, is shown enlarged with
visible pixels), titled with the sizes, the method and the scores from ``metrics.json``.

Usage::

    python docs/make_readme_figure.py                       # runs/demo-camera -> docs/demo.png
    python docs/make_readme_figure.py --demo astronaut --out docs/demo-astronaut.png
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: demo -> (its config, the item id, what the measurement is).
DEMOS = {
    "camera": ("demo-camera.toml", "camera", "4x super-resolution"),
    "astronaut": ("demo-astronaut.toml", "astronaut", "half the pixels missing, noise 0.02"),
}
SOLVERS = {"dcdp": "DCDP", "hqs": "PnP-HQS", "projdiff": "ProjDiff", "reddiff": "RED-Diff"}


def panels(demo: str, runs: Path) -> tuple[list[tuple[str, Any]], str]:
    """The three (title, picture array) panels of ``demo`` and the figure's caption line."""
    import numpy as np
    from PIL import Image

    config_name, item, what = DEMOS[demo]
    config = tomllib.loads((ROOT / "configs" / config_name).read_text())
    folder = runs / Path(config["output"]).name / "items" / item
    if not (folder / "reconstruction.png").is_file():
        raise SystemExit(f"make_readme_figure.py: {folder / 'reconstruction.png'} is missing; "
                         f"run `make demo` first (or `pnpkit run configs/{config_name}`)")
    record = json.loads((folder / "metrics.json").read_text())
    # what pnpkit run wrote: the measurement at its own size, the restoration, the reference
    measured, restored, reference = (np.asarray(Image.open(folder / f"{name}.png"))
                                     for name in ("measurement", "reconstruction", "reference"))
    solver = config["solver"]
    method = SOLVERS.get(solver["name"], solver["name"])
    if solver["name"] == "dcdp":
        method += " V2" if solver.get("purification") == "tweedie" else " V1"
    scores = record.get("metrics", {})
    score = f", {scores['psnr']:.2f} dB" if "psnr" in scores else ""
    baseline = record.get("pseudo_inverse_metrics", {}).get("psnr")
    h, w = restored.shape[:2]
    mh, mw = measured.shape[:2]
    out = [(f"measurement: {mh} x {mw} ({what})", measured),
           (f"{method}, default prior: {h} x {w}{score}", restored),
           (f"reference: {reference.shape[0]} x {reference.shape[1]}", reference)]
    caption = (f"{item}, held out (test split); A^+ y scores {baseline:.2f} dB; "
               f"{record.get('nfe', '?')} network calls, {record.get('wall_time', 0):.0f} s on 2 CPU cores"
               if baseline is not None else item)
    return out, caption


def draw(panel_list: list[tuple[str, Any]], caption: str, out: Path) -> Path:
    """Three panels side by side, each shown at the restoration's size (nearest neighbour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panel_list), figsize=(4.2 * len(panel_list), 4.6))
    for ax, (title, img) in zip(axes, panel_list, strict=True):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(caption, fontsize=9, y=0.04)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", choices=sorted(DEMOS), default="camera")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs",
                        help="where the demo wrote its run folders (default: runs/)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "demo.png")
    args = parser.parse_args(argv)
    panel_list, caption = panels(args.demo, args.runs)
    print(draw(panel_list, caption, args.out), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
