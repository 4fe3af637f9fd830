"""The component registry: what plugins register, found by bare or qualified name.

Every component is reachable by its **qualified name** ``plugin:name`` (``projdiff:projdiff``,
``operators:psnr_pr``). A **bare name** (``projdiff``) finds the component when exactly one
plugin registers that name; when two or more do, it is a clash: asking for the bare name is an
error that names every claimant and their qualified names, whichever order the plugins loaded
in. A factory may be given as a reference string ``"module:attr"``, imported on first use, so
that registering (and listing) a plugin imports nothing heavy.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: A lazy factory reference: ``"package.module:attribute"`` (dotted attribute allowed).
REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


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


def resolve(reference: str) -> Any:
    """Import ``"module:attr"`` and return the attribute (``attr`` may be dotted)."""
    module, _, attr = reference.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Component:
    """A registered solver, prior, operator, dataset or metric.

    :param str name: the bare name it was registered under.
    :param str kind: ``solver``, ``prior``, ``operator``, ``dataset`` or ``metric``.
    :param target: the factory, or a ``"module:attr"`` reference to it imported on first use.
    :param str plugin: the plugin that registered it.
    :param dict metadata: what ``pnpkit plugins`` / ``pnpkit show`` display.
    """

    name: str
    kind: str
    target: Callable[..., Any] | str
    plugin: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        """``plugin:name``, unique across plugins."""
        return f"{self.plugin}:{self.name}"

    @property
    def factory(self) -> Callable[..., Any]:
        """The factory, importing a ``"module:attr"`` reference on first use."""
        if not isinstance(self.target, str):
            return self.target
        try:
            obj = resolve(self.target)
        except Exception as exc:
            raise PluginError(f"{self.kind} {self.qualified!r}: cannot import its factory "
                              f"{self.target!r} ({type(exc).__name__}: {exc}); fix the "
                              f"reference in plugin {self.plugin!r}'s registration") from exc
        if not callable(obj):
            raise PluginError(f"{self.kind} {self.qualified!r}: {self.target!r} is not callable; "
                              f"register a function or a class")
        object.__setattr__(self, "target", obj)  # resolved once; a frozen record otherwise
        return obj

    def create(self, **settings: Any) -> Any:
        """Build the component, checking ``settings`` against the factory's signature."""
        factory = self.factory
        check_settings(factory, settings, f"{self.kind} {self.name!r}")
        return factory(**settings)

    def build(self, settings: dict[str, Any], *, shape: tuple[int, ...] | None = None,
              device: str | None = None, dtype: str | None = None) -> Any:
        """Build with the user's ``settings`` plus whichever of ``shape`` / ``device`` /
        ``dtype`` the factory accepts (the run layer's one way to build a component)."""
        extra = {k: v for k, v in (("shape", shape), ("device", device), ("dtype", dtype))
                 if v is not None}
        return self.create(**settings, **accepted(self.factory, extra))


def check_registration(kind: str, name: Any, factory: Any) -> None:
    """Raise ``ValueError`` / ``TypeError`` for a name or factory no one could look up or call."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"a {kind} name must be a non-empty string without ':' (':' separates "
                         f"the plugin in a qualified name), got {name!r}")
    if isinstance(factory, str):
        if not REFERENCE.match(factory):
            raise ValueError(f"{kind} {name!r}: factory reference {factory!r} is not "
                             f"'module:attr' (e.g. 'pnpkit_mysolver.solver:MySolver')")
    elif not callable(factory):
        raise TypeError(f"{kind} {name!r}: factory {factory!r} is not callable; pass the class "
                        f"or function, or a 'module:attr' reference to it")


class Registry:
    """The components of one kind: ``by qualified name`` and ``by bare name``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.qualified: dict[str, Component] = {}
        self.claims: dict[str, list[Component]] = {}

    def add(self, comp: Component) -> None:
        if comp.qualified in self.qualified:
            raise ValueError(f"{self.kind} {comp.name!r} registered twice by plugin "
                             f"{comp.plugin!r}; register each name once")
        self.qualified[comp.qualified] = comp
        self.claims.setdefault(comp.name, []).append(comp)

    def unique(self) -> dict[str, Component]:
        """Bare name -> component, for the names exactly one plugin registers."""
        return {n: c[0] for n, c in self.claims.items() if len(c) == 1}

    def clashes(self) -> dict[str, list[Component]]:
        """Bare name -> its claimants (sorted by plugin), for names two or more plugins register."""
        return {n: sorted(c, key=lambda comp: comp.plugin)
                for n, c in self.claims.items() if len(c) > 1}

    def clash_message(self, name: str) -> str:
        owners = self.clashes()[name]
        return (f"{self.kind} {name!r} is registered by {len(owners)} plugins "
                f"({', '.join(repr(c.plugin) for c in owners)}); use a qualified name: "
                f"{' or '.join(repr(c.qualified) for c in owners)}")

    def get(self, name: str) -> Component:
        if ":" in name:
            if name in self.qualified:
                return self.qualified[name]
            raise PluginError(f"no {self.kind} named {name!r}.{suggest(name, self.qualified)} "
                              f"Installed {self.kind}s: {', '.join(self.qualified) or '(none)'}.")
        if name in self.claims and len(self.claims[name]) > 1:
            raise PluginError(self.clash_message(name))
        if name in self.claims:
            return self.claims[name][0]
        known = ", ".join(sorted(self.claims)) or "(none installed)"
        raise PluginError(f"no {self.kind} named {name!r}.{suggest(name, self.claims)} "
                          f"Installed {self.kind}s: {known}. `pnpkit plugins` shows load errors.")
