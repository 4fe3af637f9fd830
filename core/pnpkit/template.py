"""``pnpkit new-plugin``: a plugin package that installs with pip and passes its own tests.

The package is a copy of the file tree ``pnpkit/plugin_template/`` (package data, in the
manner of simonw/llm's cookiecutter template) with ``$placeholders`` filled in by
:class:`string.Template` (no code runs from the template):

- ``NAME`` in a path becomes the module name (``my-solver`` -> ``pnpkit_my_solver``);
- a file named after a kind (``solver.py``) or carrying it before its suffix
  (``test_NAME.solver.py``) is written only for that kind, without the infix;
- ``.tmpl`` is dropped (it keeps the template's Python files away from pytest, ruff and
  mypy, which would otherwise read ``$cls`` as code).

Placeholders: ``$name``, ``$module``, ``$cls``, ``$kind``, ``$contract``, ``$core_version``,
``$next_minor``, ``$requires``.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

#: The kinds of plugin the template makes, and the contract class each one's tests run.
KINDS = {"solver": "SolverContract", "prior": "PriorContract", "operator": "OperatorContract"}

#: What each kind's module imports besides pnpkit (declared in the generated setup.cfg).
REQUIRES = {"solver": [], "prior": ["torch"], "operator": ["torch"]}


def template_root() -> Traversable:
    """The installed template tree, ``pnpkit/plugin_template``."""
    return resources.files("pnpkit") / "plugin_template"


def _walk(node: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    out = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            out += _walk(child, (*prefix, child.name))
        else:
            out.append(((*prefix, child.name), child))
    return out


def _target(parts: tuple[str, ...], kind: str, module: str) -> tuple[str, ...] | None:
    """Where a template file goes for ``kind``, or None when it belongs to another kind."""
    name = parts[-1].removesuffix(".tmpl")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    base, _, tag = stem.rpartition(".")
    if base and tag in KINDS:  # test_NAME.solver.py: only for solvers, written test_NAME.py
        if tag != kind:
            return None
        name = f"{base}.{suffix}" if suffix else base
    elif stem in KINDS and stem != kind:  # solver.py, prior.py, operator.py
        return None
    return tuple(p.replace("NAME", module) for p in (*parts[:-1], name))


def render_plugin(name: str, kind: str, where: Path) -> Path:
    """Write ``where/pnpkit-<name>/`` for a ``kind`` plugin; returns the package folder.

    :param str name: the plugin's short name (lower-case letters, digits, ``-``, ``_``).
    :param str kind: ``"solver"``, ``"prior"`` or ``"operator"``.
    :param pathlib.Path where: the folder in which ``pnpkit-<name>/`` is created.
    :raises ValueError: for a bad name or kind.
    :raises FileExistsError: when ``where/pnpkit-<name>`` exists.
    """
    from . import __version__

    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ValueError(f"plugin name {name!r} must be lower-case letters, digits, '-' or '_', "
                         "starting with a letter")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    module = name.replace("-", "_")
    cls = "".join(part.capitalize() for part in re.split(r"[-_]", name)) + kind.capitalize()
    major, minor = (int(v) for v in __version__.split(".")[:2])
    fields = dict(name=name, module=module, cls=cls, kind=kind, contract=KINDS[kind],
                  core_version=__version__, next_minor=f"{major}.{minor + 1}",
                  requires="".join(f"\n    {r}" for r in REQUIRES[kind]))
    root = Path(where) / f"pnpkit-{name}"
    if root.exists():
        raise FileExistsError(f"{root} already exists; choose another name or folder")
    files = _walk(template_root())
    if not files:
        raise FileNotFoundError(f"the plugin template {template_root()} is missing or empty; "
                                "reinstall pnpkit (pip install --force-reinstall pnpkit)")
    for parts, source in files:
        target = _target(parts, kind, module)
        if target is None:
            continue
        path = root.joinpath(*target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(source.read_text(encoding="utf-8")).substitute(fields),
                        encoding="utf-8")
    return root
