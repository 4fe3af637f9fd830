"""The hooks a pnpkit plugin implements.

A plugin is a module (or a class, or an object) named by an entry point in the ``pnpkit``
group; it marks its hook implementations with :data:`pnpkit.hookimpl`, pluggy's options
included (``specname="register_solvers"`` for a function of another name, ``tryfirst``,
``trylast``). A function named like a hook but left unmarked is reported by ``pnpkit plugins``;
a marked one whose name is no hook below fails the plugin's load, with the closest hook named.

Each ``register_*`` hook is called with a ``register(name, factory, **metadata)`` callback.
``name`` is the component's bare name (no ``:``); the component is also reachable as
``plugin:name`` (the entry point's name), which is what a configuration must use when two
plugins register the same bare name. A factory is any callable that builds the component from
keyword settings (a class is fine), or a reference string ``"module:attr"`` to one, imported
when the component is first used. Metadata (``description``, ``paper``, ``presets``, ...) is
shown by ``pnpkit plugins`` / ``pnpkit show``. Registering must stay cheap, since listing plugins
runs every ``register_*`` hook: give factories as references (or import inside the factory) so
that torch, deepinv and diffusers are not imported to list them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics: ``register(name, fn, **metadata)``; ``fn(x, ref)`` returns (B,) or (B, K)."""


@hookspec(firstresult=True)
def render_item(path: Any, panels: Any, history: Any, kind: str, sample_rate: Any,
                channel_names: Any) -> Any:
    """Draw one solved item's figure to ``path`` (PNG); return True when drawn (first plugin wins)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add CLI subcommands: ``cli.command(name, help=..., run=callable)`` returns an argparse parser."""
