"""Every package of the house, and what `pnpkit new-plugin` makes, declares its license."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from pnpkit.template import render_plugin

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT] + sorted(cfg.parent for group in ("operators", "priors", "plugins")
                           for cfg in (ROOT / group).glob("*/setup.cfg"))


def _license(folder: Path) -> str | None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(folder / "setup.cfg")
    return cfg["metadata"].get("license")


def test_the_license_file_is_the_declared_bsd_3():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Redistribution and use" in text


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name if p != ROOT else "pnpkit")
def test_every_package_declares_bsd_3(package: Path):
    assert _license(package) == "BSD-3-Clause", f"{package.name}/setup.cfg: add license = BSD-3-Clause"


def test_a_generated_plugin_declares_it_too(tmp_path: Path):
    assert _license(render_plugin("licensed", "solver", tmp_path)) == "BSD-3-Clause"
