"""Docs that run: every Python block and every shell command of every README, as printed.

Every fenced block of every ``README.md`` in the house (the root's and each package's) is
tagged: ``python`` blocks run in order, in one fresh interpreter per README (so a block may
use what an earlier one defined), and ``sh`` blocks run command by command in bash, both in a
scratch folder that sees the repository's top-level folders (``configs/``, ``examples/``, ...);
``toml`` blocks are parsed, and the components they name must exist (a full pipeline
configuration is validated too); ``text`` / ``ini`` blocks are shown, not run. A block that
needs built data or a long run says so in the README, on the line before it::

    <!-- docs-test: skip (needs the built chorales dataset) -->
    <!-- docs-test: skip "pip install", "pytest" (installs into your environment) -->

The first form skips the block, the second the block's commands that start with one of the
quoted prefixes; the reason in parentheses is required. The sizes in the docs are small, so
the whole file runs in well under a minute.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Folders whose READMEs are not the house's docs: the plugin template's README is a
#: template (placeholders; tests/test_template.py renders and runs the package it makes).
EXCLUDED = {".venv", ".git", "runs", "data", "build", "dist", "node_modules", "plugin_template"}
RUN = {"python", "sh"}
SHOWN = {"text", "ini", "json"}
CHECKED = {"toml"}
MARKER = re.compile(r"^<!--\s*docs-test:\s*skip\s*(?P<prefixes>(?:\"[^\"]+\"\s*,?\s*)*)"
                    r"\((?P<reason>[^)]+)\)\s*-->$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[^\s`]*)\s*$")
KINDS = {"operator": "operator", "prior": "prior", "solver": "solver"}


@dataclass
class Block:
    readme: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip: str | None = None  # the reason, when the whole block is skipped
    skip_prefixes: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.readme.relative_to(ROOT)}:{self.line}"


def readmes() -> list[Path]:
    return sorted(p for p in ROOT.rglob("README.md")
                  if not EXCLUDED & set(p.relative_to(ROOT).parts[:-1]))


def blocks(readme: Path) -> list[Block]:
    """The fenced blocks of ``readme``, with the skip marker on the line before each."""
    lines = readme.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group("indent"))
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        assert j < len(lines), f"{readme}:{i + 1}: unclosed code block"
        code = "\n".join(line[indent:] for line in lines[i + 1:j])
        block = Block(readme, i + 1, m.group("lang"), code)
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = MARKER.match(lines[k].strip()) if k >= 0 else None
        if k >= 0 and "docs-test" in lines[k]:
            assert marker, f"{readme}:{k + 1}: malformed marker {lines[k].strip()!r}; write " \
                           "<!-- docs-test: skip (reason) --> or <!-- docs-test: skip \"cmd\" (reason) -->"
        if marker:
            prefixes = re.findall(r"\"([^\"]+)\"", marker.group("prefixes"))
            if prefixes:
                block.skip_prefixes = prefixes
            else:
                block.skip = marker.group("reason").strip()
        out.append(block)
        i = j + 1
    return out


ALL = [b for r in readmes() for b in blocks(r)]


def _id(obj: object) -> str:
    return str(obj.relative_to(ROOT)) if isinstance(obj, Path) else str(obj)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A scratch folder that sees the repository's top-level folders through links."""
    for entry in ROOT.iterdir():
        if entry.name not in {".git", ".venv", "runs", "data"} and not entry.name.startswith("."):
            (tmp_path / entry.name).symlink_to(entry)
    return tmp_path


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PNPKIT_LOAD_PLUGINS", None)
    return env


# -- the blocks are tagged and the markers honest ---------------------------------------------------

def test_the_readmes_are_found():
    names = {_id(p) for p in readmes()}
    assert {"README.md", "operators/pnpkit-operators/README.md", "priors/pnpkit-priors/README.md",
            "priors/pnpkit-audio/README.md", "plugins/pnpkit-dcdp/README.md"} <= names
    assert not any("plugin_template" in n for n in names)


@pytest.mark.parametrize("block", ALL, ids=lambda b: b.where)
def test_every_block_says_what_it_is(block: Block):
    assert block.lang in RUN | SHOWN | CHECKED, (
        f"{block.where}: tag the block: ```python or ```sh (run by this test), ```toml "
        f"(parsed, names checked), or ```text / ```ini (shown only); got {block.lang or 'no tag'!r}")
    if block.skip or block.skip_prefixes:
        assert block.lang in RUN, f"{block.where}: a skip marker only applies to python / sh blocks"
    for prefix in block.skip_prefixes:
        assert any(c.startswith(prefix) for c in _commands(block.code)), \
            f"{block.where}: the marker skips {prefix!r} but no command starts with it"


def test_the_marker_syntax():
    assert MARKER.match("<!-- docs-test: skip (needs the built dataset) -->").group("reason") \
        == "needs the built dataset"
    m = MARKER.match('<!-- docs-test: skip "pip install", "pytest" (installs) -->')
    assert re.findall(r"\"([^\"]+)\"", m.group("prefixes")) == ["pip install", "pytest"]
    assert MARKER.match("<!-- docs-test: skip -->") is None  # a reason is required


# -- python ----------------------------------------------------------------------------------------

PY_READMES = sorted({b.readme for b in ALL if b.lang == "python" and not b.skip})


@pytest.mark.parametrize("readme", PY_READMES, ids=_id)
def test_python_blocks_run_as_printed(readme: Path, sandbox: Path):
    todo = [b for b in blocks(readme) if b.lang == "python" and not b.skip]
    # each block compiled under its README line numbers: a traceback points at the README
    script = ["import sys", "ns = {'__name__': '__main__'}"]
    for b in todo:
        padded = "\n" * b.line + b.code  # the code's first line is the one after the fence
        script.append(f"exec(compile({padded!r}, {str(b.readme)!r}, 'exec'), ns)")
        script.append(f"print('docs-test: ran {b.where}', flush=True)")
    done = subprocess.run([sys.executable, "-c", "\n".join(script)], cwd=sandbox, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (f"a Python block of {_id(readme)} failed as printed:\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-4000:]}")
    assert done.stdout.count("docs-test: ran ") == len(todo)


# -- shell -------------------------------------------------------------------------------------------

def _commands(code: str) -> list[str]:
    """The commands of a shell block: one per line, ``\\``-continued lines joined, comments off."""
    out, pending = [], ""
    for raw in code.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        words = shlex.split(line, comments=True)
        if words:
            out.append(" ".join(shlex.quote(w) for w in words))
    return out


SH_BLOCKS = [b for b in ALL if b.lang == "sh" and not b.skip]


@pytest.mark.parametrize("block", SH_BLOCKS, ids=lambda b: b.where)
def test_shell_commands_run_as_printed(block: Block, sandbox: Path):
    ran = 0
    for command in _commands(block.code):
        if any(command.startswith(p) for p in block.skip_prefixes):
            continue
        done = subprocess.run(["bash", "-c", command], cwd=sandbox, env=_env(),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (f"{block.where}: `{command}` failed as printed "
                                      f"(exit {done.returncode}):\n{done.stdout[-2000:]}\n"
                                      f"{done.stderr[-3000:]}")
        ran += 1
    assert ran, f"{block.where}: every command is skipped; mark the whole block instead"


# -- toml ---------------------------------------------------------------------------------------------

def named_components(raw: dict) -> list[tuple[str, str]]:
    """(kind, name) for every component a configuration or a sweep names."""
    out = [(KINDS[s], raw[s]["name"]) for s in KINDS if isinstance(raw.get(s), dict) and "name" in raw[s]]
    out += [("metric", m) for m in raw.get("metrics", [])]
    if isinstance(raw.get("data"), dict) and "dataset" in raw["data"]:
        out.append(("dataset", raw["data"]["dataset"]))
    for task in raw.get("tasks", []) if isinstance(raw.get("tasks"), list) else []:
        out.append(("operator", task["operator"]))
    for key, kind in (("priors", "prior"), ("solvers", "solver")):
        entries = raw.get(key)
        out += [(kind, e["name"]) for e in entries] if isinstance(entries, list) else []
    return out


def check_toml(text: str, where: str) -> None:
    from pnpkit.config import validate
    from pnpkit.plugins import get_manager

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError(f"{where}: not valid TOML: {exc}") from None
    for kind, name in named_components(raw):
        get_manager().get(kind, name)  # a PluginError names the closest registered one
    if {"output", "data", "operator", "prior", "solver"} <= set(raw):
        validate(raw)


TOML_BLOCKS = [b for b in ALL if b.lang == "toml"]


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=lambda b: b.where)
def test_toml_blocks_parse_and_name_real_components(block: Block, all_plugins):
    check_toml(block.code, block.where)


def _literal_blocks(doc: str) -> list[str]:
    """The ``::`` literal blocks of a reST docstring, dedented."""
    out, lines = [], doc.splitlines()
    for i, line in enumerate(lines):
        if line.rstrip().endswith("::"):
            body = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and not nxt.startswith(" "):
                    break
                body.append(nxt)
            out.append(inspect.cleandoc("\n".join(body)))
    return out


def test_the_configuration_docstring_names_real_components(all_plugins):
    import pnpkit.config

    examples = _literal_blocks(pnpkit.config.__doc__ or "")
    assert len(examples) == 2
    for text in examples:
        check_toml(text, "pnpkit/config.py's docstring")


def test_the_create_docstring_example_runs(all_plugins):
    import pnpkit

    doc = inspect.getdoc(pnpkit.create) or ""
    calls = re.findall(r"``(create\(.*?\))``", doc)
    assert calls, "pnpkit.create's docstring shows no example"
    for call in calls:
        op = eval(call, {"create": pnpkit.create})  # the docstring's own example
        assert op is not None
