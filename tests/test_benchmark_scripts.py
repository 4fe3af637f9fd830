"""The report scripts under benchmarks/ compute what their tables say."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(task, noise, solver, item, psnr, time, mem, nfe, status="ok"):
    return dict(task=task, noise=str(noise), prior="p", solver=solver, seed="0", item=item,
                status=status, wall_time=str(time), nfe=str(nfe), peak_memory_mb=str(mem),
                psnr=str(psnr), ssim="0.5")


def test_headline_means_and_ratios(tmp_path):
    headline = _load("headline")
    rows = [_row("sr4", 0, "dps", "a", 20, 10.0, 100, 1000), _row("sr4", 0, "dps", "b", 22, 30.0, 100, 1000),
            _row("sr4", 0, "fast", "a", 25, 1.0, 10, 10), _row("sr4", 0, "fast", "b", 27, 1.0, 30, 10),
            _row("sr4", 0.05, "dps", "a", 18, 10.0, 50, 1000),
            _row("sr4", 0.05, "fast", "a", 19, 5.0, 50, 10),
            _row("sr4", 0.05, "broken", "a", 0, 0, 0, 0, status="error: boom")]
    with (tmp_path / "rows.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert headline.main([str(tmp_path)]) == 0
    text = (tmp_path / "headline.md").read_text()
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    # PSNR: mean per column, then the mean over columns
    assert "| fast | 26.00 | 19.00 | 22.50 | 1.0 |" in text
    assert "| dps | 21.00 | 18.00 | 19.50 | 2.0 |" in text
    assert "`+n`: sigma_y = 0.05" in text
    # time ratio: mean over groups of (1 / 20, 5 / 10) = 0.275; memory: (20 / 100, 50 / 50) -> 0.6
    cost = [line for line in text.splitlines() if line.startswith("| fast | 10 |")]
    assert cost and "| 0.275 | 0.600 |" in cost[0]
    assert "| broken | - | - | - | - | - |" in text
    assert lines["broken"].count("-") >= 3


def test_headline_without_results_says_what_to_run(tmp_path, capsys):
    headline = _load("headline")
    with pytest.raises(SystemExit):
        headline.main([str(tmp_path)])
    assert "run the sweep first" in capsys.readouterr().err
