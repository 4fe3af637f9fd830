"""Whole-picture quality: the test split's pictures restored at full size, side by side.

The committed image sweep (``benchmarks/sweeps/images.toml``) scores 32 x 32 patches; this
benchmark restores the whole held-out pictures (scikit-image's ``camera``, grey, with the
default grey prior, and ``astronaut``, colour, with the default colour prior; 512 x 512, or
``--size``) with the default priors applied whole: 4x super-resolution, box inpainting and
noisy Gaussian deblurring (``sigma_y = 0.05``), for DCDP V1 / V2, RED-Diff, ProjDiff,
PnP-HQS and A^+ y. The solvers' settings (their presets per task, PnP-HQS's schedule) are
read from the image sweep's ``[[solvers]]`` entries, so both benchmarks run the same methods.

Resumable: each solve appends its row to ``rows.csv`` as it finishes, and a restart skips
the rows already there (same picture, size, task and solver). Writes into ``--out``
(default ``benchmarks/results/whole_images/``): ``rows.csv``, ``summary.md`` (PSNR / SSIM,
time and NFE per solve), ``grid.png`` (every restoration) and ``reconstructions/*.png``.

Usage::

    python benchmarks/whole_images.py                       # 512 x 512 (hours on 2 cores)
    python benchmarks/whole_images.py --size 256            # camera / astronaut resized
    python benchmarks/whole_images.py --solvers dcdp-v2,pinv --tasks sr4
    python benchmarks/whole_images.py --grey-prior default-grey64 --rgb-prior default-rgb64 \
        --out benchmarks/results/whole_images_64          # other priors: their own folder

The folder's ``priors.json`` records the priors its rows were made with; a run with other
priors into it is refused (one line).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
SWEEP = ROOT / "sweeps" / "images.toml"
#: (picture, channels, prior): the test split, each with the default prior of its channels.
PICTURES = (("camera", 1, "default-grey32"), ("astronaut", 3, "default-rgb32"))
#: name -> (operator, settings, sigma_y).
TASKS: dict[str, tuple[str, dict[str, Any], float]] = {
    "sr4": ("super-resolution", {"factor": 4}, 0.0),
    "box-inpainting": ("box-inpainting", {}, 0.0),
    "gaussian-deblur": ("gaussian-deblur", {}, 0.05),
}
#: The image sweep's labels of the solvers compared here, in the tables' order.
SOLVERS = ("pinv", "dcdp-v1", "dcdp-v2", "reddiff", "projdiff", "pnp-hqs")
NAMES = {"pinv": "A^+ y", "dcdp-v1": "DCDP V1", "dcdp-v2": "DCDP V2", "reddiff": "RED-Diff",
         "projdiff": "ProjDiff", "pnp-hqs": "PnP-HQS"}
COLUMNS = ["picture", "size", "task", "sigma_y", "solver", "status", "psnr", "ssim", "wall_time",
           "nfe", "peak_memory_mb"]


def solver_entries(path: Path = SWEEP) -> dict[str, dict[str, Any]]:
    """The image sweep's ``[[solvers]]`` entries by label."""
    sweep = tomllib.loads(path.read_text())
    return {s["label"]: s for s in sweep["solvers"]}


def solver_settings(entry: dict[str, Any], task: str, noisy: bool,
                    iterations: int | None = None) -> dict[str, Any]:
    """The settings the image sweep gives ``entry`` on ``task`` (its ``:noisy`` entry too).

    ``iterations`` (tests, quick looks) overrides every solver's iteration count.

    >>> entry = {"name": "dcdp", "settings": {"purification": "tweedie"},
    ...          "per_task": {"sr4": {"preset": "sr4"}, "sr4:noisy": {"t_end": 100}}}
    >>> solver_settings(entry, "sr4", noisy=True)
    {'purification': 'tweedie', 'preset': 'sr4', 't_end': 100}
    """
    settings = dict(entry.get("settings", {}))
    per_task = entry.get("per_task", {})
    settings.update(per_task.get(task, {}))
    if noisy:
        settings.update(per_task.get(f"{task}:noisy", {}))
    if iterations is not None and entry["name"] != "pinv":
        settings["iterations"] = iterations
    return settings


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def row_key(row: dict[str, Any]) -> tuple[str, ...]:
    return (str(row["picture"]), str(row["size"]), str(row["task"]), str(row["solver"]))


def picture(name: str, channels: int, size: int | None) -> Any:
    """The picture as (C, H, W) in [-1, 1], resized to ``size`` x ``size`` when given."""
    import skimage.data

    from pnpkit.data import image_to_tensor

    return image_to_tensor(getattr(skimage.data, name)(), size, channels)


def solve_one(x: Any, prior: Any, task: str, entry: dict[str, Any], iterations: int | None,
              device: str = "cpu") -> tuple[dict[str, Any], Any, Any]:
    """One solve: its row's values, the measurement and the reconstruction ((C, H, W) each)."""
    import torch

    from pnpkit import operators as ops
    from pnpkit.metrics import compute
    from pnpkit.plugins import get_manager
    from pnpkit_bench.memory import PeakMemory

    manager = get_manager()
    operator, settings, sigma_y = TASKS[task]
    op = manager.get("operator", operator).build({**settings, "sigma_y": sigma_y},
                                                 shape=tuple(x.shape), device=device)
    cls = manager.get("solver", entry["name"]).factory
    solver = cls.from_dict({"name": cls.name, **solver_settings(entry, task, sigma_y > 0, iterations)})
    g = torch.Generator().manual_seed(0)
    ref = x[None].to(device)
    y = ops.measure(op, ref, g)
    prior.reset_nfe()
    with PeakMemory(torch.device(device)) as mem:
        result = solver.solve(y, op, prior, generator=g, reference=ref)
    scores = compute(["psnr", "ssim"], result.x.clamp(-1, 1), ref)
    values = {"psnr": f"{scores['psnr'][0]:.2f}", "ssim": f"{scores['ssim'][0]:.4f}",
              "wall_time": f"{result.wall_time:.2f}", "nfe": str(result.nfe),
              "peak_memory_mb": f"{mem.peak_mb:.1f}"}
    return values, y[0], result.x[0]


def with_priors(grey: str | None = None, rgb: str | None = None) -> tuple[tuple[str, int, str], ...]:
    """:data:`PICTURES` with the grey and colour priors replaced where given.

    >>> with_priors(grey="default-grey64")[0]
    ('camera', 1, 'default-grey64')
    """
    return tuple((n, c, (grey if c == 1 else rgb) or p) for n, c, p in PICTURES)


def claim_priors(out: Path, pictures: tuple[tuple[str, int, str], ...]) -> None:
    """Record the priors of ``out``'s rows in ``out/priors.json``; refuse (one line) a run with
    other priors into a folder whose rows were made with these (rows carry no prior column)."""
    import json

    want = {name: prior for name, _, prior in pictures}
    stamp = out / "priors.json"
    if stamp.is_file():
        have = json.loads(stamp.read_text())
        differ = {n: (have[n], p) for n, p in want.items() if n in have and have[n] != p}
        if differ:
            said = ", ".join(f"{n}: {a} there, {b} asked" for n, (a, b) in differ.items())
            raise SystemExit(f"whole_images.py: {out} holds rows made with other priors ({said}); "
                             "give another --out for these priors")
        want = {**have, **want}
    elif read_rows(out / "rows.csv"):  # rows from before the stamp: the default priors'
        default = {name: prior for name, _, prior in PICTURES}
        if want != default:
            raise SystemExit(f"whole_images.py: {out} holds rows made with the default priors "
                             f"({', '.join(default.values())}); give another --out for these priors")
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(want, indent=1) + "\n")


def run(out: Path, size: int | None, solvers: list[str], tasks: list[str],
        pictures: list[str], iterations: int | None = None, log: Any = print,
        priors: tuple[tuple[str, int, str], ...] = PICTURES) -> list[dict[str, str]]:
    """Solve every (picture, task, solver) not in ``out/rows.csv`` yet; return every row.

    ``priors``: (picture, channels, prior) as :data:`PICTURES` (:func:`with_priors`)."""
    from pnpkit.data import save_signal
    from pnpkit.plugins import get_manager

    entries = solver_entries()
    claim_priors(out, priors)
    (out / "reconstructions").mkdir(exist_ok=True)
    rows_path = out / "rows.csv"
    done = {row_key(r) for r in read_rows(rows_path)}
    new_file = not rows_path.exists()
    with rows_path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        for name, channels, prior_name in priors:
            if name not in pictures:
                continue
            x = picture(name, channels, size)
            side = str(x.shape[-1])
            prior = None
            for task in tasks:
                for label in solvers:
                    row: dict[str, Any] = {"picture": name, "size": side, "task": task,
                                           "sigma_y": TASKS[task][2], "solver": label}
                    if row_key(row) in done:
                        continue
                    if prior is None:  # built once per picture, only when something is left
                        prior = get_manager().get("prior", prior_name).build({}, device="cpu")
                    try:
                        values, y, xhat = solve_one(x, prior, task, entries[label], iterations)
                    except Exception as exc:  # a solver that does not apply is a row, not a crash
                        row.update(status=f"error: {type(exc).__name__}: {exc}"[:300])
                    else:
                        row.update(status="ok", **values)
                        stem = f"{name}-{side}-{task}"
                        save_signal(xhat.clamp(-1, 1), out / "reconstructions" / f"{stem}-{label}", "image")
                        # y at its own size (SR x4: a quarter of the side; the grid stretches it)
                        save_signal(y.clamp(-1, 1), out / "reconstructions" / f"{stem}-measurement", "image")
                    writer.writerow({c: row.get(c, "") for c in COLUMNS})
                    f.flush()
                    log(f"{name} {side} {task} {label}: {row['status']} "
                        f"{row.get('psnr', '-')} dB {row.get('wall_time', '-')} s")
            if not (out / "reconstructions" / f"{name}-{side}.png").exists():
                save_signal(x, out / "reconstructions" / f"{name}-{side}", "image")
    return read_rows(rows_path)


def summary(rows: list[dict[str, str]], solvers: list[str] | None = None,
            priors: tuple[tuple[str, int, str], ...] = PICTURES) -> str:
    """``summary.md``: per picture and size, PSNR / SSIM per task and the mean time per solve."""
    order = [s for s in (solvers or SOLVERS)]
    order += sorted({r["solver"] for r in rows} - set(order))
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    lines = ["# Whole pictures at full size", "",
             "`benchmarks/whole_images.py`: the test split's pictures restored whole with the "
             + ("default priors" if tuple(priors) == PICTURES else
                "priors " + " / ".join(f"`{p}`" for _, _, p in priors))
             + " (grey `camera`, colour `astronaut`); PSNR (dB) / SSIM per task, "
             "time (s) and network calls (NFE) per solve on this machine, all in one run. "
             "Gaussian deblurring is noisy (sigma_y = 0.05); SR x4 and box inpainting noiseless.", ""]
    for name, _, prior in priors:
        for side in sorted({r["size"] for r in rows if r["picture"] == name}, key=int):
            sel = [r for r in rows if r["picture"] == name and r["size"] == side]
            lines += [f"## {name}, {side} x {side} (prior {prior})", "",
                      "| solver | " + " | ".join(tasks) + " | mean time (s) | NFE |",
                      "|---|" + "---:|" * (len(tasks) + 2)]
            for label in order:
                cells, times, nfes = [], [], []
                for task in tasks:
                    r = next((r for r in sel if r["task"] == task and r["solver"] == label), None)
                    if r is None:
                        cells.append("")
                    elif r["status"] != "ok":
                        cells.append("error")
                    else:
                        cells.append(f"{float(r['psnr']):.2f} / {float(r['ssim']):.3f}")
                        times.append(float(r["wall_time"]))
                        nfes.append(r["nfe"])
                if not any(cells):
                    continue
                time = f"{sum(times) / len(times):.1f}" if times else "-"
                nfe = "/".join(dict.fromkeys(nfes)) or "-"
                lines.append(f"| {NAMES.get(label, label)} | " + " | ".join(cells) + f" | {time} | {nfe} |")
            lines.append("")
    errors = [r for r in rows if r["status"] != "ok"]
    if errors:
        lines += ["Errors:", ""] + [f"- {r['picture']} {r['size']} {r['task']} {r['solver']}: "
                                     f"{r['status']}" for r in errors] + [""]
    return "\n".join(lines)


def grid(rows: list[dict[str, str]], out: Path, solvers: list[str] | None = None) -> Path | None:
    """``grid.png``: per picture, size and task a row: measurement, each restoration, reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    order = [s for s in (solvers or SOLVERS) if any(r["solver"] == s for r in rows)]
    lines = sorted({(r["picture"], r["size"], r["task"]) for r in rows if r["status"] == "ok"},
                   key=lambda k: ([p[0] for p in PICTURES].index(k[0]), int(k[1]), list(TASKS).index(k[2])))
    if not lines or not order:
        return None
    cols = ["measurement", *order, "reference"]
    fig, axes = plt.subplots(len(lines), len(cols), figsize=(2.2 * len(cols), 2.4 * len(lines)),
                             squeeze=False)
    rec = out / "reconstructions"
    for i, (name, side, task) in enumerate(lines):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            ax.axis("off")
            path = rec / (f"{name}-{side}.png" if col == "reference" else f"{name}-{side}-{task}-{col}.png")
            if not path.is_file():
                continue
            img = np.asarray(Image.open(path))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
            r = next((r for r in rows if row_key(r) == (name, side, task, col)), None)
            title = f"{task}: y" if col == "measurement" else NAMES.get(col, col)
            if r is not None and r["status"] == "ok":
                title += f"\n{float(r['psnr']):.2f} dB, {float(r['wall_time']):.0f} s"
            ax.set_title(title, fontsize=7)
    fig.tight_layout()
    path = out / "grid.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _names(value: str, known: list[str] | tuple[str, ...], what: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"whole_images.py: unknown {what} {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(known)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "whole_images")
    parser.add_argument("--size", type=int, default=None,
                        help="resize the pictures to SIZE x SIZE (default: 512, as they are)")
    parser.add_argument("--solvers", default=",".join(SOLVERS), help=f"of {', '.join(SOLVERS)}")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"of {', '.join(TASKS)}")
    parser.add_argument("--pictures", default=",".join(p[0] for p in PICTURES))
    parser.add_argument("--iterations", type=int, default=None,
                        help="override every solver's iterations (tests, quick looks)")
    parser.add_argument("--grey-prior", default=None,
                        help=f"the grey pictures' prior (default {PICTURES[0][2]}); "
                             "another needs its own --out")
    parser.add_argument("--rgb-prior", default=None,
                        help=f"the colour pictures' prior (default {PICTURES[1][2]}); "
                             "another needs its own --out")
    args = parser.parse_args(argv)
    priors = with_priors(args.grey_prior, args.rgb_prior)
    solvers = _names(args.solvers, SOLVERS, "solver")
    tasks = _names(args.tasks, list(TASKS), "task")
    pictures = _names(args.pictures, [p[0] for p in PICTURES], "picture")
    rows = run(args.out, args.size, solvers, tasks, pictures, args.iterations,
               log=lambda s: print(s, file=sys.stderr, flush=True), priors=priors)
    text = summary(rows, priors=priors)
    (args.out / "summary.md").write_text(text)
    grid(rows, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
