"""The examples under examples/ run as a user runs them (a fresh process), at a tiny size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_restore_your_photo_restores_blurry_png_at_its_own_size(tmp_path: Path) -> None:
    env = {**os.environ, "PNPKIT_EXAMPLE_SIZE": "48", "PNPKIT_EXAMPLE_ITERATIONS": "2",
           "PNPKIT_EXAMPLE_OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "restore_your_photo.py")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # the photo and its PSF, as a user would have them: 8-bit PNGs, a 3:4 landscape
    blurry = np.asarray(Image.open(tmp_path / "blurry.png"))
    assert blurry.shape == (36, 48) and blurry.dtype == np.uint8
    assert np.asarray(Image.open(tmp_path / "psf.png")).shape == (15, 15)
    # both routes give reconstruction.png at the photo's size, and pnpkit run its scores
    for folder in (tmp_path / "python", tmp_path / "cli" / "items" / "blurry"):
        assert np.asarray(Image.open(folder / "reconstruction.png")).shape == (36, 48)
    record = json.loads((tmp_path / "cli" / "items" / "blurry" / "metrics.json").read_text())
    assert record["status"] == "done" and record["nfe"] == 2
    assert 10 < record["metrics"]["psnr"] < 60
    assert str(tmp_path / "cli" / "items" / "blurry" / "reconstruction.png") in done.stdout


def _run_example(name: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PNPKIT_EXAMPLE_OUT": str(tmp_path), "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "Agg", **env}
    full.pop("PNPKIT_LOAD_PLUGINS", None)
    done = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py")], env=full,
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_compare_three_solvers_scores_each_on_the_same_measurement(tmp_path: Path) -> None:
    done = _run_example("compare_three_solvers", tmp_path, PNPKIT_EXAMPLE_SIZE="32",
                        PNPKIT_EXAMPLE_ITERATIONS="2")
    table = {line.split()[0] if not line.startswith("A^+") else "A^+y": line.split()[-4:]
             for line in done.stdout.splitlines() if line.endswith("s") and "dB" not in line
             and line[:1] in "APDR" and len(line.split()) >= 5}
    assert set(table) == {"A^+y", "PnP-HQS", "DCDP", "ProjDiff"}, done.stdout
    for psnr_db, ssim_value, _nfe, _time in table.values():
        assert 8 < float(psnr_db) < 60 and 0 < float(ssim_value) <= 1
    assert table["A^+y"][2] == "0" and table["PnP-HQS"][2] == "2" and table["DCDP"][2] == "2"
    for stem in ("pinv", "hqs", "dcdp", "projdiff"):
        assert np.asarray(Image.open(tmp_path / f"{stem}.png")).shape == (32, 32)
    assert Image.open(tmp_path / "comparison.png").size[0] > 5 * 100  # five panels


def test_third_party_solver_registers_runs_and_passes_the_contract(tmp_path: Path) -> None:
    done = _run_example("third_party_solver", tmp_path, PNPKIT_EXAMPLE_SIZE="16",
                        PNPKIT_EXAMPLE_ITERATIONS="2")
    assert done.stdout.splitlines()[0] == "my-solvers:pnp-fista"
    passed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("passed ")]
    assert passed == ["test_config_round_trip", "test_deterministic_under_seed",
                      "test_one_instance_solves_two_problems_at_once", "test_runs_and_reports",
                      "test_same_result_under_no_grad", "test_unknown_setting_is_rejected"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["solver"] == {"name": "pnp-fista", "iterations": 2, "init": "pinv", "tol": 0.0,
                                "stepsize": 1.0, "sigma": 0.1, "sigma_end": 0.02}
    record = json.loads((tmp_path / "run" / "items" / "camera" / "metrics.json").read_text())
    assert record["nfe"] == 2 and 5 < record["metrics"]["psnr"] < 60
    # the solver itself is the promised 40 lines: from its @dataclass to its registration
    source = (ROOT / "examples" / "third_party_solver.py").read_text().splitlines()
    start = source.index("@dataclass(kw_only=True)")
    end = next(i for i, line in enumerate(source) if line.startswith("             paper="))
    assert end - start + 1 <= 40


def test_separate_a_song_writes_a_wav_per_stem_both_ways(tmp_path: Path) -> None:
    import soundfile

    done = _run_example("separate_a_song", tmp_path, PNPKIT_EXAMPLE_PIECES="1",
                        PNPKIT_EXAMPLE_ITERATIONS="2")
    assert "4 network calls" in done.stdout
    for folder in (tmp_path / "python", tmp_path / "cli" / "items" / "song"):
        for stem in ("bass", "drums", "guitar", "piano"):
            info = soundfile.info(str(folder / f"reconstruction_{stem}.wav"))
            assert (info.frames, info.samplerate, info.channels) == (65536, 8000, 1)
    record = json.loads((tmp_path / "cli" / "items" / "song" / "metrics.json").read_text())
    assert record["status"] == "done" and record["nfe"] == 4 and "si_snri" in record["metrics"]
