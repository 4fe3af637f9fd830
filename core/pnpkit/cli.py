"""The ``pnpkit`` command line: ``plugins``, ``show``, ``run``, ``new-plugin`` and plugins' own.

Nothing heavy is imported here: ``pnpkit --help``, ``--version`` and ``plugins`` run without
torch; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


class CommandLine:
    """What ``register_commands(cli)`` receives: ``cli.command(name, help=..., run=fn)``.

    ``run(args) -> int`` is called with the parsed arguments; add arguments to the returned
    ``argparse.ArgumentParser``.
    """

    def __init__(self, subparsers: Any) -> None:
        self._sub = subparsers
        self.names: set[str] = set()

    def command(self, name: str, help: str = "", run: Callable[[argparse.Namespace], int] | None = None
                ) -> argparse.ArgumentParser:
        if name in self.names:
            raise ValueError(f"command {name!r} already exists")
        if run is None:
            raise TypeError(f"command {name!r} needs run=callable(args) -> int")
        self.names.add(name)
        parser = self._sub.add_parser(name, help=help, description=help)
        parser.set_defaults(_run=run)
        return parser


def _plugins(args: argparse.Namespace) -> int:
    from .plugins import get_manager

    infos = list(get_manager().plugins.values())
    # --strict: a plugin author's CI fails on anything `pnpkit plugins` flags.
    status = 1 if args.strict and any(i.error or i.warnings for i in infos) else 0
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return status
    rows = []
    for info in infos:
        comps = ", ".join(f"{k}:{n}" for k, n in info.components) or "-"
        rows.append((info.name, f"{info.distribution} {info.version}", comps))
    w0 = max(len(r[0]) for r in rows) if rows else 6
    w1 = max(len(r[1]) for r in rows) if rows else 12
    print(f"{'plugin':<{w0}}  {'distribution':<{w1}}  components")
    for info, (a, b, c) in zip(infos, rows, strict=True):
        print(f"{a:<{w0}}  {b:<{w1}}  {c}")
        if info.error:
            print(f"{'':<{w0}}  ERROR: {info.error}")
        for warning in info.warnings:
            print(f"{'':<{w0}}  WARNING: {warning}")
    return status


def _show(args: argparse.Namespace) -> int:
    from .show import show

    return show(args.kind, args.name, as_json=args.json)


def _run(args: argparse.Namespace) -> int:
    from . import config, pipeline

    cfg = config.load(args.config, args.set)
    summary = pipeline.run(cfg, output=args.output, overwrite=args.overwrite,
                           progress=not args.quiet)
    out = Path(args.output) if args.output else (cfg.base_dir / cfg.raw["output"]).resolve()
    means = ", ".join(f"{k} {v:.4g}" for k, v in summary["mean"].items() if v is not None)
    print(f"{summary['items']} item(s) -> {out}: {means}")
    return 0


def _new_plugin(args: argparse.Namespace) -> int:
    from .template import render_plugin

    path = render_plugin(args.name, args.kind, Path(args.dir))
    print(f"created {path}; install it with: pip install -e {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .plugins import KINDS, get_manager

    parser = argparse.ArgumentParser(
        prog="pnpkit", description="Plug-and-play solvers for inverse problems with diffusion priors.")
    parser.add_argument("--version", action="version", version=f"pnpkit {__version__}")
    cli = CommandLine(parser.add_subparsers(dest="command", metavar="COMMAND"))
    p = cli.command("plugins", help="list installed plugins, their components and load errors",
                    run=_plugins)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any plugin has an error or a warning (for a plugin's CI)")
    p = cli.command("show", help="show a component's settings and documentation", run=_show)
    p.add_argument("kind", choices=list(KINDS))
    p.add_argument("name")
    p.add_argument("--json", action="store_true",
                   help="machine-readable: every setting (type, default, presets), metadata, docs")
    p = cli.command("run", help="run a TOML pipeline configuration", run=_run)
    p.add_argument("config", type=Path)
    p.add_argument("-o", "--output", help="output folder (default: the config's `output`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set solver.iterations=50 (repeatable)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run of a different configuration in the output folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p = cli.command("new-plugin", help="create a plugin package that passes its own tests",
                    run=_new_plugin)
    p.add_argument("name", help="short name, e.g. 'mysolver' (package pnpkit-mysolver)")
    p.add_argument("--kind", choices=["solver", "prior", "operator"], required=True)
    p.add_argument("--dir", default=".", help="where to create the package folder")
    get_manager().register_commands(cli)
    return parser


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] == ["--version"]:
        # Answered before any plugin loads: a broken plugin cannot hide the version.
        from . import __version__

        print(f"pnpkit {__version__}")
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, LookupError, FileNotFoundError) as exc:
        # Bad input: one clear line, no traceback (PNPKIT_DEBUG=1 shows it).
        import os

        if os.environ.get("PNPKIT_DEBUG"):
            raise
        print(f"pnpkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
