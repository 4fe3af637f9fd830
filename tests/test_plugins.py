"""The plugin contract: discovery through entry points, hooks called through pluggy (specname,
class-based plugins, ordering), isolation of broken plugins (exceptions and sys.exit), name
clashes and qualified names, lazy factories, unmarked and misspelt hooks, version
requirements, PNPKIT_LOAD_PLUGINS, `pnpkit plugins --strict`, and listing without torch."""

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
    assert m.plugins["builtin"].hooks == ["register_metrics", "register_solvers"]
    assert {"hqs", "admm", "pgd", "pinv"} <= set(m.components["solver"])
    assert all(m.components["solver"][n].plugin == "builtin" for n in ("hqs", "admm", "pgd"))
    assert set(m.components["metric"]) == {"psnr", "ssim", "si_snr", "si_snri", "mse"}
    assert m.get("metric", "psnr").factory is pnpkit.metrics.psnr


def test_broken_plugin_is_reported_and_others_still_load(fake_site, monkeypatch):
    fake_site("pnpkit-fake-good", "fake_good", GOOD, entry_name="fake-good")
    fake_site("pnpkit-fake-broken", "fake_broken", BROKEN, entry_name="fake-broken")
    m = _manager(monkeypatch)
    assert "RuntimeError: this plugin cannot be imported" in m.plugins["fake-broken"].error
    assert m.plugins["fake-good"].error is None
    assert "halving" in m.components["solver"]


def test_duplicate_name_is_a_clash_reported_on_both_plugins(fake_site, monkeypatch):
    fake_site("pnpkit-fake-dup", "fake_dup", DUPLICATE, entry_name="fake-dup")
    m = _manager(monkeypatch)
    clash = ("solver 'hqs' is registered by 2 plugins ('builtin', 'fake-dup'); use a qualified "
             "name: 'builtin:hqs' or 'fake-dup:hqs'")
    assert m.plugins["fake-dup"].error == clash
    assert m.plugins["builtin"].error == clash
    with pytest.raises(PluginError) as raised:
        m.get("solver", "hqs")
    assert str(raised.value) == clash
    with pytest.raises(PluginError, match="use a qualified name"):
        m.create("solver", "hqs", iterations=2)
    assert "hqs" not in m.components["solver"]
    assert m.get("solver", "builtin:hqs").plugin == "builtin"
    assert m.get("solver", "fake-dup:hqs").plugin == "fake-dup"
    assert m.create("solver", "builtin:hqs", iterations=2).iterations == 2
    assert m.get("solver", "hqs-copy").plugin == "fake-dup"
    assert "builtin:hqs" in m.names("solver") and "hqs" not in m.names("solver")


def test_hook_that_raises_registers_nothing_from_that_hook(fake_site, monkeypatch):
    fake_site("pnpkit-fake-raise", "fake_raise", RAISING, entry_name="fake-raise")
    m = _manager(monkeypatch)
    err = m.plugins["fake-raise"].error
    assert "register_operators raised ValueError: cannot build the kernel table" in err
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
    assert set(_manager(monkeypatch, " fake-good , fake-dup ").plugins) == {
        "builtin", "fake-good", "fake-dup"}
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


# -- hooks through pluggy: class-based plugins, specname, ordering -----------------------------

CLASS_BASED = '''
import pnpkit
from pnpkit.solvers import PGD


class Plugin:
    """Hook implementations as methods of a class the entry point names."""

    def __init__(self):
        self.step = 0.25

    @pnpkit.hookimpl
    def register_solvers(self, register):
        register("quarter", PGD, step=self.step)


@pnpkit.hookimpl(specname="register_priors")
def priors_under_another_name(register):
    from pnpkit.testing import TikhonovPrior
    register("ridge", TikhonovPrior)
'''

SPECNAME = '''
import pnpkit


@pnpkit.hookimpl(specname="register_solvers")
def solvers(register):
    register("by-specname", "pnpkit.solvers:PGD")


@pnpkit.hookimpl(tryfirst=True, specname="register_metrics")
def metrics(register):
    register("first-metric", "pnpkit.metrics:mse")
'''


def _entry_point_value(site: Path, dist: str, line: str) -> None:
    """Point ``dist``'s entry point at ``line`` (``name = module:attr``)."""
    (site / f"{dist.replace('-', '_')}-1.0.dist-info" / "entry_points.txt").write_text(
        f"[pnpkit]\n{line}\n")


def test_class_based_plugin_and_specname_are_called(fake_site, monkeypatch):
    site = fake_site("pnpkit-fake-cls", "fake_cls", CLASS_BASED, entry_name="fake-cls")
    _entry_point_value(site, "pnpkit-fake-cls", "fake-cls = fake_cls:Plugin")
    fake_site("pnpkit-fake-spec", "fake_spec", SPECNAME, entry_name="fake-spec")
    m = _manager(monkeypatch)
    assert m.plugins["fake-cls"].error is None and m.plugins["fake-cls"].hooks == ["register_solvers"]
    assert m.get("solver", "quarter").metadata == {"step": 0.25}
    assert m.get("solver", "fake-cls:quarter").factory is pnpkit.solvers.PGD
    # The module-level function is not part of the plugin: the entry point names the class.
    assert "ridge" not in m.components["prior"] and m.plugins["fake-cls"].warnings == []
    assert m.plugins["fake-spec"].hooks == ["register_metrics", "register_solvers"]
    assert m.create("solver", "by-specname", iterations=4).iterations == 4
    assert m.get("metric", "first-metric").factory is pnpkit.metrics.mse
    # tryfirst: pluggy calls that implementation before every other one.
    assert m.impls("register_metrics")[0].plugin_name == "fake-spec"
    assert list(m.registries["metric"].qualified)[0] == "fake-spec:first-metric"


def test_clash_is_the_same_whatever_the_entry_point_order(fake_site, monkeypatch):
    twin = '''
import pnpkit

@pnpkit.hookimpl
def register_solvers(register):
    register("twin", "pnpkit.solvers:HQS")
'''
    fake_site("pnpkit-fake-a", "fake_a", twin, entry_name="fake-a")
    fake_site("pnpkit-fake-b", "fake_b", twin, entry_name="fake-b")
    import importlib.metadata as md

    monkeypatch.delenv("PNPKIT_LOAD_PLUGINS", raising=False)
    eps = [ep for ep in md.entry_points(group="pnpkit") if ep.name.startswith("fake")]
    results = []
    for order in (eps, eps[::-1]):
        m = PluginManager(entry_points=order)
        with pytest.raises(PluginError) as raised:
            m.get("solver", "twin")
        results.append((str(raised.value), m.plugins["fake-a"].error, m.plugins["fake-b"].error,
                        sorted(m.registries["solver"].qualified)))
    assert results[0] == results[1]
    message = results[0][0]
    assert message == ("solver 'twin' is registered by 2 plugins ('fake-a', 'fake-b'); use a "
                       "qualified name: 'fake-a:twin' or 'fake-b:twin'")
    assert results[0][1] == results[0][2] == message


# -- isolation: sys.exit and other BaseExceptions --------------------------------------------

EXITS = '''
import sys
sys.exit(3)
'''

BASE_EXCEPTION = '''
class Abort(BaseException):
    pass

raise Abort("gave up at import")
'''

EXITS_IN_HOOK = '''
import sys
import pnpkit

@pnpkit.hookimpl
def register_solvers(register):
    register("never", "pnpkit.solvers:PGD")
    sys.exit("no solvers today")

@pnpkit.hookimpl
def register_priors(register):
    register("still-here", "pnpkit.testing:TikhonovPrior")
'''


def test_sys_exit_and_base_exceptions_are_isolated(fake_site, monkeypatch):
    fake_site("pnpkit-fake-exit", "fake_exit", EXITS, entry_name="fake-exit")
    fake_site("pnpkit-fake-base", "fake_base", BASE_EXCEPTION, entry_name="fake-base")
    fake_site("pnpkit-fake-hookexit", "fake_hookexit", EXITS_IN_HOOK, entry_name="fake-hookexit")
    fake_site("pnpkit-fake-good", "fake_good", GOOD, entry_name="fake-good")
    m = _manager(monkeypatch)
    assert m.plugins["fake-exit"].error == ("failed to load: SystemExit: 3 (the plugin called "
                                            "sys.exit; raise an exception instead)")
    assert m.plugins["fake-base"].error == "failed to load: Abort: gave up at import"
    assert m.plugins["fake-hookexit"].error.startswith(
        "register_solvers raised SystemExit: no solvers today")
    assert "never" not in m.components["solver"]
    assert m.get("prior", "still-here").plugin == "fake-hookexit"
    assert m.plugins["fake-good"].error is None and "halving" in m.components["solver"]


def test_keyboard_interrupt_is_not_swallowed(fake_site, monkeypatch):
    fake_site("pnpkit-fake-ctrlc", "fake_ctrlc", "raise KeyboardInterrupt\n", entry_name="fake-ctrlc")
    with pytest.raises(KeyboardInterrupt):
        _manager(monkeypatch)


# -- unmarked and misspelt hooks ---------------------------------------------------------------

UNMARKED = '''
import pnpkit
from pnpkit.solvers import PGD          # imported names are not the plugin's own: not reported


def register_solvers(register):          # forgot @pnpkit.hookimpl
    register("forgotten", PGD)


def register_solver(register):           # neither marked nor a hook name
    pass


@pnpkit.hookimpl
def register_priors(register):
    register("marked", "pnpkit.testing:TikhonovPrior")
'''


def test_unmarked_hook_functions_are_warned_about(fake_site, monkeypatch):
    fake_site("pnpkit-fake-unmarked", "fake_unmarked", UNMARKED, entry_name="fake-unmarked")
    m = _manager(monkeypatch)
    info = m.plugins["fake-unmarked"]
    assert info.error is None and info.hooks == ["register_priors"]
    assert "forgotten" not in m.components["solver"] and "marked" in m.components["prior"]
    assert info.warnings == [
        "function 'register_solver' is not marked with @pnpkit.hookimpl, so pnpkit never calls "
        "it (no pnpkit hook has this name. Did you mean 'register_solvers'?); decorate it or "
        "rename it",
        "function 'register_solvers' is not marked with @pnpkit.hookimpl, so pnpkit never "
        "calls it; decorate it or rename it",
    ]
    assert m.plugins["builtin"].warnings == []


def test_misspelt_hookimpl_suggests_the_closest_hook(fake_site, monkeypatch):
    fake_site("pnpkit-fake-typo", "fake_typo", MISNAMED, entry_name="fake-typo")
    m = _manager(monkeypatch)
    assert m.plugins["fake-typo"].error.startswith(
        "hook 'register_solver' is not a pnpkit hook. Did you mean 'register_solvers'? Hooks: ")
    assert "register_metrics" in m.plugins["fake-typo"].error


# -- lazy factories --------------------------------------------------------------------------

LAZY = '''
import pnpkit

@pnpkit.hookimpl
def register_solvers(register):
    register("lazy-pgd", "pnpkit.solvers:PGD")
    register("missing", "fake_lazy_nowhere:Solver")

@pnpkit.hookimpl
def register_priors(register):
    register("bad-ref", "not a reference")
'''


def test_factory_references_resolve_on_first_use(fake_site, monkeypatch):
    fake_site("pnpkit-fake-lazy", "fake_lazy", LAZY, entry_name="fake-lazy")
    m = _manager(monkeypatch)
    comp = m.get("solver", "lazy-pgd")
    assert comp.target == "pnpkit.solvers:PGD"
    assert comp.factory is pnpkit.solvers.PGD and comp.target is pnpkit.solvers.PGD
    assert m.create("solver", "lazy-pgd", iterations=3).iterations == 3
    with pytest.raises(PluginError, match=r"solver 'fake-lazy:missing': cannot import its factory "
                                          r"'fake_lazy_nowhere:Solver' \(ModuleNotFoundError"):
        m.create("solver", "missing")
    assert m.plugins["fake-lazy"].error == (
        "register_priors raised ValueError: prior 'bad-ref': factory reference 'not a reference' "
        "is not 'module:attr' (e.g. 'pnpkit_mysolver.solver:MySolver')")


def test_every_installed_component_resolves_and_presets_match(all_plugins):
    m = pnpkit.get_manager()
    for info in m.plugins.values():
        assert info.error is None and info.warnings == [], (info.name, info.error, info.warnings)
    for registry in m.registries.values():
        for qualified, comp in registry.qualified.items():
            factory = comp.factory
            assert callable(factory), qualified
            if "presets" in comp.metadata:  # written out in plugin.py so listing imports nothing
                assert comp.metadata["presets"] == sorted(factory.PRESETS), qualified
    assert {"psnr_pr": "operators", "ssim_pr": "operators", "si_snri_msdm": "msdm"}.items() <= {
        n: c.plugin for n, c in m.components["metric"].items()}.items()


# -- the command line: --strict, --version, no torch -----------------------------------------

def test_cli_strict_fails_on_plugin_errors(fake_site):
    site = fake_site("pnpkit-fake-good", "fake_good", GOOD, entry_name="fake-good")
    fake_site("pnpkit-fake-broken", "fake_broken", BROKEN, entry_name="fake-broken")
    fake_site("pnpkit-fake-unmarked", "fake_unmarked", UNMARKED, entry_name="fake-unmarked")
    ok = _cli(["plugins", "--strict"], site, {"PNPKIT_LOAD_PLUGINS": "fake-good"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert _cli(["plugins"], site).returncode == 0
    bad = _cli(["plugins", "--strict"], site, {"PNPKIT_LOAD_PLUGINS": "fake-good,fake-broken"})
    assert bad.returncode == 1 and "ERROR: failed to load" in bad.stdout
    warned = _cli(["plugins", "--strict"], site, {"PNPKIT_LOAD_PLUGINS": "fake-unmarked"})
    assert warned.returncode == 1
    assert "WARNING: function 'register_solvers' is not marked" in warned.stdout
    js = _cli(["plugins", "--json", "--strict"], site, {"PNPKIT_LOAD_PLUGINS": "fake-broken"})
    assert js.returncode == 1 and "cannot be imported" in json.loads(js.stdout)[1]["error"]


def test_cli_version_answers_before_plugins_load(fake_site):
    site = fake_site("pnpkit-fake-exit", "fake_exit", EXITS, entry_name="fake-exit")
    out = _cli(["--version"], site)
    assert out.returncode == 0 and out.stdout.strip() == f"pnpkit {pnpkit.__version__}"


NO_TORCH = '''
import sys
from pnpkit.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "deepinv", "diffusers", "matplotlib", "torchmetrics")
               if m in sys.modules)
print("HEAVY", heavy, "CODE", code, file=sys.stderr)
'''


@pytest.mark.parametrize("args", [["plugins"], ["plugins", "--json"], ["--help"], ["--version"]])
def test_listing_and_help_do_not_import_torch(args):
    env = dict(os.environ)
    env.pop("PNPKIT_LOAD_PLUGINS", None)  # every installed plugin
    out = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True,
                         env=env, timeout=120)
    assert "HEAVY [] CODE 0" in out.stderr, out.stderr[-2000:]
    if args == ["plugins"]:
        assert "solver:projdiff" in out.stdout and "metric:si_snri_msdm" in out.stdout
        assert "ERROR" not in out.stdout and "WARNING" not in out.stdout, out.stdout
