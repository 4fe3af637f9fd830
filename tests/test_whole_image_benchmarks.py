"""The whole-picture benchmarks (benchmarks/whole_images.py, benchmarks/cost_vs_size.py) at
tiny sizes and 2 iterations: their rows, resumption, tables and the target's verdict."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("all_plugins", "two_threads")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_whole_images_takes_the_image_sweeps_settings() -> None:
    wi = _load("whole_images")
    entries = wi.solver_entries()
    assert set(wi.SOLVERS) <= set(entries)
    assert wi.solver_settings(entries["dcdp-v2"], "gaussian-deblur", noisy=True) == {
        "purification": "tweedie", "preset": "gaussian-deblur", "t_end": 100, "early_stop": True}
    assert wi.solver_settings(entries["projdiff"], "gaussian-deblur", noisy=True) == {
        "preset": "gaussian-deblur-noisy"}
    assert wi.solver_settings(entries["pnp-hqs"], "sr4", noisy=False, iterations=2)["iterations"] == 2
    assert wi.TASKS["gaussian-deblur"][2] == 0.05


def test_whole_images_runs_resumes_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wi = _load("whole_images")
    args = ["--out", str(tmp_path), "--size", "32", "--iterations", "2", "--tasks", "sr4",
            "--pictures", "camera"]
    assert wi.main(args + ["--solvers", "pinv,dcdp-v2"]) == 0
    rows = wi.read_rows(tmp_path / "rows.csv")
    assert [(r["picture"], r["size"], r["task"], r["solver"], r["status"]) for r in rows] == [
        ("camera", "32", "sr4", "pinv", "ok"), ("camera", "32", "sr4", "dcdp-v2", "ok")]
    assert rows[0]["nfe"] == "0" and rows[1]["nfe"] == "2"
    for r in rows:
        assert 5 < float(r["psnr"]) < 60 and 0 < float(r["ssim"]) <= 1
    # A restart skips the finished rows and solves only what is new.
    solved = []
    real = wi.solve_one
    monkeypatch.setattr(wi, "solve_one", lambda x, prior, task, entry, it: solved.append(
        entry["label"]) or real(x, prior, task, entry, it))
    assert wi.main(args + ["--solvers", "pinv,dcdp-v2,pnp-hqs"]) == 0
    assert solved == ["pnp-hqs"]
    rows = wi.read_rows(tmp_path / "rows.csv")
    assert [r["solver"] for r in rows] == ["pinv", "dcdp-v2", "pnp-hqs"]
    text = (tmp_path / "summary.md").read_text()
    pinv = rows[0]
    assert (f"| A^+ y | {float(pinv['psnr']):.2f} / {float(pinv['ssim']):.3f} | "
            f"{float(pinv['wall_time']):.1f} | 0 |") in text
    assert "## camera, 32 x 32 (prior default-grey32)" in text
    assert (tmp_path / "grid.png").stat().st_size > 5_000
    for name in ("camera-32.png", "camera-32-sr4-measurement.png", "camera-32-sr4-dcdp-v2.png"):
        assert (tmp_path / "reconstructions" / name).is_file()


def test_whole_images_summary_says_errors_and_refuses_unknown_names(tmp_path: Path) -> None:
    wi = _load("whole_images")
    rows = [dict(picture="astronaut", size="64", task="box-inpainting", sigma_y="0",
                 solver="projdiff", status="ok", psnr="30.126", ssim="0.91234", wall_time="12.0",
                 nfe="101", peak_memory_mb="10"),
            dict(picture="astronaut", size="64", task="sr4", sigma_y="0", solver="projdiff",
                 status="error: ValueError: boom", psnr="", ssim="", wall_time="", nfe="",
                 peak_memory_mb="")]
    text = wi.summary(rows)
    assert "| ProjDiff | error | 30.13 / 0.912 | 12.0 | 101 |" in text
    assert "- astronaut 64 sr4 projdiff: error: ValueError: boom" in text
    with pytest.raises(SystemExit, match="unknown solver dps; choose from pinv"):
        wi.main(["--out", str(tmp_path), "--solvers", "dps"])


def test_cost_vs_size_splits_the_time_and_says_the_verdict(tmp_path: Path) -> None:
    cvs = _load("cost_vs_size")
    assert cvs.main(["--out", str(tmp_path), "--sizes", "32", "--iterations", "2"]) == 0
    record = json.loads((tmp_path / "results.json").read_text())
    by = {(r["solver"], r["size"]): r for r in record["results"]}
    assert set(by) == {("dcdp-v2", 32), ("projdiff", 32)}
    # the timer sees every network call the prior counts
    assert by["dcdp-v2", 32]["network_calls"] == by["dcdp-v2", 32]["nfe"] == 2
    assert by["projdiff", 32]["network_calls"] == by["projdiff", 32]["nfe"] == 3
    for r in record["results"]:
        assert 0 < r["network_seconds"] < r["seconds"]
        assert r["outside_share"] == pytest.approx(1 - r["network_seconds"] / r["seconds"], abs=2e-3)
    assert record["verdict"] == "target not measured (DCDP V2 at 512 x 512 was not run)"
    assert "| DCDP V2 | 32 |" in (tmp_path / "README.md").read_text()
    rows = [{"solver": "dcdp-v2", "size": 512, "outside_share": 0.3},
            {"solver": "projdiff", "size": 512, "outside_share": 0.9}]
    assert cvs.verdict(rows).startswith("target met: DCDP V2 at 512 x 512 spends 30%")
    rows[0]["outside_share"] = 0.31
    assert cvs.verdict(rows).startswith("target NOT met")


def test_cost_vs_size_table_has_the_ratios_to_the_smallest_size() -> None:
    cvs = _load("cost_vs_size")
    rows = [dict(solver="dcdp-v2", size=s, seconds=t, network_seconds=n, network_calls=10,
                 outside_share=1 - n / t, peak_memory_mb=m, nfe=10, psnr=25.0)
            for s, t, n, m in [(128, 2.0, 1.0, 10.0), (256, 8.0, 6.0, 40.0)]]
    text = cvs.table(rows)
    assert "| DCDP V2 | 128 | 2.00 | 1.00x | 1.00 | 10 | 50% | 10 | 1.00x | 25.00 |" in text
    assert "| DCDP V2 | 256 | 8.00 | 4.00x | 6.00 | 10 | 25% | 40 | 4.00x | 25.00 |" in text
    with pytest.raises(SystemExit, match="sizes multiples of 4"):
        cvs.main(["--sizes", "30"])


def test_whole_images_takes_other_priors_into_their_own_folder(tmp_path: Path) -> None:
    wi = _load("whole_images")
    assert wi.with_priors(rgb="default-rgb32")[1] == ("astronaut", 3, "default-rgb32")
    args = ["--out", str(tmp_path), "--size", "32", "--iterations", "2", "--tasks", "sr4",
            "--pictures", "camera", "--solvers", "pinv"]
    assert wi.main(args) == 0
    assert json.loads((tmp_path / "priors.json").read_text()) == {"camera": "default-grey32",
                                                                  "astronaut": "default-rgb32"}
    with pytest.raises(SystemExit, match=r"holds rows made with other priors \(camera: default-grey32 "
                       r"there, tv asked\); give another --out for these priors"):
        wi.main(args + ["--grey-prior", "tv"])
    other = tmp_path / "other"
    assert wi.main(["--out", str(other), *args[2:], "--grey-prior", "tv"]) == 0
    text = (other / "summary.md").read_text()
    assert "## camera, 32 x 32 (prior tv)" in text
    assert "restored whole with the priors `tv` / `default-rgb32` (grey" in text
    assert "restored whole with the default priors (grey" in (tmp_path / "summary.md").read_text()
    # rows from before the stamp were made with the default priors
    (tmp_path / "priors.json").unlink()
    with pytest.raises(SystemExit, match=r"holds rows made with the default priors \(default-grey32, "
                       r"default-rgb32\); give another --out"):
        wi.main(args + ["--grey-prior", "tv"])
