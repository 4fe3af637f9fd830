"""Plugin discovery and the component registry.

Plugins are modules named by entry points in the ``pnpkit`` group. Each entry point is
loaded inside its own guard: a plugin that fails to import, that requires a pnpkit version
other than the installed one, whose hooks raise, or that registers a name another plugin
already holds, is recorded with the reason in :attr:`PluginInfo.error` (shown by
``pnpkit plugins``), and every other plugin still loads.

``PNPKIT_LOAD_PLUGINS=a,b`` loads only the named plugins (entry point or distribution
names); ``PNPKIT_LOAD_PLUGINS=`` (empty) loads none. The core's built-in plugin (HQS, ADMM,
PGD, the metrics) always loads and registers through the same hooks as any other.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import inspect
import os
import traceback
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs

#: Kinds of components and the hook that registers each.
KINDS: dict[str, str] = {
    "solver": "register_solvers",
    "prior": "register_priors",
    "operator": "register_operators",
    "dataset": "register_datasets",
}
ENTRY_POINT_GROUP = "pnpkit"
#: Plugins of the core itself: plugin name -> module. They load whatever PNPKIT_LOAD_PLUGINS says.
DEFAULT_PLUGINS: dict[str, str] = {"builtin": "pnpkit.builtin"}


@dataclass(frozen=True)
class Component:
    """A registered solver, prior, operator or dataset."""

    name: str
    kind: str
    factory: Callable[..., Any]
    plugin: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def create(self, **settings: Any) -> Any:
        """Build the component, checking ``settings`` against the factory's signature."""
        check_settings(self.factory, settings, f"{self.kind} {self.name!r}")
        return self.factory(**settings)

    def build(self, settings: dict[str, Any], *, shape: tuple[int, ...] | None = None,
              device: str | None = None, dtype: str | None = None) -> Any:
        """Build with the user's ``settings`` plus whichever of ``shape`` / ``device`` /
        ``dtype`` the factory accepts (the run layer's one way to build a component)."""
        extra = {k: v for k, v in (("shape", shape), ("device", device), ("dtype", dtype))
                 if v is not None}
        return self.create(**settings, **accepted(self.factory, extra))


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

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "module": self.module, "distribution": self.distribution,
                "version": self.version, "hooks": self.hooks,
                "components": [{"kind": k, "name": n} for k, n in self.components],
                "error": self.error}


class PluginError(LookupError):
    """A component could not be found or built; the message says how to fix it."""


def suggest(word: str, choices: Iterable[str]) -> str:
    """' Did you mean ...?' for the closest of ``choices``, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_settings(factory: Callable[..., Any], settings: dict[str, Any], what: str) -> None:
    """Raise ``TypeError`` naming any key of ``settings`` that ``factory`` does not accept."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
    for key in settings:
        if key not in valid:
            raise TypeError(f"unknown setting {key!r} for {what}.{suggest(key, valid)} "
                            f"Valid settings: {', '.join(valid) or '(none)'}.")


def accepted(factory: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``kwargs`` that ``factory``'s signature names explicitly."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in kwargs.items() if k in params}


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


class PluginManager:
    """Loads plugins once and holds every component they register."""

    def __init__(self, entry_points: Iterable[md.EntryPoint] | None = None,
                 default_plugins: dict[str, str] = DEFAULT_PLUGINS) -> None:
        self.pm = pluggy.PluginManager("pnpkit")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._modules: dict[str, ModuleType] = {}
        for name, module in default_plugins.items():
            self._load(name, lambda m=module: importlib.import_module(m), dist=None, module=module)
        eps = md.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
        wanted = os.environ.get("PNPKIT_LOAD_PLUGINS")
        names = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        for ep in sorted(eps, key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            if names is not None and ep.name not in names and dist_name not in names:
                continue
            self._load(ep.name, ep.load, dist=dist, module=ep.value)
        for info in self.plugins.values():
            if info.error is None:
                self._register_components(info)

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
            mod = load()
            self.pm.register(mod, name=name)
            try:
                self.pm.check_pending()  # a hookimpl whose name is no pnpkit hook
            except pluggy.PluginValidationError:
                self.pm.unregister(mod)
                raise
        except Exception as exc:  # a broken plugin must not take the others down
            info.error = f"failed to load: {type(exc).__name__}: {exc}"
            info.traceback = traceback.format_exc()  # type: ignore[attr-defined]
            return
        self._modules[name] = mod
        info.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(mod) or [])

    def _register_components(self, info: PluginInfo) -> None:
        mod = self._modules[info.name]
        errors: list[str] = []
        for kind, hook_name in KINDS.items():
            impl = getattr(mod, hook_name, None)
            if impl is None or hook_name not in info.hooks:
                continue
            pending: list[Component] = []

            def register(name: str, factory: Callable[..., Any], _kind: str = kind,
                         _pending: list[Component] = pending, **metadata: Any) -> None:
                if not isinstance(name, str) or not name:
                    raise ValueError(f"a {_kind} name must be a non-empty string, got {name!r}")
                if not callable(factory):
                    raise TypeError(f"{_kind} {name!r}: factory {factory!r} is not callable")
                _pending.append(Component(name, _kind, factory, info.name, metadata))

            try:
                impl(register=register)
            except Exception as exc:
                errors.append(f"{hook_name} raised {type(exc).__name__}: {exc}")
                continue
            for comp in pending:
                taken = self.components[kind].get(comp.name)
                if taken is not None:
                    errors.append(f"{kind} {comp.name!r} is already registered by plugin "
                                  f"{taken.plugin!r}; this one was skipped (rename it)")
                    continue
                self.components[kind][comp.name] = comp
                info.components.append((kind, comp.name))
        if errors:
            info.error = "; ".join(errors)

    # -- queries ---------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` of ``kind``, or a :class:`PluginError` that lists the choices."""
        if kind not in KINDS:
            raise PluginError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        table = self.components[kind]
        if name not in table:
            known = ", ".join(sorted(table)) or "(none installed)"
            raise PluginError(f"no {kind} named {name!r}.{suggest(name, table)} "
                              f"Installed {kind}s: {known}. `pnpkit plugins` shows load errors.")
        return table[name]

    def create(self, kind: str, name: str, **settings: Any) -> Any:
        """Build component ``name`` of ``kind`` with ``settings``."""
        return self.get(kind, name).create(**settings)

    def register_commands(self, cli: Any) -> None:
        """Let every loaded plugin add CLI subcommands (a failing plugin is reported, not fatal)."""
        for name, mod in self._modules.items():
            impl = getattr(mod, "register_commands", None)
            if impl is None or "register_commands" not in self.plugins[name].hooks:
                continue
            try:
                impl(cli=cli)
            except Exception as exc:
                self.plugins[name].error = f"register_commands raised {type(exc).__name__}: {exc}"


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
    """Build a registered component: ``create("operator", "box-inpainting", size=64)``."""
    return get_manager().create(kind, name, **settings)
