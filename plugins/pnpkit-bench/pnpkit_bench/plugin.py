"""Registers ``pnpkit bench`` and draws ``pnpkit run``'s per-item figure (imports nothing heavy)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pnpkit


def _bench(args: argparse.Namespace) -> int:
    """Run the sweep; print where its summary is (rank 0 only under torchrun).

    Exit 0, or 1 when a row diverged (one line names them); a bad sweep exits 2 before its
    first case (the command line's one-line errors). The last line counts the rows solved,
    diverged, that do not apply (a solver that cannot take the task) and that failed."""
    import os
    import sys

    from pnpkit.cli import diverged_line

    from .report import status_counts
    from .sweep import Sweep, diverged_rows, load_sweep

    sweep = load_sweep(args.sweep)
    if args.device:
        sweep["device"] = args.device
    runner = Sweep(sweep, output=args.output)
    first = int(os.environ.get("RANK", "0") or 0) == 0
    rows = runner.run(overwrite=args.overwrite, progress=not args.quiet and first)
    diverged = diverged_rows(rows)
    if first:
        counts = ", ".join(f"{n} {what}" for what, n in status_counts(rows).items())
        out = runner.output.resolve()
        print(f"{len(rows)} row(s): {counts}; see {out / 'summary.md'} and {out / 'report.html'}")
        if diverged:
            print(diverged_line("row(s)", diverged, saved=False), file=sys.stderr)
    return 1 if diverged else 0


@pnpkit.hookimpl
def register_commands(cli: Any) -> None:
    p = cli.command("bench", help="run a benchmark sweep (tasks x noise x solvers x priors x seeds)",
                    run=_bench)
    p.add_argument("sweep", type=Path)
    p.add_argument("-o", "--output", help="output folder (default: the sweep's `output`)")
    p.add_argument("--overwrite", action="store_true", help="replace a different sweep's results")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--device", help="run on this device (cpu, cuda, cuda:1, mps), overriding the "
                                    "sweep's `device`")


@pnpkit.hookimpl
def render_item(path: Any, panels: Any, history: Any, kind: str, sample_rate: Any,
                channel_names: Any) -> bool:
    from .figures import run_figure

    run_figure(Path(path), panels, history, kind, sample_rate, channel_names)
    return True
