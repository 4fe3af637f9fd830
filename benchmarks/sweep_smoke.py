"""Run a sweep file end to end at a tiny size: to prove it runs, and to time a few rows.

    python benchmarks/sweep_smoke.py SWEEP.toml --out runs/smoke-x [--solvers N | --labels A,B]
        [--items N] [--set iterations=10 ...] [--seconds S] [--overwrite]

The sweep is loaded and validated whole as ``pnpkit bench`` would (every solver with every
task's settings), then cut down: its first ``--solvers`` solvers (or the ``--labels`` named),
its first ``--tasks`` tasks, noise levels and ``--items`` items, the ``batch`` capped at the
items kept, and each ``--set key=value`` (a TOML value: ``iterations=10``, ``t_end=50``)
layered over every kept solver's settings (over its ``per_task`` too, so it wins). The cut
sweep is validated again and run into ``--out`` (never the sweep's own output folder: a
smoke run's rows are no results), and each row's status, NFE and wall time are printed, with
the seconds per network call, which is what the full study's CPU estimate is scaled from
(``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import tomllib
from pathlib import Path
from typing import Any


def parse_set(text: str) -> tuple[str, Any]:
    """``key=value`` with a TOML value: ``("iterations", 10)`` from ``"iterations=10"``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"--set {text!r}: give key=value, e.g. --set iterations=10")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()  # a bare word: a string
    return key.strip(), parsed


def cut(sweep: dict[str, Any], solvers: int | None, labels: list[str] | None, tasks: int,
        noise: int, items: int, overrides: dict[str, Any], seconds: float | None) -> dict[str, Any]:
    """The sweep cut to a smoke run's size (see the module's help)."""
    small = copy.deepcopy(sweep)
    entries = small["solvers"]
    if labels:
        known = [s["label"] for s in entries]
        missing = [label for label in labels if label not in known]
        if missing:
            raise SystemExit(f"--labels: {', '.join(missing)} not in the sweep; labels: {', '.join(known)}")
        entries = [s for s in entries if s["label"] in labels]
    elif solvers:
        entries = entries[:solvers]
    for entry in entries:
        entry["settings"].update(overrides)
        for layer in entry.get("per_task", {}).values():
            layer.update({k: v for k, v in overrides.items() if k in layer})
    small["solvers"] = entries
    small["tasks"] = small["tasks"][:tasks]
    kept = {t["name"] for t in small["tasks"]}
    for task in small["tasks"]:
        task["noise"] = task["noise"][:noise]
    for entry in entries:
        if "per_task" in entry:
            entry["per_task"] = {k: v for k, v in entry["per_task"].items() if k.split(":")[0] in kept}
    small["seeds"] = small["seeds"][:1]
    small["data"]["limit"] = min(items, small["data"].get("limit", items))
    if seconds is not None:
        small["data"]["seconds"] = seconds
    small["batch"] = min(int(small.get("batch", 1)), items)
    if small.get("reference") not in {s["label"] for s in entries}:
        small.pop("reference", None)
    return small


def main(argv: list[str] | None = None) -> int:
    from pnpkit_bench.sweep import Sweep, load_sweep

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", help="the sweep file")
    parser.add_argument("--out", required=True, help="the smoke run's folder (e.g. runs/smoke-x)")
    parser.add_argument("--solvers", type=int, default=1, help="keep the first N solvers (default 1)")
    parser.add_argument("--labels", help="keep these solver labels instead, comma-separated")
    parser.add_argument("--tasks", type=int, default=1, help="keep the first N tasks (default 1)")
    parser.add_argument("--noise", type=int, default=1, help="keep each task's first N noise levels")
    parser.add_argument("--items", type=int, default=1, help="keep the first N items (default 1)")
    parser.add_argument("--seconds", type=float, help="audio: cut each item to this long")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting layered over every kept solver's (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="start the folder afresh")
    args = parser.parse_args(argv)

    sweep = load_sweep(args.sweep)
    out = Path(args.out).resolve()
    if out == (Path(sweep["_base_dir"]) / sweep["output"]).resolve():
        raise SystemExit(f"--out {args.out} is the sweep's own output folder; give a scratch "
                         "folder such as runs/smoke-x")
    full = Sweep(sweep, output=out)
    full.validate()
    print(f"{args.sweep}: valid, {len(full.cases())} rows in the full sweep")
    full.folder.release()
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    small = cut(sweep, args.solvers, labels, args.tasks, args.noise, args.items,
                dict(parse_set(s) for s in args.set), args.seconds)
    start = time.perf_counter()
    rows = Sweep(small, output=out).run(overwrite=args.overwrite, progress=False)
    total = time.perf_counter() - start
    bad = 0
    for row in rows:
        nfe = int(row["nfe"]) if row["nfe"] else 0
        wall = float(row["wall_time"]) if row["wall_time"] else 0.0
        per_call = f"{wall / nfe:.3f} s/NFE" if nfe else "-"
        print(f"{row['task']} {row['noise']} {row['solver']} {row['item']}: {row['status']}, "
              f"NFE {nfe}, {wall:.2f} s ({per_call})")
        bad += not row["status"].startswith("ok")
    print(f"{len(rows)} rows in {total:.1f} s (reports included) -> {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
