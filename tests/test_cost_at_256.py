"""benchmarks/cost_at_256.py in its reduced mode (32 x 32, width 32, one step): the rows, the
timer's forward and backward passes, the scaling to the full solve, the ratios and verdicts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("all_plugins", "two_threads")


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("cost_at_256", ROOT / "benchmarks" / "cost_at_256.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_measures_every_solver_and_scales_to_the_full_solve(tmp_path: Path) -> None:
    cost = _load()
    assert cost.main(["--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "results.json").read_text())
    assert (record["size"], record["width"], record["weights"]) == (32, 32, "random")
    by = {r["solver"]: r for r in record["rows"]}
    assert set(by) == set(cost.SOLVERS) and {r["task"] for r in record["rows"]} == {"sr4"}
    for r in record["rows"]:
        # the timer sees every network call the prior counts; only DPS differentiates through it
        assert r["network_calls"] == r["nfe_measured"] >= 1
        assert r["backward_calls"] == (r["network_calls"] if r["solver"] == "dps" else 0)
        assert 0 < r["network_seconds"] < r["seconds_measured"]
        full = (r["network_seconds_per_call"] * r["full_nfe"]
                + r["outside_seconds_per_step"] * r["full_steps"])
        assert r["full_seconds"] == pytest.approx(full, rel=1e-3, abs=2e-3)
        assert 0 <= r["outside_share"] <= 1 and r["peak_memory_mb"] >= 0
    # full solves counted with the stand-in prior: the presets' and defaults' step counts
    assert (by["dps"]["full_steps"], by["dps"]["full_nfe"]) == (1000, 999)  # deepinv's last step: none
    assert (by["dcdp-v2"]["full_steps"], by["dcdp-v2"]["full_nfe"]) == (10, 10)
    assert (by["reddiff"]["full_steps"], by["reddiff"]["full_nfe"]) == (1000, 1000)
    assert (by["diffpir"]["full_steps"], by["diffpir"]["full_nfe"]) == (100, 100)
    assert by["projdiff"]["full_steps"] == 100
    # DCDP V1: its first round is 20 DDIM calls, later ones fewer as T_k falls below 20
    assert by["dcdp-v1"]["steps_measured"] == 1 and by["dcdp-v1"]["network_calls"] == 20
    assert 10 * 1 < by["dcdp-v1"]["full_nfe"] < 10 * 20 + 10
    assert by["dps"]["speedup_vs_dps"] == 1.0 and by["dps"]["memory_vs_dps"] == 1.0
    assert by["dcdp-v2"]["speedup_vs_dps"] == pytest.approx(
        by["dps"]["full_seconds"] / by["dcdp-v2"]["full_seconds"], rel=0.01)
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# Cost at 256 x 256 (REDUCED (32 x 32, width 32))")
    assert "| sr4 | DCDP V2 | 10 | 10 |" in text and "| sr4 | DPS | 1000 | 999 |" in text
    assert "DCDP V2" in text and "faster than DPS (target at least 150x)" in text


def _row(solver: str, seconds: float, memory: float, task: str = "sr4") -> dict[str, Any]:
    return dict(solver=solver, task=task, full_seconds=seconds, peak_memory_mb=memory,
                full_steps=10, full_nfe=10, outside_share=0.5, seconds_per_step=1.0,
                network_seconds_per_call=0.5, outside_seconds_per_step=0.5, steps_measured=2)


def test_ratios_and_verdicts() -> None:
    cost = _load()
    rows = [_row("dps", 3000.0, 1000.0), _row("dcdp-v2", 20.0, 400.0), _row("dcdp-v1", 300.0, 300.0),
            _row("reddiff", 1500.0, 410.0), _row("dps", 10.0, 1.0, task="box-inpainting")]
    cost.add_ratios(rows)
    assert rows[1]["speedup_vs_dps"] == 150.0 and rows[1]["memory_vs_dps"] == 0.4
    assert rows[2]["speedup_vs_dps"] == 10.0
    lines = cost.verdicts(rows)
    assert "sr4: DCDP V2 150.0x faster than DPS (target at least 150x): met" in lines
    assert "sr4: DCDP V1 10.0x faster than DPS (target at least 11x): NOT met" in lines
    assert "sr4: DCDP V2 peak memory 0.40x DPS's (target at most 0.4x): met" in lines
    assert "sr4: RED-Diff peak memory 0.41x DPS's (target at most 0.4x): NOT met" in lines
    gpu = cost.table(rows[:2], gpu=True)
    assert gpu.splitlines()[0].endswith("DCDP paper, GPU (s) |")
    assert gpu.splitlines()[2].endswith(" 387 |") and gpu.splitlines()[3].endswith(" 2.14 |")
    assert cost.verdicts([_row("dcdp-v2", 1.0, 1.0)]) == ["sr4: targets not measured (DPS was not run)"]


def test_bad_arguments_are_one_line() -> None:
    cost = _load()
    with pytest.raises(SystemExit, match="unknown: ddpm"):
        cost.main(["--solvers", "ddpm"])
    with pytest.raises(SystemExit, match="--size a multiple of 32"):
        cost.main(["--size", "100"])


def test_a_preset_of_more_calls_is_judged_as_written_and_at_the_same_fraction_of_its_limit() -> None:
    cost = _load()
    dps = _row("dps", 8443.0, 1000.0, task="box-inpainting")
    v2 = dict(_row("dcdp-v2", 63.5, 300.0, task="box-inpainting"), full_nfe=20,
              network_seconds_per_call=3.13)
    v1 = dict(_row("dcdp-v1", 2000.0, 300.0, task="box-inpainting"), full_nfe=382,
              network_seconds_per_call=3.2)
    rows = [dps, v2, v1]
    cost.add_ratios(rows)
    assert v2["speedup_limit"] == pytest.approx(8443.0 / (20 * 3.13), rel=1e-3)
    lines = cost.verdicts(rows)
    assert ("box-inpainting: DCDP V2 133.0x faster than DPS (target at least 150x, set for 10 calls): "
            "NOT met as written: this preset makes 20 calls, network-bound limit 134.9x (reached 99%); "
            "scaled to 20 calls the target is 75x: met") in lines
    # V1 at 4.2x of a 6.9x limit: below the scaled target 11 x 200 / 382 = 5.76x
    assert any(line.startswith("box-inpainting: DCDP V1 4.2x") and line.endswith(
        "scaled to 382 calls the target is 5.76x: NOT met") for line in lines)
    table = cost.table(rows)
    assert table.splitlines()[0].split(" | ")[6] == "network-bound limit"
    assert "| 133.0x | 134.9x |" in table and "| 1.0x | - |" in table


def test_report_rewrites_the_readme_from_results_json(tmp_path: Path) -> None:
    cost = _load()
    with pytest.raises(SystemExit, match="no .*results.json; run the benchmark first"):
        cost.main(["--report", "--out", str(tmp_path)])
    record = {"rows": [_row("dps", 3000.0, 1000.0), _row("dcdp-v2", 15.0, 300.0)], "size": 256,
              "width": 128, "steps_measured": 2, "device": "cpu", "machine": "a test CPU",
              "parameters": 93.6e6, "weights": "random", "torch": "x"}
    (tmp_path / "results.json").write_text(json.dumps(record))
    assert cost.main(["--report", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# Cost at 256 x 256 (full size)") and "a test CPU" in text
    assert "- sr4: DCDP V2 200.0x faster than DPS (target at least 150x): met" in text
    assert json.loads((tmp_path / "results.json").read_text())["target_calls"] == {"dcdp-v2": 10,
                                                                                   "dcdp-v1": 200}
