"""The plugin contract: discovery through entry points, isolation of broken plugins,
duplicate names, version requirements, PNPKIT_LOAD_PLUGINS, and every hook exercised."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pnpkit
from pnpkit.plugins import PluginError, PluginManager

GOOD = '''
from dataclasses import dataclass
import pnpkit
from pnpkit.solvers import PGD


@dataclass(kw_only=True)
class Halving(PGD):
    name = "halving"
    stepsize: float = 0.5


@pnpkit.hookimpl
def register_solvers(register):
    register("halving", Halving, description="PGD with step 1/2", paper="none")


@pnpkit.hookimpl
def register_priors(register):
    from pnpkit.testing import TikhonovPrior
    register("shrink", TikhonovPrior)


@pnpkit.hookimpl
def register_commands(cli):
    p = cli.command("hello", help="say hello", run=lambda args: print(f"hello {args.who}") or 0)
    p.add_argument("who")
'''

BROKEN = '''
raise RuntimeError("this plugin cannot be imported")
'''

DUPLICATE = '''
import pnpkit
from pnpkit.solvers import HQS

@pnpkit.hookimpl
def register_solvers(register):
    register("hqs", HQS)          # taken by the built-in plugin
    register("hqs-copy", HQS)     # fine
'''

RAISING = '''
import pnpkit

@pnpkit.hookimpl
def register_operators(register):
    register("half-registered", object)
    raise ValueError("cannot build the kernel table")
'''

MISNAMED = '''
import pnpkit

@pnpkit.hookimpl
def register_solver(register):   # typo: the hook is register_solvers
    pass
'''


def _manager(monkeypatch: pytest.MonkeyPatch, load: str | None = None) -> PluginManager:
    if load is None:
        monkeypatch.delenv("PNPKIT_LOAD_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", load)
    import importlib.metadata as md

    eps = [ep for ep in md.entry_points(group="pnpkit") if ep.name.startswith("fake")]
    return PluginManager(entry_points=eps)


def test_third_party_plugin_registers_solver_prior_and_command(fake_site, monkeypatch):
    fake_site("pnpkit-fake-good", "fake_good", GOOD, entry_name="fake-good",
              requires=["pnpkit>=0.1,<0.2", "torch"])
    m = _manager(monkeypatch)
    info = m.plugins["fake-good"]
    assert info.error is None
    assert info.distribution == "pnpkit-fake-good" and info.version == "1.0"
    assert info.hooks == ["register_commands", "register_priors", "register_solvers"]
    assert ("solver", "halving") in info.components
    comp = m.get("solver", "halving")
    assert comp.metadata == {"description": "PGD with step 1/2", "paper": "none"}
    assert m.create("solver", "halving", iterations=3).stepsize == 0.5
    assert m.create("prior", "shrink", lam=2.0).lam == 2.0


def test_builtin_solvers_register_through_the_same_hooks(monkeypatch):
    m = _manager(monkeypatch, load="")
    assert m.plugins["builtin"].hooks == ["register_solvers"]
    assert {"hqs", "admm", "pgd", "pinv"} <= set(m.components["solver"])
    assert all(m.components["solver"][n].plugin == "builtin" for n in ("hqs", "admm", "pgd"))


def test_broken_plugin_is_reported_and_others_still_load(fake_site, monkeypatch):
    fake_site("pnpkit-fake-good", "fake_good", GOOD, entry_name="fake-good")
    fake_site("pnpkit-fake-broken", "fake_broken", BROKEN, entry_name="fake-broken")
    m = _manager(monkeypatch)
    assert "RuntimeError: this plugin cannot be imported" in m.plugins["fake-broken"].error
    assert m.plugins["fake-good"].error is None
    assert "halving" in m.components["solver"]


def test_duplicate_name_is_reported_and_first_registration_kept(fake_site, monkeypatch):
    fake_site("pnpkit-fake-dup", "fake_dup", DUPLICATE, entry_name="fake-dup")
    m = _manager(monkeypatch)
    err = m.plugins["fake-dup"].error
    assert "solver 'hqs' is already registered by plugin 'builtin'" in err
    assert m.get("solver", "hqs").plugin == "builtin"
    assert m.get("solver", "hqs-copy").plugin == "fake-dup"


def test_hook_that_raises_registers_nothing_from_that_hook(fake_site, monkeypatch):
    fake_site("pnpkit-fake-raise", "fake_raise", RAISING, entry_name="fake-raise")
    m = _manager(monkeypatch)
    assert "register_operators raised ValueError: cannot build the kernel table" in m.plugins["fake-raise"].error
    assert "half-registered" not in m.components["operator"]


def test_unknown_hook_name_is_reported(fake_site, monkeypatch):
    fake_site("pnpkit-fake-typo", "fake_typo", MISNAMED, entry_name="fake-typo")
    m = _manager(monkeypatch)
    assert "register_solver" in m.plugins["fake-typo"].error


def test_incompatible_core_version_is_reported_not_loaded(fake_site, monkeypatch):
    fake_site("pnpkit-fake-old", "fake_old", GOOD, entry_name="fake-old",
              requires=["pnpkit<0.1", "numpy"])
    m = _manager(monkeypatch)
    err = m.plugins["fake-old"].error
    assert f"requires pnpkit<0.1 but pnpkit {pnpkit.__version__} is installed" in err
    assert "halving" not in m.components["solver"]
    assert "fake_old" not in sys.modules, "an incompatible plugin must not even be imported"


def test_load_plugins_env_selects_by_entry_point_or_distribution(fake_site, monkeypatch):
    fake_site("pnpkit-fake-good", "fake_good", GOOD, entry_name="fake-good")
    fake_site("pnpkit-fake-dup", "fake_dup", DUPLICATE, entry_name="fake-dup")
    assert set(_manager(monkeypatch, "fake-good").plugins) == {"builtin", "fake-good"}
    assert set(_manager(monkeypatch, "pnpkit-fake-dup").plugins) == {"builtin", "fake-dup"}
    assert set(_manager(monkeypatch, " fake-good , fake-dup ").plugins) == {"builtin", "fake-good", "fake-dup"}
    assert set(_manager(monkeypatch, "").plugins) == {"builtin"}
    assert set(_manager(monkeypatch).plugins) == {"builtin", "fake-good", "fake-dup"}


def test_unknown_component_and_setting_errors_suggest(monkeypatch):
    m = _manager(monkeypatch, load="")
    with pytest.raises(PluginError, match="no solver named 'hsq'. Did you mean 'hqs'"):
        m.get("solver", "hsq")
    with pytest.raises(TypeError, match="unknown setting 'stepsise'.*Did you mean 'stepsize'"):
        m.create("solver", "pgd", stepsise=1.0)


def _cli(args: list[str], site: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site), **(env_extra or {}))
    env.pop("PNPKIT_LOAD_PLUGINS", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "pnpkit", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_plugins_json_lists_components_versions_and_errors(fake_site):
    site = fake_site("pnpkit-fake-good", "fake_good", GOOD, entry_name="fake-good")
    fake_site("pnpkit-fake-broken", "fake_broken", BROKEN, entry_name="fake-broken")
    out = _cli(["plugins", "--json"], site)
    assert out.returncode == 0, out.stderr
    data = {p["name"]: p for p in json.loads(out.stdout)}
    assert data["fake-good"]["version"] == "1.0"
    assert {"kind": "solver", "name": "halving"} in data["fake-good"]["components"]
    assert "cannot be imported" in data["fake-broken"]["error"]
    table = _cli(["plugins"], site)
    assert "solver:halving" in table.stdout and "ERROR: failed to load" in table.stdout
    hello = _cli(["hello", "world"], site)
    assert hello.returncode == 0 and hello.stdout.strip() == "hello world"
    only = _cli(["plugins", "--json"], site, {"PNPKIT_LOAD_PLUGINS": "fake-good"})
    assert "fake-broken" not in {p["name"] for p in json.loads(only.stdout)}
