"""Registers ``pnpkit bench`` and draws ``pnpkit run``'s per-item figure (imports nothing heavy)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pnpkit


def _bench(args: argparse.Namespace) -> int:
    from .sweep import run

    rows = run(args.sweep, output=args.output, overwrite=args.overwrite, progress=not args.quiet)
    bad = [r for r in rows if r["status"] != "ok"]
    print(f"{len(rows)} row(s), {len(bad)} not solved; see {args.output or 'the sweep output'}"
          "/summary.md and report.html")
    return 0


@pnpkit.hookimpl
def register_commands(cli: Any) -> None:
    p = cli.command("bench", help="run a benchmark sweep (tasks x noise x solvers x priors x seeds)",
                    run=_bench)
    p.add_argument("sweep", type=Path)
    p.add_argument("-o", "--output", help="output folder (default: the sweep's `output`)")
    p.add_argument("--overwrite", action="store_true", help="replace a different sweep's results")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


@pnpkit.hookimpl
def render_item(path: Any, panels: Any, history: Any, kind: str, sample_rate: Any,
                channel_names: Any) -> bool:
    from .figures import run_figure

    run_figure(Path(path), panels, history, kind, sample_rate, channel_names)
    return True
