"""Quality per minute of training: the validation gains the trainer recorded, against minutes.

Every run of the house's trainer (:func:`pnpkit_priors.trainer.train_ddpm`) validates its EMA
weights every ``--save-every`` steps: one denoising step on a fixed held-out batch at sigma
0.05 / 0.1 / 0.2 / 0.4, the gain in dB over the noisy input, recorded in
``training_state.json``. This script reads those records for the project's runs and sets
them beside the prior each run is meant to replace, scored by the same function
(:func:`pnpkit_priors.trainer.denoising_gain`) on the same batch with the same noise:

- ``grey64`` / ``rgb64`` (``runs/grey64``, ``runs/rgb64``): 16 ``coffee`` patches of 64 x 64
  (the validation split), against ``default-grey32`` / ``default-rgb32``;
- ``stems8k-edm`` (``runs/stems8k-edm``): 8 validation segments of 16384 samples of the
  rendered chorales, against the DDPM ``default-stems8k``.

Minutes: a validation entry written by the current trainer carries the run's ``seconds`` at
it; for older entries the minutes are interpolated linearly in steps between the known
points (the start, entries with seconds, the run's final state, and the ``training_state.json``
of earlier copies of the run given with ``--also``), so they are approximate within a span.

Writes ``curves.json``, ``README.md`` (a table per run: the last gains, the reference's, the
difference, and the gain per 10 minutes over the run's last third, the rate it still climbs
at) and ``curves.png`` into ``--out`` (default ``benchmarks/results/training_curves/``).

Usage::

    python benchmarks/training_curves.py                       # every run found under runs/
    python benchmarks/training_curves.py --runs grey64 --also grey64=runs/grey64-2877
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
SIGMAS = ("0.05", "0.1", "0.2", "0.4")
#: label -> (run folder, reference prior, what the validation batch is).
RUNS: dict[str, tuple[str, str, str]] = {
    "grey64": ("runs/grey64", "default-grey32", "grey"),
    "rgb64": ("runs/rgb64", "default-rgb32", "rgb"),
    "stems8k-edm": ("runs/stems8k-edm", "default-stems8k", "audio"),
}


def validation_batch(kind: str, state: dict[str, Any]) -> Any:
    """The batch the run validated on, rebuilt as its training command built it."""
    if kind == "audio":
        from pnpkit_audio.train import validation_segments

        root = state.get("data_root") or "data/chorales-8k"
        return validation_segments(REPO / root if not Path(root).is_absolute() else root, 8,
                                   int(state["length"]))
    from pnpkit_priors.datasets import heldout_patches
    from pnpkit_priors.train import VALIDATION_COUNT

    size = int(state["data"]["size"])
    return heldout_patches("validation", size, 1 if kind == "grey" else 3, VALIDATION_COUNT)


def minutes_at(steps: list[int], anchors: list[tuple[int, float]]) -> list[float]:
    """Minutes at each step, linear between the (step, seconds) anchors.

    >>> minutes_at([50, 150], [(0, 0.0), (100, 600.0), (200, 900.0)])
    [5.0, 12.5]
    """
    pts = sorted(set(anchors))
    out = []
    for s in steps:
        lo = max((p for p in pts if p[0] <= s), default=pts[0])
        hi = min((p for p in pts if p[0] >= s), default=pts[-1])
        sec = lo[1] if hi[0] == lo[0] else lo[1] + (hi[1] - lo[1]) * (s - lo[0]) / (hi[0] - lo[0])
        out.append(round(sec / 60, 2))
    return out


def curve(label: str, folder: Path, reference: str, kind: str,
          also: list[Path]) -> dict[str, Any]:
    """One run's curve and its reference's gains."""
    import pnpkit
    from pnpkit_priors.trainer import denoising_gain

    state = json.loads((folder / "training_state.json").read_text())
    entries = state.get("validation") or []
    if not entries:
        raise SystemExit(f"training_curves.py: {folder} records no validation; train it with "
                         "validation on (the default of train-prior and train-audio-prior)")
    anchors = [(0, 0.0), (int(state["step"]), float(state["seconds"]))]
    anchors += [(int(v["step"]), float(v["seconds"])) for v in entries if "seconds" in v]
    for other in also:
        old = json.loads((other / "training_state.json").read_text())
        anchors.append((int(old["step"]), float(old["seconds"])))
    steps = [int(v["step"]) for v in entries]
    ref = denoising_gain(pnpkit.create("prior", reference), validation_batch(kind, state),
                         tuple(float(s) for s in SIGMAS), int(state.get("seed", 0)))
    return {"label": label, "folder": str(folder.relative_to(REPO) if folder.is_relative_to(REPO)
                                          else folder),
            "reference": reference, "steps": steps, "minutes": minutes_at(steps, anchors),
            "gain_db": {s: [float(v["gain_db"][s]) for v in entries] for s in SIGMAS},
            "reference_gain_db": {s: float(ref[s]) for s in SIGMAS},
            "precisions": state.get("precisions", [{"from_step": 0, "precision": "fp32"}]),
            "parameters": state.get("parameters"), "batch_size": state.get("batch_size"),
            "threads": state.get("threads")}


def climb(c: dict[str, Any], sigma: str) -> float | None:
    """dB per 10 minutes over the run's last third (its last 3 points at least; least
    squares), or None for a run with fewer than 3 points."""
    t, g = c["minutes"], c["gain_db"][sigma]
    if len(t) < 3:
        return None
    start = t[-1] - (t[-1] - t[0]) / 3
    pts = list(zip(t, g, strict=True))
    pts = pts[-3:] if sum(a >= start for a, _ in pts) < 3 else [p for p in pts if p[0] >= start]
    n = len(pts)
    mt, mg = sum(a for a, _ in pts) / n, sum(b for _, b in pts) / n
    var = sum((a - mt) ** 2 for a, _ in pts)
    return None if var == 0 else round(10 * sum((a - mt) * (b - mg) for a, b in pts) / var, 3)


def readme(curves: list[dict[str, Any]]) -> str:
    lines = ["# Quality per minute of training", "",
             "`benchmarks/training_curves.py`: the one-step denoising gain (dB) each training "
             "run recorded on its fixed validation batch, beside the prior it is meant to "
             "replace scored on the same batch and noise. Minutes are interpolated linearly "
             "between the points whose time is known (see the script). `climb`: dB per 10 "
             "minutes over the run's last third.", "", "![curves](curves.png)", ""]
    for c in curves:
        last = {s: c["gain_db"][s][-1] for s in SIGMAS}
        prec = ", ".join(f"{p['precision']} from step {p['from_step']}" for p in c["precisions"])
        lines += [f"## {c['label']} (`{c['folder']}`) vs `{c['reference']}`", "",
                  f"{c['steps'][-1]} steps of {c['batch_size']} in {c['minutes'][-1]:.0f} min "
                  f"({prec}); {c['parameters']:,} parameters.", "",
                  "| sigma | run (dB) | reference (dB) | run - reference | climb (dB / 10 min) |",
                  "|---|---:|---:|---:|---:|"]
        for s in SIGMAS:
            slope = climb(c, s)
            lines.append(f"| {s} | {last[s]:+.2f} | {c['reference_gain_db'][s]:+.2f} | "
                         f"{last[s] - c['reference_gain_db'][s]:+.2f} | "
                         f"{'-' if slope is None else f'{slope:+.3f}'} |")
        lines.append("")
    return "\n".join(lines)


def plot(curves: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4.0), squeeze=False)
    colours = dict(zip(SIGMAS, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True))
    for ax, c in zip(axes[0], curves, strict=True):
        for s in SIGMAS:
            ax.plot(c["minutes"], c["gain_db"][s], "-o", ms=2.5, color=colours[s],
                    label=f"sigma {s}")
            ax.axhline(c["reference_gain_db"][s], color=colours[s], ls="--", lw=1)
        for p in c["precisions"][1:]:
            at = minutes_at([p["from_step"]], list(zip(c["steps"], [60 * m for m in c["minutes"]],
                                                       strict=True)))[0]
            ax.axvline(at, color="grey", lw=0.8, ls=":")
            ax.text(at, ax.get_ylim()[1], f" {p['precision']} from here", color="grey",
                    fontsize=8, va="top")
        ax.set_title(f"{c['label']} (dashed: {c['reference']})", fontsize=10)
        ax.set_xlabel("minutes of training")
        ax.set_ylabel("one-step denoising gain (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=",".join(RUNS), help=f"of {', '.join(RUNS)}")
    parser.add_argument("--also", action="append", default=[],
                        help="LABEL=FOLDER: an earlier copy of a run (its step and seconds "
                             "anchor the minutes)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "training_curves")
    args = parser.parse_args(argv)
    labels = [r for r in args.runs.split(",") if r]
    unknown = [r for r in labels if r not in RUNS]
    if unknown:
        raise SystemExit(f"training_curves.py: unknown run(s) {', '.join(unknown)}; known: "
                         f"{', '.join(RUNS)}")
    also: dict[str, list[Path]] = {}
    for item in args.also:
        label, _, folder = item.partition("=")
        if label not in RUNS or not folder:
            raise SystemExit(f"training_curves.py: --also {item!r} must be LABEL=FOLDER with "
                             f"LABEL one of {', '.join(RUNS)}")
        also.setdefault(label, []).append(REPO / folder)
    curves = []
    for label in labels:
        folder, reference, kind = RUNS[label]
        if not (REPO / folder / "training_state.json").is_file():
            print(f"skipping {label}: no {folder}/training_state.json")
            continue
        curves.append(curve(label, REPO / folder, reference, kind, also.get(label, [])))
    if not curves:
        raise SystemExit("training_curves.py: no run found under runs/")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curves.json").write_text(json.dumps(curves, indent=1) + "\n")
    (args.out / "README.md").write_text(readme(curves))
    plot(curves, args.out / "curves.png")
    print(f"wrote {args.out / 'README.md'}, curves.json and curves.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
