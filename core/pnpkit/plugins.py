"""Plugin discovery and loading, with every hook called through pluggy.

Plugins are named by entry points in the ``pnpkit`` group: a module, a class (instantiated
without arguments) or any object whose methods carry :data:`pnpkit.hookimpl`. Each entry point
is loaded inside its own guard: a plugin that fails to import (an exception, ``sys.exit``, any
``BaseException`` but ``KeyboardInterrupt``), that requires a pnpkit version other than the
installed one, that implements a hook pnpkit does not have, or whose hooks raise, is recorded
with the reason in :attr:`PluginInfo.error` (shown by ``pnpkit plugins``), and every other
plugin still loads. A function that looks like a hook but is not marked with ``hookimpl`` is
reported in :attr:`PluginInfo.warnings`.

Hooks are called through the pluggy manager, one hook implementation at a time (so that each
plugin's failures stay its own), in pluggy's order (``tryfirst`` / ``trylast``); ``specname``
and class-based plugins work as pluggy defines them. Components are kept in
:class:`pnpkit.registry.Registry` tables: by qualified name ``plugin:name`` always, by bare
name when only one plugin registers it; a clash is reported on every plugin involved.

``PNPKIT_LOAD_PLUGINS=a,b`` loads only the named plugins (entry point or distribution
names); ``PNPKIT_LOAD_PLUGINS=`` (empty) loads none. The core's built-in plugin (HQS, ADMM,
PGD, the pseudo-inverse, the generic metrics) always loads and registers through the same
hooks as any other.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as md
import inspect
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .registry import (
    Component,
    PluginError,
    Registry,
    accepted,
    check_registration,
    check_settings,
    suggest,
)

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "HOOKS", "KINDS", "Component", "PluginError",
           "PluginInfo", "PluginManager", "accepted", "check_settings", "create", "get_manager",
           "reset_manager", "suggest"]

#: Kinds of components and the hook that registers each.
KINDS: dict[str, str] = {
    "solver": "register_solvers",
    "prior": "register_priors",
    "operator": "register_operators",
    "dataset": "register_datasets",
    "metric": "register_metrics",
}
#: Every hook pnpkit defines (the names in :mod:`pnpkit.hookspecs`).
HOOKS: tuple[str, ...] = tuple(sorted(n for n, f in vars(hookspecs).items()
                                      if hasattr(f, "pnpkit_spec")))
ENTRY_POINT_GROUP = "pnpkit"
#: Plugins of the core itself: plugin name -> module. They load whatever PNPKIT_LOAD_PLUGINS says.
DEFAULT_PLUGINS: dict[str, str] = {"builtin": "pnpkit.builtin"}


@dataclass
class PluginInfo:
    """What ``pnpkit plugins`` reports for one plugin."""

    name: str
    module: str | None = None
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    components: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def add_error(self, message: str) -> None:
        self.error = message if self.error is None else f"{self.error}; {message}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "module": self.module, "distribution": self.distribution,
                "version": self.version, "hooks": self.hooks,
                "components": [{"kind": k, "name": n} for k, n in self.components],
                "error": self.error, "warnings": self.warnings}


def _core_version() -> str:
    from . import __version__

    return __version__


def _incompatibility(dist: md.Distribution | None) -> str | None:
    """Why ``dist`` cannot run with the installed core, or None when it can."""
    if dist is None:
        return None
    from packaging.requirements import InvalidRequirement, Requirement

    for line in dist.requires or ():
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name.lower().replace("_", "-") != "pnpkit" or req.marker is not None:
            continue
        if req.specifier and not req.specifier.contains(_core_version(), prereleases=True):
            return (f"requires pnpkit{req.specifier} but pnpkit {_core_version()} is installed; "
                    f"install a version of {dist.metadata['Name']} built for this pnpkit")
    return None


def _failure(exc: BaseException) -> str:
    what = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SystemExit):
        what += " (the plugin called sys.exit; raise an exception instead)"
    return what


def unmarked_hooks(plugin: Any) -> list[str]:
    """Warnings for functions of ``plugin`` named like a hook but not marked ``hookimpl``.

    pluggy silently ignores an unmarked function, so a plugin that forgot the decorator
    registers nothing; only functions defined in the plugin module itself are considered.
    """
    out = []
    for attr in sorted(dir(plugin)):
        if attr not in HOOKS and not attr.startswith("register_"):
            continue
        obj = inspect.getattr_static(plugin, attr, None)
        obj = getattr(obj, "__func__", obj)  # staticmethod / classmethod
        if not callable(obj) or hasattr(obj, "pnpkit_impl"):
            continue
        if isinstance(plugin, ModuleType) and getattr(obj, "__module__", None) != plugin.__name__:
            continue
        hint = "" if attr in HOOKS else f" (no pnpkit hook has this name.{suggest(attr, HOOKS)})"
        out.append(f"function {attr!r} is not marked with @pnpkit.hookimpl, so pnpkit never "
                   f"calls it{hint}; decorate it or rename it")
    return out


class PluginManager:
    """Loads plugins once and holds every component they register."""

    def __init__(self, entry_points: Iterable[md.EntryPoint] | None = None,
                 default_plugins: dict[str, str] = DEFAULT_PLUGINS) -> None:
        self.pm = pluggy.PluginManager("pnpkit")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.registries: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}
        for name, module in default_plugins.items():
            self._load(name, functools.partial(importlib.import_module, module), dist=None,
                       module=module)
        eps = md.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
        wanted = os.environ.get("PNPKIT_LOAD_PLUGINS")
        names = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}

        def dist_name(ep: md.EntryPoint) -> str:
            dist = getattr(ep, "dist", None)
            return dist.metadata["Name"] if dist is not None else ""

        # Sorted on everything an entry point has: the result does not depend on the order
        # in which importlib.metadata happens to list the installed distributions.
        for ep in sorted(eps, key=lambda e: (e.name, dist_name(e), e.value)):
            if names is not None and ep.name not in names and dist_name(ep) not in names:
                continue
            self._load(ep.name, ep.load, dist=getattr(ep, "dist", None), module=ep.value)
        for kind in KINDS:
            self._register_kind(kind)
        self._report_clashes()

    # -- loading -------------------------------------------------------------------------
    def _load(self, name: str, load: Callable[[], Any], dist: md.Distribution | None,
              module: str | None = None) -> None:
        info = PluginInfo(name=name, module=module or name,
                          distribution=dist.metadata["Name"] if dist is not None else "pnpkit",
                          version=dist.version if dist is not None else _core_version())
        if name in self.plugins:
            info.error = (f"plugin name {name!r} is already used by "
                          f"{self.plugins[name].distribution}; rename the entry point")
            self.plugins[f"{name} ({info.distribution})"] = info
            return
        self.plugins[name] = info
        info.error = _incompatibility(dist)
        if info.error:
            return
        try:
            plugin = load()
            if inspect.isclass(plugin):
                plugin = plugin()
            self.pm.register(plugin, name=name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin must not take the others down
            info.error = f"failed to load: {_failure(exc)}"
            info.traceback = traceback.format_exc()  # type: ignore[attr-defined]
            return
        unknown = [c.name for c in self.pm.get_hookcallers(plugin) or [] if not c.has_spec()]
        if unknown:
            self.pm.unregister(plugin)
            info.error = "; ".join(
                f"hook {h!r} is not a pnpkit hook.{suggest(h, HOOKS)} Hooks: {', '.join(HOOKS)}"
                for h in unknown)
            return
        info.hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
        info.warnings = unmarked_hooks(plugin)

    def impls(self, hook: str) -> list[pluggy.HookImpl]:
        """The hook's implementations in pluggy's call order (``tryfirst`` first, then the
        plugins loaded last, as pluggy calls them)."""
        return list(reversed(getattr(self.pm.hook, hook).get_hookimpls()))

    def call_each(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of ``hook``, each failure recorded on its own plugin."""
        for impl in self.impls(hook):
            self._call(impl, hook, kwargs)

    def _call(self, impl: pluggy.HookImpl, hook: str, kwargs: dict[str, Any]) -> bool:
        info = self.plugins[impl.plugin_name]
        if impl.hookwrapper or impl.wrapper:
            info.add_error(f"{hook} is a wrapper; pnpkit's register hooks take plain hookimpls")
            return False
        try:
            impl.function(*(kwargs[a] for a in impl.argnames))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            info.add_error(f"{hook} raised {_failure(exc)}")
            return False
        return True

    def _register_kind(self, kind: str) -> None:
        hook = KINDS[kind]
        for impl in self.impls(hook):
            info = self.plugins[impl.plugin_name]
            pending: list[Component] = []

            def register(name: str, factory: Callable[..., Any] | str,
                         _plugin: str = info.name, _pending: list[Component] = pending,
                         **metadata: Any) -> None:
                check_registration(kind, name, factory)
                _pending.append(Component(name, kind, factory, _plugin, metadata))

            if not self._call(impl, hook, {"register": register}):
                continue  # a hook that raised registers nothing
            for comp in pending:
                try:
                    self.registries[kind].add(comp)
                except ValueError as exc:
                    info.add_error(str(exc))
                    continue
                info.components.append((kind, comp.name))

    def _report_clashes(self) -> None:
        for registry in self.registries.values():
            for name, owners in registry.clashes().items():
                for comp in owners:
                    self.plugins[comp.plugin].add_error(registry.clash_message(name))

    # -- queries ---------------------------------------------------------------------------
    @property
    def components(self) -> dict[str, dict[str, Component]]:
        """``{kind: {bare name: component}}`` for the names exactly one plugin registers."""
        return {kind: reg.unique() for kind, reg in self.registries.items()}

    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` (bare or ``plugin:name``) of ``kind``, or a
        :class:`PluginError` that lists the choices (or the qualified names of a clash)."""
        if kind not in KINDS:
            raise PluginError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        return self.registries[kind].get(name)

    def names(self, kind: str) -> list[str]:
        """The names ``get`` accepts for ``kind``: unique bare names, then every qualified name."""
        reg = self.registries[kind]
        return sorted(reg.unique()) + sorted(reg.qualified)

    def create(self, kind: str, name: str, **settings: Any) -> Any:
        """Build component ``name`` of ``kind`` with ``settings``."""
        return self.get(kind, name).create(**settings)

    def register_commands(self, cli: Any) -> None:
        """Let every loaded plugin add CLI subcommands (a failing plugin is reported, not fatal)."""
        self.call_each("register_commands", cli=cli)


_MANAGER: PluginManager | None = None


def get_manager() -> PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = PluginManager()
    return _MANAGER


def reset_manager(manager: PluginManager | None = None) -> None:
    """Forget the loaded plugins (tests), or install ``manager`` as the process-wide one."""
    global _MANAGER
    _MANAGER = manager


def create(kind: str, name: str, **settings: Any) -> Any:
    """Build a registered component: ``create("operator", "box-inpainting", shape=(1, 64, 64))``.

    ``pnpkit show KIND NAME`` lists the settings a component takes (here ``shape``, the signal
    shape without the batch axis, and ``sigma_y``, ``box_fraction``...).
    """
    return get_manager().create(kind, name, **settings)
