"""benchmarks/sweep_smoke.py: a sweep cut to a tiny size runs end to end into a scratch folder."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DCDP = ROOT / "benchmarks" / "sweeps" / "dcdp_noisy_lr.toml"

pytestmark = pytest.mark.usefixtures("all_plugins", "two_threads")


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("sweep_smoke", ROOT / "benchmarks" / "sweep_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cut_keeps_the_named_solvers_and_the_overrides_win_over_per_task() -> None:
    from pnpkit_bench.sweep import load_sweep

    smoke = _load()
    small = smoke.cut(load_sweep(DCDP), None, ["v1-lrx1/8", "v2-lrx1"], tasks=1, noise=1, items=1,
                      overrides={"lr": 7.0, "iterations": 2}, seconds=None)
    assert [s["label"] for s in small["solvers"]] == ["v1-lrx1/8", "v2-lrx1"]
    assert [t["name"] for t in small["tasks"]] == ["sr4"]
    assert (small["data"]["limit"], small["batch"], small["reference"]) == (1, 1, "v2-lrx1")
    for entry in small["solvers"]:
        assert set(entry["per_task"]) == {"sr4", "sr4:noisy"}  # the other tasks' layers dropped
        assert entry["per_task"]["sr4"]["lr"] == 7.0 and entry["settings"]["iterations"] == 2
    with pytest.raises(SystemExit, match="--labels: nope not in the sweep"):
        smoke.cut(load_sweep(DCDP), None, ["nope"], 1, 1, 1, {}, None)


def test_a_smoke_run_solves_one_row_and_refuses_the_sweeps_own_folder(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    smoke = _load()
    out = tmp_path / "smoke"
    assert smoke.main([str(DCDP), "--out", str(out), "--labels", "v2-lrx1", "--set", "iterations=3"]) == 0
    with (out / "rows.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert (row["task"], row["noise"], row["solver"], row["status"], row["nfe"]) == (
        "sr4", "0.05", "v2-lrx1", "ok", "3")
    assert "72 rows in the full sweep" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is the sweep's own output folder"):
        smoke.main([str(DCDP), "--out", str(ROOT / "benchmarks" / "results" / "dcdp_noisy_lr")])
