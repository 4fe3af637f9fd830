"""benchmarks/training_curves.py: minutes from anchors, the climb rate, the report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("training_curves",
                                                  ROOT / "benchmarks" / "training_curves.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_minutes_are_linear_between_known_points_and_the_climb_is_a_slope() -> None:
    tc = _load()
    assert tc.minutes_at([0, 50, 100, 300], [(0, 0.0), (100, 600.0), (300, 1200.0)]) == [
        0.0, 5.0, 10.0, 20.0]
    c = {"minutes": [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
         "gain_db": {"0.05": [1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 5.5]}}
    assert tc.climb(c, "0.05") == pytest.approx(0.5)  # the last third: +0.05 dB a minute
    assert tc.climb({"minutes": [0.0, 1.0], "gain_db": {"0.05": [1.0, 2.0]}}, "0.05") is None


def test_report_of_a_run_against_its_reference(tmp_path: Path) -> None:
    tc = _load()
    curve = {"label": "grey64", "folder": "runs/grey64", "reference": "default-grey32",
             "steps": [50, 100, 150, 200, 250, 300], "minutes": [2.5, 5.0, 7.5, 10.0, 12.5, 15.0],
             "gain_db": {s: [0.5, 1.0, 1.5, 2.0, 2.5, 3.0] for s in tc.SIGMAS},
             "reference_gain_db": {s: 2.5 for s in tc.SIGMAS},
             "precisions": [{"from_step": 0, "precision": "fp32"},
                            {"from_step": 200, "precision": "bf16"}],
             "parameters": 1234, "batch_size": 16, "threads": 1}
    text = tc.readme([curve])
    assert "300 steps of 16 in 15 min (fp32 from step 0, bf16 from step 200); 1,234 parameters." in text
    assert "| 0.05 | +3.00 | +2.50 | +0.50 | +2.000 |" in text  # 0.2 dB a minute
    tc.plot([curve], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_unknown_runs_and_bad_also_are_refused() -> None:
    tc = _load()
    with pytest.raises(SystemExit, match="unknown run\\(s\\) grey99; known: grey64, rgb64, stems8k-edm"):
        tc.main(["--runs", "grey99"])
    with pytest.raises(SystemExit, match="--also 'grey64' must be LABEL=FOLDER"):
        tc.main(["--also", "grey64"])
