"""The hooks a pnpkit plugin implements.

A plugin is a module named by an entry point in the ``pnpkit`` group; it marks its hook
implementations with :data:`pnpkit.hookimpl`. Each ``register_*`` hook is called with a
``register(name, factory, **metadata)`` callback. A factory is any callable that builds the
component from keyword settings (a class is fine); metadata (``description``, ``tasks``, ...)
is shown by ``pnpkit plugins``. Keep the module cheap to import: import deepinv, diffusers
and other heavy libraries inside the factories, not at module level.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("pnpkit")

Register = Callable[..., None]


@hookspec
def register_solvers(register: Register) -> None:
    """Register solvers: ``register(name, SolverClass, **metadata)``."""


@hookspec
def register_priors(register: Register) -> None:
    """Register priors (denoisers or diffusion priors): ``register(name, factory, **metadata)``."""


@hookspec
def register_operators(register: Register) -> None:
    """Register forward operators (deepinv physics): ``register(name, factory, **metadata)``."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets: ``register(name, factory, **metadata)``; the factory returns a list of items."""


@hookspec(firstresult=True)
def render_item(path: Any, panels: Any, history: Any, kind: str, sample_rate: Any,
                channel_names: Any) -> Any:
    """Draw one solved item's figure to ``path`` (PNG); return True when drawn (first plugin wins)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add CLI subcommands: ``cli.command(name, help=..., run=callable)`` returns an argparse parser."""
