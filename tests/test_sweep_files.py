"""The committed sweeps under benchmarks/sweeps/ are valid: every solver of every sweep builds
with its settings (and per-task presets) for every task and noise level, and every task's
operator and every prior is registered, so a typo fails here rather than an hour into a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pnpkit.plugins import get_manager
from pnpkit_bench import sweep as bench

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "benchmarks" / "sweeps").glob("*.toml"))


pytestmark = pytest.mark.usefixtures("all_plugins")


def test_there_are_sweeps():
    assert {p.name for p in SWEEPS} >= {"images.toml", "phase_retrieval.toml", "separation.toml"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_builds_every_solver_for_every_task(path):
    sweep = bench.load_sweep(path)
    manager = get_manager()
    for task in sweep["tasks"]:
        manager.get("operator", task["operator"])
    for prior in sweep["priors"]:
        manager.get("prior", prior["name"])
    runner = bench.Sweep.__new__(bench.Sweep)  # no data needed to build the solvers
    runner.sweep, runner.manager = sweep, manager
    built = 0
    for task in sweep["tasks"]:
        for noise in task["noise"]:
            for entry in sweep["solvers"]:
                solver = runner._solver(entry, task["name"], noise)
                assert solver.name == entry["name"]
                built += 1
    assert built == sum(len(t["noise"]) for t in sweep["tasks"]) * len(sweep["solvers"])
    labels = [s["label"] for s in sweep["solvers"]]
    assert len(set(labels)) == len(labels), f"{path.name}: solver labels repeat"
    if sweep.get("reference"):
        assert sweep["reference"] in labels
