"""The repository's toy plugin (``tests/conftest.py``), with this package's plugin beside it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pnpkit.plugins import PluginManager, reset_manager

# The toy plugin (a mask operator, closed-form priors, generated datasets) is the core tests'
# own; it is loaded from there rather than copied, so both suites run on the same toy.
_ROOT_CONFTEST = Path(__file__).resolve().parents[3] / "tests" / "conftest.py"
_spec = importlib.util.spec_from_file_location("pnpkit_root_conftest", _ROOT_CONFTEST)
assert _spec is not None and _spec.loader is not None
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)

fake_site = _root.fake_site
toy_site = _root.toy_site
TOY_PLUGIN = _root.TOY_PLUGIN

#: What PNPKIT_LOAD_PLUGINS names for a subprocess that needs the toy and ``pnpkit bench``.
TOY_AND_BENCH = "toy,bench"


@pytest.fixture
def bench_site(toy_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The toy plugin and pnpkit-bench loaded (only them), in a fresh manager."""
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", TOY_AND_BENCH)
    reset_manager(PluginManager())
    return toy_site
