"""The ``pnpkit`` command line: ``plugins``, ``show``, ``run``, ``new-plugin`` and plugins' own.

Nothing heavy is imported here: ``pnpkit --help``, ``--version`` and ``plugins`` run without
torch; each command imports what it needs when it runs.

Exit codes: 0 done; 1 some item diverged (its iterate became non-finite; named on stderr) or
an unexpected error; 2 bad input (a configuration, a file, a device, a busy or refused output
folder: one line on stderr naming the key or file and the fix); 130 interrupted (Ctrl-C: the
finished items stay, the same command resumes). ``PNPKIT_DEBUG=1`` shows the traceback of an
error instead of the one line.
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


def rank() -> int:
    """This process's rank under ``torchrun`` (0 otherwise): only rank 0 reports."""
    import os

    return int(os.environ.get("RANK", "0") or 0)


def diverged_line(what: str, diverged: dict[str, Any], saved: bool = True) -> str:
    """The one line naming the diverged items (or rows) and what to do about them.

    :param str what: ``"item(s)"`` or ``"row(s)"``.
    :param dict diverged: name -> the iteration it diverged at.
    :param bool saved: whether their last finite iterates were saved.
    """
    named = ", ".join(f"{k} at iteration {v}" for k, v in list(diverged.items())[:8])
    more = f" and {len(diverged) - 8} more" if len(diverged) > 8 else ""
    kept = "their last finite iterates are saved, not averaged" if saved else "never averaged"
    return (f"pnpkit: {len(diverged)} {what} diverged (the iterate became non-finite): {named}{more}; "
            f"{kept}; lower the step size or learning rate, or raise the iterations")


def _run(args: argparse.Namespace) -> int:
    from . import config, pipeline

    overrides = list(args.set) + ([f"device={json.dumps(args.device)}"] if args.device else [])
    cfg = config.load(args.config, overrides)
    first = rank() == 0
    summary = pipeline.run(cfg, output=args.output, overwrite=args.overwrite,
                           progress=not args.quiet and first)
    if not first:
        return 1 if summary.get("diverged") else 0
    out = Path(args.output) if args.output else (cfg.base_dir / cfg.raw["output"]).resolve()
    means = ", ".join(f"{k} {v:.4g}" for k, v in summary["mean"].items() if v is not None)
    diverged = summary.get("diverged") or {}
    apart = f" ({len(diverged)} diverged, not averaged)" if diverged else ""
    print(f"{summary['items']} item(s){apart} -> {out}: {means}")
    if diverged:
        print(diverged_line("item(s)", diverged), file=sys.stderr)
        return 1
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
    p.add_argument("--device", help="run on this device (cpu, cuda, cuda:1, mps), overriding the "
                                    "configuration's `device`")
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
    import os

    debug = bool(os.environ.get("PNPKIT_DEBUG"))
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print("pnpkit: interrupted; the finished items are kept, and the same command resumes "
              "the rest", file=sys.stderr)
        return 130
    except (ValueError, TypeError, LookupError, OSError) as exc:
        # Bad input: one clear line, no traceback (PNPKIT_DEBUG=1 shows it).
        if debug:
            raise
        print(f"pnpkit: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a fault of pnpkit or a plugin: one line too, and how to see more
        if debug:
            raise
        import pickle

        if isinstance(exc, pickle.UnpicklingError):  # torch's own text suggests unpickling code
            print("pnpkit: error: a weights file holds pickled objects that torch.load("
                  "weights_only=True) refuses, and pnpkit never unpickles code; give the weights "
                  "as a .safetensors file", file=sys.stderr)
            return 2
        print(f"pnpkit: error: {type(exc).__name__}: {one_line(exc)} (PNPKIT_DEBUG=1 shows the "
              "traceback)", file=sys.stderr)
        return 1


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (a multi-line message is joined)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return text or type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
