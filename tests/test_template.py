"""`pnpkit new-plugin` makes packages that install with pip and pass their own tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pnpkit.template import render_plugin


@pytest.mark.parametrize("kind", ["solver", "prior", "operator"])
def test_generated_plugin_installs_registers_and_passes_its_tests(tmp_path, kind):
    made = subprocess.run([sys.executable, "-m", "pnpkit", "new-plugin", f"my-{kind}",
                           "--kind", kind, "--dir", str(tmp_path)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    pkg = tmp_path / f"pnpkit-my-{kind}"
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--target", str(site), str(pkg)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("PNPKIT_LOAD_PLUGINS", None)
    listed = subprocess.run([sys.executable, "-m", "pnpkit", "plugins", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert plugins[f"my-{kind}"]["error"] is None
    assert plugins[f"my-{kind}"]["distribution"] == f"pnpkit-my-{kind}"
    assert {"kind": kind, "name": f"my-{kind}"} in plugins[f"my-{kind}"]["components"]
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(pkg / "tests")], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout


def test_bad_names_and_existing_folders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="must be lower-case letters"):
        render_plugin("My Plugin", "solver", tmp_path)
    render_plugin("ok", "prior", tmp_path)
    with pytest.raises(FileExistsError, match="already exists"):
        render_plugin("ok", "prior", tmp_path)
