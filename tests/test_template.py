"""`pnpkit new-plugin` makes packages that install with pip and pass their own tests."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from pnpkit.template import KINDS, render_plugin, template_root

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "core" / "pnpkit" / "plugin_template"


@pytest.fixture
def generated(monkeypatch):
    """Puts a generated package on sys.path; forgets its modules afterwards."""
    added: list[str] = []

    def use(root: Path) -> None:
        monkeypatch.syspath_prepend(str(root))
        added.extend(p.name for p in root.glob("pnpkit_*"))

    yield use
    for name in [m for m in sys.modules if m.split(".")[0] in added]:
        del sys.modules[name]


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.parametrize("kind", ["solver", "prior", "operator"])
def test_generated_plugin_installs_registers_and_passes_its_tests(tmp_path, kind):
    made = subprocess.run([sys.executable, "-m", "pnpkit", "new-plugin", f"my-{kind}",
                           "--kind", kind, "--dir", str(tmp_path)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    pkg = tmp_path / f"pnpkit-my-{kind}"
    module = f"pnpkit_my_{kind}"
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--target", str(site), str(pkg)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    # py.typed ships with the installed package, and the entry point names the plugin module
    assert (site / module / "py.typed").is_file()
    (dist,) = site.glob(f"{module}-0.1.0.dist-info")
    assert f"my-{kind} = {module}.plugin" in (dist / "entry_points.txt").read_text()
    assert not (site / "tests").exists(), "the package's tests must not be installed"
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("PNPKIT_LOAD_PLUGINS", None)
    listed = subprocess.run([sys.executable, "-m", "pnpkit", "plugins", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert plugins[f"my-{kind}"]["error"] is None
    assert plugins[f"my-{kind}"]["distribution"] == f"pnpkit-my-{kind}"
    components = plugins[f"my-{kind}"]["components"]
    assert (kind, f"my-{kind}") in {(c["kind"], c["name"]) for c in components}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(pkg / "tests")], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout


@pytest.mark.parametrize("kind", ["solver", "prior", "operator"])
def test_each_kind_gets_its_own_module_and_test_only(tmp_path, kind):
    root = render_plugin("demo-x", kind, tmp_path)
    assert _files(root) == {
        "README.md", "pyproject.toml", "setup.cfg", "pnpkit_demo_x/__init__.py",
        "pnpkit_demo_x/plugin.py", "pnpkit_demo_x/py.typed", f"pnpkit_demo_x/{kind}.py",
        "tests/test_demo_x.py"}
    cls = f"DemoX{kind.capitalize()}"
    plugin = (root / "pnpkit_demo_x" / "plugin.py").read_text()
    assert f"def register_{kind}s(register: Any) -> None:" in plugin
    assert f'register("demo-x", {cls}, ' in plugin
    assert f"class Test{cls}({KINDS[kind]}):" in (root / "tests" / "test_demo_x.py").read_text()
    cfg = (root / "setup.cfg").read_text()
    assert "demo-x = pnpkit_demo_x.plugin\n" in cfg
    assert "python_requires = >=3.11\n" in cfg
    assert "pnpkit_demo_x = py.typed\n" in cfg
    for path in root.rglob("*"):
        if path.is_file():
            assert "$" not in path.read_text(), f"{path} kept a template placeholder"
    # the generated code is clean under the house's own ruff configuration
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
                           str(ROOT / "pyproject.toml"), str(root)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_loading_the_entry_point_leaves_the_component_module_unimported(tmp_path, generated):
    # the entry point loads pnpkit_<name>.plugin; the prior's module (and torch with it)
    # waits until the component is used, so `pnpkit plugins` stays light
    generated(render_plugin("lazy-one", "prior", tmp_path))
    importlib.import_module("pnpkit_lazy_one.plugin")
    assert "pnpkit_lazy_one.prior" not in sys.modules
    cls = importlib.import_module("pnpkit_lazy_one").LazyOnePrior
    assert cls.__module__ == "pnpkit_lazy_one.prior"
    with pytest.raises(AttributeError, match="has no attribute 'Other'"):
        importlib.import_module("pnpkit_lazy_one").Other  # noqa: B018


def test_the_generated_prior_counts_each_network_evaluation_once(tmp_path, generated):
    from pnpkit.testing import GaussianDiffusionPrior

    generated(render_plugin("nfe-check", "prior", tmp_path))
    prior = importlib.import_module("pnpkit_nfe_check.prior").NfeCheckPrior(scale=0.5)
    x = torch.linspace(-1, 1, 8).view(1, 1, 8)
    eps = prior.eps(x, 10)
    prior.denoise(x, 0.1)
    prior.ddim(x, 500, steps=4)
    assert prior.nfe == 1 + 1 + 4
    # the closed-form noise prediction of Gaussian data, as pnpkit.testing's
    torch.testing.assert_close(eps, GaussianDiffusionPrior(scale=0.5).eps(x, 10))


def test_the_prior_contract_catches_a_prior_that_counts_twice(tmp_path, generated):
    # the template's prior, edited as an author might: counting again in `network`
    root = render_plugin("twice", "prior", tmp_path)
    module = root / "pnpkit_twice" / "prior.py"
    source = module.read_text()
    marker = "        a = self.abar(t, x_t)\n"
    assert source.count(marker) == 1
    module.write_text(source.replace(marker, "        self.nfe += 1\n" + marker))
    generated(root)
    from pnpkit.testing import PriorContract

    prior = importlib.import_module("pnpkit_twice.prior").TwicePrior()
    signal = torch.rand(2, 1, 8, 8) * 2 - 1
    contract = PriorContract()
    with pytest.raises(AssertionError, match="eps counted 2 network evaluations, expected 1: "
                                             "DiffusionPrior.eps already counts each one"):
        contract.test_diffusion_counts_each_evaluation_once(prior, signal)
    with pytest.raises(AssertionError, match="one denoise call counted 2 network evaluations, "
                                             "expected 1"):
        contract.test_denoise_keeps_shape_and_counts_nfe(prior, signal)
    # the template as shipped passes both
    honest = importlib.import_module("pnpkit_twice.prior").TwicePrior
    module.write_text(source)
    importlib.reload(importlib.import_module("pnpkit_twice.prior"))
    fixed = importlib.import_module("pnpkit_twice.prior").TwicePrior()
    assert type(fixed) is not honest
    contract.test_diffusion_counts_each_evaluation_once(fixed, signal)
    contract.test_denoise_keeps_shape_and_counts_nfe(fixed, signal)


def test_the_template_ships_as_package_data_of_an_installed_pnpkit(tmp_path):
    # build pnpkit's wheel from a copy of the sources (no build/ in the checkout), install it
    # alone into a folder, and generate a plugin from that installed copy
    src = tmp_path / "src"
    shutil.copytree(ROOT / "core", src / "core",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert wheel.returncode == 0, wheel.stderr
    (whl,) = (tmp_path / "dist").glob("pnpkit-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    expected = {f"pnpkit/plugin_template/{f}" for f in _files(TEMPLATE)} | {"pnpkit/py.typed"}
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    site = tmp_path / "site"
    with zipfile.ZipFile(whl) as z:
        z.extractall(site)
    code = ("import pnpkit, pathlib, sys; from pnpkit.template import render_plugin, template_root;"
            "print(pnpkit.__file__); print(template_root());"
            "print(render_plugin('from-wheel', 'operator', pathlib.Path(sys.argv[1])))")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(site)))
    assert run.returncode == 0, run.stderr
    module_file, root, made = run.stdout.split()
    assert Path(module_file).is_relative_to(site) and Path(root).is_relative_to(site)
    assert (Path(made) / "pnpkit_from_wheel" / "operator.py").is_file()


def test_the_template_is_read_from_the_pnpkit_package():
    assert Path(str(template_root())) == TEMPLATE
    assert {"setup.cfg", "README.md", "pnpkit_NAME/py.typed", "pnpkit_NAME/plugin.py.tmpl"} \
        <= _files(TEMPLATE)


def test_bad_names_and_existing_folders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="must be lower-case letters"):
        render_plugin("My Plugin", "solver", tmp_path)
    with pytest.raises(ValueError, match="kind must be one of solver, prior, operator, got 'model'"):
        render_plugin("ok", "model", tmp_path)
    render_plugin("ok", "prior", tmp_path)
    with pytest.raises(FileExistsError, match="already exists"):
        render_plugin("ok", "prior", tmp_path)
