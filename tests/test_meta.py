"""Meta-tests: the hooks and the packaging of every package in the house.

- every hook is documented (docstring and README) and exercised by the test suite;
- every package (the core, operators/*, priors/*, plugins/*, and what ``pnpkit new-plugin``
  makes) declares in ``install_requires`` exactly the third-party modules its code imports,
  needs Python 3.11 (``tomllib``) and ships a ``py.typed`` marker as package data;
- ``requirements.txt`` lists nothing that nothing imports, except tools and pins it explains.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import functools
import inspect
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pnpkit import hookspecs
from pnpkit.template import KINDS, render_plugin

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if name.startswith("register_")]


def test_the_hooks_are_the_public_contract():
    assert set(HOOKS) == {"register_solvers", "register_priors", "register_operators",
                          "register_datasets", "register_metrics", "register_commands"}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc and len(doc) > 20


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_the_readme(hook):
    assert f"`{hook}(" in (ROOT / "README.md").read_text(), f"README.md does not document {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    me = Path(__file__).name
    used = [p for p in (ROOT / "tests").glob("*.py")
            if p.name != me and f"def {hook}(" in p.read_text()]
    assert used, f"no test implements the hook {hook}"


# -- packaging -------------------------------------------------------------------------------------

#: Import names whose distribution is named otherwise (checked before the installed metadata).
DISTRIBUTIONS = {"PIL": "pillow", "skimage": "scikit-image", "yaml": "pyyaml", "sklearn": "scikit-learn",
                 "cv2": "opencv-python", "fluidsynth": "pyfluidsynth", "tomli_w": "tomli-w",
                 "huggingface_hub": "huggingface-hub"}
#: In requirements.txt though no code imports them: tools, build requirements, and pins.
NOT_IMPORTED = {"torchvision": "deepinv needs it; pinned to match torch",
                "ruff": "make lint", "mypy": "make lint",
                "setuptools": "--no-build-isolation installs", "wheel": "--no-build-isolation installs"}
PACKAGES = [ROOT] + sorted(cfg.parent for group in ("operators", "priors", "plugins")
                           for cfg in (ROOT / group).glob("*/setup.cfg"))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _installed() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def _dists(module: str) -> set[str]:
    """The distributions that may provide the top-level ``module``."""
    if module in DISTRIBUTIONS:
        return {DISTRIBUTIONS[module]}
    return {_norm(d) for d in _installed().get(module, [])} | {_norm(module)}


def imported(folder: Path, own: str) -> dict[str, list[str]]:
    """Third-party top-level modules imported anywhere under ``folder`` -> the files importing them."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names}:
                if top not in sys.stdlib_module_names and top not in (own, "__future__"):
                    found.setdefault(top, []).append(path.relative_to(folder).as_posix())
    return found


def setup_cfg(package: Path) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(package / "setup.cfg")
    return cfg


def _lines(value: str) -> list[str]:
    return [v.strip() for v in value.splitlines() if v.strip() and not v.strip().startswith("#")]


def module_dir(package: Path) -> Path:
    """The import package of a distribution folder: core/pnpkit, or its single pnpkit_* folder."""
    if (package / "core" / "pnpkit").is_dir():
        return package / "core" / "pnpkit"
    (found,) = [p for p in package.glob("pnpkit_*") if (p / "__init__.py").is_file()]
    return found


def check_declared_is_imported(package: Path) -> None:
    cfg = setup_cfg(package)
    requires = {_norm(Requirement(r).name) for r in _lines(cfg["options"].get("install_requires", ""))}
    extra_lists = cfg["options.extras_require"].values() if cfg.has_section("options.extras_require") else []
    extras = {_norm(Requirement(r).name) for value in extra_lists for r in _lines(value)}
    code = module_dir(package)
    uses = imported(code, code.name)
    undeclared = {m: files for m, files in uses.items() if not _dists(m) & (requires | extras)}
    assert not undeclared, (f"{package.name}/setup.cfg: imported but not in install_requires: "
                            f"{undeclared}")
    provided = set().union(*(_dists(m) for m in uses)) if uses else set()
    unused = requires - provided
    assert not unused, f"{package.name}/setup.cfg: in install_requires but never imported: {sorted(unused)}"


def check_python_and_py_typed(package: Path) -> None:
    cfg = setup_cfg(package)
    assert cfg["options"].get("python_requires") == ">=3.11", \
        f"{package.name}/setup.cfg: python_requires must be >=3.11 (the code uses tomllib)"
    code = module_dir(package)
    assert (code / "py.typed").is_file(), f"{code} has no py.typed marker"
    data = cfg["options.package_data"] if cfg.has_section("options.package_data") else {}
    assert "py.typed" in _lines(data.get(code.name, "")), \
        f"{package.name}/setup.cfg: add `{code.name} = py.typed` to [options.package_data]"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name if p != ROOT else "pnpkit")
def test_install_requires_is_what_the_code_imports(package):
    check_declared_is_imported(package)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name if p != ROOT else "pnpkit")
def test_python_requires_and_py_typed(package):
    check_python_and_py_typed(package)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_generated_plugin_is_packaged_like_the_house(tmp_path, kind):
    package = render_plugin(f"meta-{kind}", kind, tmp_path)
    check_declared_is_imported(package)
    check_python_and_py_typed(package)


def test_the_core_declares_its_imports_and_not_matplotlib():
    # the inventory, spelt out so that a change to it is a decision (issue 12)
    uses = imported(ROOT / "core" / "pnpkit", "pnpkit")
    assert set(uses) == {"PIL", "deepinv", "numpy", "packaging", "pluggy", "pytest", "safetensors",
                         "skimage", "soundfile", "tomli_w", "torch", "torchaudio", "torchmetrics",
                         "tqdm"}
    assert uses["pytest"] == ["contracts.py"], "only pnpkit.contracts may import pytest (an extra)"


def test_the_plugin_template_is_package_data():
    patterns = _lines(setup_cfg(ROOT)["options.package_data"]["pnpkit"])
    template = ROOT / "core" / "pnpkit" / "plugin_template"
    files = [p.relative_to(template.parent).as_posix() for p in template.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    assert len(files) >= 10
    missed = [f for f in files if not any(fnmatch.fnmatchcase(f, pat) and f.count("/") == pat.count("/")
                                          for pat in patterns)]
    assert not missed, f"setup.cfg [options.package_data] pnpkit does not ship {missed}"


def test_requirements_txt_lists_nothing_that_nothing_imports():
    uses: set[str] = set()
    for group in ("core", "operators", "priors", "plugins", "tests", "benchmarks"):
        uses |= set().union(*(_dists(m) for m in imported(ROOT / group, "pnpkit")))
    listed = {_norm(Requirement(r).name) for r in _lines((ROOT / "requirements.txt").read_text())}
    unused = listed - uses - set(NOT_IMPORTED)
    assert not unused, f"requirements.txt: nothing imports {sorted(unused)}; remove them"


def test_the_check_names_what_is_undeclared_and_what_is_unused(tmp_path):
    package = tmp_path / "pnpkit-fake"
    (package / "pnpkit_fake").mkdir(parents=True)
    (package / "pnpkit_fake" / "__init__.py").write_text("import os\nimport yaml\nfrom PIL import Image\n")
    (package / "setup.cfg").write_text("[options]\npython_requires = >=3.10\ninstall_requires =\n"
                                       "    pillow\n    scipy\n")
    with pytest.raises(AssertionError, match=r"imported but not in install_requires: \{'yaml': "
                                             r"\['__init__.py'\]\}"):
        check_declared_is_imported(package)
    (package / "setup.cfg").write_text("[options]\npython_requires = >=3.10\ninstall_requires =\n"
                                       "    Pillow\n    PyYAML>=6\n    scipy\n")
    with pytest.raises(AssertionError, match=r"never imported: \['scipy'\]"):
        check_declared_is_imported(package)
    with pytest.raises(AssertionError, match="python_requires must be >=3.11"):
        check_python_and_py_typed(package)


def test_testing_toys_import_without_pytest() -> None:
    """The README's quick start (`from pnpkit.testing import toy_problem`) needs no pytest."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['pytest'] = None\n"  # any `import pytest` now fails
            "from pnpkit.testing import toy_problem\n"
            "op, prior, x, y = toy_problem()\n"
            "print(tuple(x.shape))\n"
            "try:\n"
            "    from pnpkit.testing import SolverContract\n"
            "except ImportError as exc:\n"
            "    print('contracts need pytest')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["(1, 1, 16)", "contracts need pytest"]


def test_contracts_are_reachable_from_pnpkit_testing() -> None:
    import pnpkit.contracts
    import pnpkit.testing

    for name in pnpkit.testing.CONTRACTS:
        assert getattr(pnpkit.testing, name) is getattr(pnpkit.contracts, name)
