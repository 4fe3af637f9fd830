"""``pnpkit show KIND NAME``: every setting of a component, its type, default and presets, and
its documentation rendered from reST to plain text (``--json`` for the same as data).

Every setting is listed, those whose default is ``None`` too (a solver's preset-controlled
settings, a prior's ``path``). For a solver with presets (``PRESETS`` layered over ``BASE``,
see :meth:`pnpkit.solvers.Solver.apply_preset`), each preset-controlled setting says the value
it gets without a preset and under each preset. Settings the pipeline fills itself
(``shape``, ``device``, ``dtype``; a metric's inputs) are marked so.

>>> from pnpkit.show import rest_to_text
>>> print(rest_to_text("Uses :class:`~pnpkit.priors.Prior` and ``eps``::\\n\\n    x = 1"))
Uses Prior and `eps`:
<BLANKLINE>
    x = 1
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Setting", "describe", "format_text", "parse_fields", "rest_to_text", "show"]

#: Parameters the run layer passes itself (``Component.build``), never set in a configuration.
PIPELINE = ("shape", "device", "dtype")
#: What a metric receives besides its settings: the result, the reference and the item's rate.
METRIC_INPUTS = ("sample_rate",)

_FIELD = re.compile(r"^:(param|parameter|arg|argument|key|keyword|ivar|var|cvar|raises?|except|"
                    r"returns?|rtype|type|yields?)(?:\s+([^:]+?))?:\s*(.*)$")
_ROLE = re.compile(r":(\w+):`(~?)([^`<]+?)(?:\s*<([^>]+)>)?`")
_LINK = re.compile(r"`([^`<]+?)\s*<([^>]+)>`_{1,2}")


def _role(match: re.Match[str]) -> str:
    role, tilde, target = match.group(1), match.group(2), match.group(3).strip()
    if role == "math":
        return target
    if tilde:
        target = target.rsplit(".", 1)[-1]
    return f"{target}()" if role in ("meth", "func") else target


def parse_fields(doc: str) -> tuple[str, dict[str, dict[str, str]], list[tuple[str, str]]]:
    """Split a reST docstring into its body, its ``:param:`` fields and its other fields.

    :param str doc: a cleaned docstring (:func:`inspect.cleandoc`).
    :return: ``(body, params, others)``: the text without field lists; ``{name: {"type",
        "doc"}}`` from ``:param type name:`` / ``:ivar:`` / ``:type name:``; and
        ``[(label, text)]`` for ``:raises X:``, ``:return:`` and the like, in order.

    >>> body, params, others = parse_fields("Add.\\n\\n:param int n: how many,\\n    at least 1.\\n"
    ...                                     ":raises ValueError: when n < 1.")
    >>> body, params["n"], others
    ('Add.', {'type': 'int', 'doc': 'how many, at least 1.'}, [('Raises ValueError', 'when n < 1.')])
    """
    body: list[str] = []
    param_lines: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    other_lines: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in doc.splitlines():
        m = _FIELD.match(line)
        if m:
            kind, arg, text = m.group(1), (m.group(2) or "").strip(), m.group(3)
            current = [text] if text else []
            if kind in ("param", "parameter", "arg", "argument", "key", "keyword", "ivar", "var",
                        "cvar"):
                *type_words, name = arg.split() if arg else [""]
                param_lines[name] = current
                types.setdefault(name, " ".join(type_words))
            elif kind == "type":
                types[arg] = text
                param_lines.setdefault(arg, [])
                current = None
            else:
                label = {"raise": "Raises", "raises": "Raises", "except": "Raises",
                         "return": "Returns", "returns": "Returns", "rtype": "Return type",
                         "yield": "Yields", "yields": "Yields"}[kind]
                other_lines.append((f"{label} {arg}".strip(), current))
            continue
        if current is not None and line.startswith((" ", "\t")) and line.strip():
            current.append(line.strip())
            continue
        current = None
        body.append(line)
    params = {name: {"type": types.get(name, ""), "doc": " ".join(lines)}
              for name, lines in param_lines.items()}
    others = [(label, " ".join(lines)) for label, lines in other_lines]
    return "\n".join(body).strip("\n"), params, others


def rest_to_text(text: str) -> str:
    """reST to readable plain text: roles (``:class:`~a.B``` -> ``B``), literals (````x```` ->
    ```x```), links, ``::`` literal-block markers and directives (``.. math::`` -> ``Math:``)."""
    text = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
    text = _ROLE.sub(_role, text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    out = []
    for line in text.splitlines():
        directive = re.match(r"^(\s*)\.\. ([\w-]+)::\s*(.*)$", line)
        if directive:
            indent, name, arg = directive.groups()
            out.append(f"{indent}{name.capitalize()}:{' ' + arg if arg else ''}")
            continue
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2]
            line = stripped.rstrip() if stripped.endswith(" ") or not stripped.strip() else stripped + ":"
            if not line.strip():
                continue
        out.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


def _type_name(hint: Any) -> str:
    if hint is None or hint is inspect.Parameter.empty or hint is dataclasses.MISSING:
        return ""
    if isinstance(hint, str):
        return hint
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


@dataclass
class Setting:
    """One setting of a component, as ``pnpkit show`` prints it.

    :ivar str name: the keyword.
    :ivar str type: its annotation as written (``"int | None"``), or the docstring's type.
    :ivar default: its default (``None`` included); meaningless when ``required``.
    :ivar bool required: no default: a configuration must give it.
    :ivar str doc: its ``:param:`` text, rendered.
    :ivar bool pipeline: filled by the run layer, not by a configuration.
    :ivar dict presets: preset name -> the value that preset gives it (``BASE`` layered under
        the preset), for the settings presets control.
    :ivar base: its value in ``BASE`` (applied without a preset), or None (``in_base`` says).
    """

    name: str
    type: str = ""
    default: Any = None
    required: bool = False
    doc: str = ""
    pipeline: bool = False
    presets: dict[str, Any] = field(default_factory=dict)
    base: Any = None
    in_base: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type or None,
                               "default": None if self.required else _jsonable(self.default),
                               "required": self.required, "doc": self.doc,
                               "pipeline": self.pipeline}
        if self.presets or self.in_base:
            out["base"] = _jsonable(self.base) if self.in_base else None
            out["presets"] = {k: _jsonable(v) for k, v in self.presets.items()}
        return out


def _param_docs(factory: Callable[..., Any]) -> dict[str, dict[str, str]]:
    """``:param:`` entries of the factory's docstring and, for a class, its bases' (first wins)."""
    docs: dict[str, dict[str, str]] = {}
    owners = inspect.getmro(factory) if inspect.isclass(factory) else (factory,)
    for owner in owners:
        raw = owner.__dict__.get("__doc__") if inspect.isclass(owner) else owner.__doc__
        if not raw:
            continue
        for name, entry in parse_fields(inspect.cleandoc(raw))[1].items():
            docs.setdefault(name, entry)
    return docs


def settings(factory: Callable[..., Any], kind: str) -> list[Setting]:
    """Every setting ``factory`` takes, with its type, default, documentation and presets."""
    docs = _param_docs(factory)
    out: list[Setting] = []
    if inspect.isclass(factory) and dataclasses.is_dataclass(factory):
        for f in dataclasses.fields(factory):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                default, required = f.default, False
            elif f.default_factory is not dataclasses.MISSING:
                default, required = f.default_factory(), False
            else:
                default, required = None, True
            out.append(Setting(f.name, _type_name(f.type), default, required))
    else:
        try:
            params = list(inspect.signature(factory).parameters.values())
        except (TypeError, ValueError):
            params = []
        inputs = 2 if kind == "metric" else 0
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
                continue
            if inputs and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) \
                    and p.default is p.empty:
                inputs -= 1  # a metric's x and ref
                continue
            required = p.default is p.empty
            out.append(Setting(p.name, _type_name(p.annotation), None if required else p.default,
                               required))
    presets: dict[str, dict[str, Any]] = getattr(factory, "PRESETS", None) or {}
    base: dict[str, Any] = getattr(factory, "BASE", None) or {}
    for s in out:
        entry = docs.get(s.name, {})
        s.doc = rest_to_text(entry.get("doc", ""))
        s.type = s.type or entry.get("type", "")
        s.pipeline = s.name in PIPELINE or (kind == "metric" and s.name in METRIC_INPUTS)
        if isinstance(presets, dict) and isinstance(base, dict):
            s.in_base = s.name in base
            s.base = base.get(s.name)
            s.presets = {p: {**base, **values}[s.name] for p, values in sorted(presets.items())
                         if isinstance(values, dict) and s.name in {**base, **values}}
    return out


def describe(kind: str, name: str) -> dict[str, Any]:
    """What ``pnpkit show --json KIND NAME`` prints: the component, its metadata, every setting
    (:meth:`Setting.as_dict`), the presets and the rendered documentation."""
    from .plugins import get_manager

    comp = get_manager().get(kind, name)
    factory = comp.factory
    doc = inspect.getdoc(factory) or ""
    body, _, others = parse_fields(doc)
    text = rest_to_text(body)
    extra = "\n".join(f"{label}: {rest_to_text(value)}" for label, value in others)
    presets = getattr(factory, "PRESETS", None)
    return {
        "kind": comp.kind, "name": comp.name, "plugin": comp.plugin, "qualified": comp.qualified,
        "factory": f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', '?')}",
        "metadata": {k: _jsonable(v) for k, v in comp.metadata.items()},
        "settings": [s.as_dict() for s in settings(factory, comp.kind)],
        "presets": ({k: {n: _jsonable(v) for n, v in vals.items()} for k, vals in presets.items()}
                    if isinstance(presets, dict) else {}),
        "base": {k: _jsonable(v) for k, v in (getattr(factory, "BASE", None) or {}).items()},
        "doc": (text + ("\n\n" + extra if extra else "")).strip(),
    }


def _value(v: Any) -> str:
    return repr(v)


def _preset_line(s: dict[str, Any]) -> str:
    """``10 (no preset, sr4), 20 (box-inpainting)``: the value of one setting under each preset."""
    groups: dict[str, list[str]] = {}
    if s.get("base") is not None:
        groups[_value(s["base"])] = ["no preset"]
    for preset, value in s["presets"].items():
        groups.setdefault(_value(value), []).append(preset)
    return ", ".join(f"{value} ({', '.join(names)})" for value, names in groups.items())


def format_text(info: dict[str, Any], width: int = 100) -> str:
    """The text ``pnpkit show`` prints for :func:`describe`'s ``info``."""
    import textwrap

    lines = [f"{info['kind']} {info['name']!r} from plugin {info['plugin']!r} "
             f"(qualified name {info['qualified']!r})"]
    for key, value in info["metadata"].items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        lines.append(f"  {key}: {shown}")
    own = [s for s in info["settings"] if not s["pipeline"]]
    passed = [s["name"] for s in info["settings"] if s["pipeline"]]
    lines += ["", "Settings (name: type = default):" if own else "Settings: none"]
    for s in own:
        head = f"  {s['name']}"
        if s["type"]:
            head += f": {s['type']}"
        head += " (required)" if s["required"] else f" = {_value(s['default'])}"
        lines.append(head)
        wrap = dict(width=width, initial_indent="      ", subsequent_indent="      ",
                    break_on_hyphens=False)
        if s["doc"]:
            lines += textwrap.wrap(s["doc"], **wrap)  # type: ignore[arg-type]
        if s.get("presets"):
            lines += textwrap.wrap("presets: " + _preset_line(s), **wrap)  # type: ignore[arg-type]
    if passed:
        lines.append(f"  (passed by the pipeline: {', '.join(passed)})")
    if info["presets"]:
        lines += [""] + textwrap.wrap(
            f"Presets: {', '.join(sorted(info['presets']))}. A setting left at None takes the "
            f"preset's value (or, without a preset, the \"no preset\" one); explicit settings win.",
            width=width, break_on_hyphens=False)
    if info["doc"]:
        lines += ["", info["doc"]]
    return "\n".join(lines)


def show(kind: str, name: str, as_json: bool = False) -> int:
    """Print a component's settings and documentation (``pnpkit show``); returns 0."""
    info = describe(kind, name)
    print(json.dumps(info, indent=2) if as_json else format_text(info))
    return 0
