"""`pnpkit bench`: every (task, noise, prior, solver, seed, item) row, reports, resume, torchrun."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pnpkit.config import ConfigError
from pnpkit.plugins import PluginManager, reset_manager
from pnpkit_bench import sweep as bench
from pnpkit_bench.memory import PeakMemory

SWEEP = """
output = "{out}"
metrics = ["psnr", "mse"]
seeds = [0, 1]
reference = "hqs"

[data]
dataset = "toy-images"
count = 2
size = 16

[[tasks]]
name = "half"
operator = "toy-mask"
noise = [0.0, 0.05]

[[tasks]]
name = "quarter"
operator = "toy-mask"
settings = {{ keep = 0.25 }}

[[priors]]
name = "toy-gauss"
settings = {{ scale = 0.6 }}

[[solvers]]
label = "hqs"
name = "hqs"
settings = {{ iterations = 6, sigma = 0.2 }}

[[solvers]]
label = "pgd-fast"
name = "pgd"
settings = {{ iterations = 3 }}
per_task = {{ quarter = {{ iterations = 2 }}, "half:noisy" = {{ stepsize = 0.5 }} }}

[[solvers]]
label = "diverging"
name = "pgd"
settings = {{ iterations = 3, stepsize = 1e8, init = "zeros" }}
"""


def write(tmp_path: Path, out: str = "sweep") -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.format(out=out))
    return path


def read(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_sweep_rows_reports_and_errors(toy_site, tmp_path):
    rows = bench.run(write(tmp_path), progress=False)
    # (2 noise levels + 1) task settings x 3 solvers x 2 seeds x 2 items
    assert len(rows) == 3 * 3 * 2 * 2
    ok = [r for r in rows if r["solver"] != "diverging"]
    assert all(r["status"] == "ok" for r in ok)
    # The first step from zeros by 1e8 leaves any plausible range: a row apart, no metrics.
    apart = [r for r in rows if r["solver"] == "diverging"]
    assert all(r["status"] == "diverged: at iteration 0" and r["psnr"] == "" for r in apart)
    assert len(bench.diverged_rows(rows)) == len(apart) == 12
    nfe = {(r["task"], r["noise"], r["solver"]): r["nfe"] for r in ok}
    assert nfe[("half", "0", "pgd-fast")] == "3" and nfe[("quarter", "0", "pgd-fast")] == "2"
    assert nfe[("half", "0", "hqs")] == "6"
    assert all(float(r["peak_memory_mb"]) >= 0 and float(r["wall_time"]) > 0 for r in ok)
    out = tmp_path / "sweep"
    summary = (out / "summary.md").read_text()
    assert "### half, σ_y = 0.05, prior toy-gauss" in summary and "time / hqs" in summary
    assert "| hqs | ok | 4 |" in summary and "| diverging | diverged | 0 | - |" in summary
    assert summary.count("\n- diverging: diverged: at iteration 0 (4 of 4 rows)\n") == 3
    for f in ("quality_vs_time.png", "convergence.png", "report.html", "grid_half_0_toy-gauss.png"):
        assert (out / f).is_file(), f
    assert (out / "report.html").read_text().count("<tbody>") == 3


def test_interrupted_sweep_resumes_only_missing_rows(toy_site, tmp_path):
    path = write(tmp_path)
    first = bench.run(path, progress=False)
    out = tmp_path / "sweep"
    kept = first[:10]
    with (out / "rows.csv").open("w", newline="") as f:  # as if stopped after 10 rows
        w = csv.DictWriter(f, fieldnames=list(first[0]))
        w.writeheader()
        w.writerows(kept)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "reconstructions").iterdir()}
    again = bench.run(path, progress=False)
    assert again[:10] == kept, "finished rows are kept as they were"
    assert len(again) == len(first)
    recomputed = [p.name for p in (out / "reconstructions").iterdir()
                  if p.stat().st_mtime_ns != stamps.get(p.name)]
    assert recomputed and len(recomputed) < len(stamps), "only the missing rows are solved again"


def test_a_different_sweep_in_the_same_folder_is_refused(toy_site, tmp_path):
    path = write(tmp_path)
    first = bench.run(path, progress=False)
    path.write_text(SWEEP.format(out="sweep").replace("seeds = [0, 1]", "seeds = [0]"))
    with pytest.raises(ConfigError, match="sweep holds a run of a different configuration; "
                                          "pass --overwrite to replace it"):
        bench.run(path, progress=False)
    assert len(read(tmp_path / "sweep" / "rows.csv")) == len(first), "the refused folder is untouched"
    again = bench.run(path, overwrite=True, progress=False)
    assert len(again) == len(first) // 2 and {r["seed"] for r in again} == {"0"}


def test_sweep_validation(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('output = "o"\nrefrence = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'refrence' in the sweep. Did you mean 'reference'"):
        bench.load_sweep(path)
    path.write_text('output = "o"\n[data]\nsample="camera"\n[[tasks]]\nname="a"\noperator="b"\n'
                    '[[priors]]\nname="p"\n[[solvers]]\nname="hqs"\nlable="x"\n')
    with pytest.raises(ConfigError, match="unknown key 'lable' in \\[\\[solvers\\]\\]"):
        bench.load_sweep(path)


def test_torchrun_sweep_matches_single_process(bench_site, tmp_path):
    path = write(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(bench_site), PNPKIT_LOAD_PLUGINS="toy,bench")
    one = subprocess.run([sys.executable, "-m", "pnpkit", "bench", str(path), "-q",
                          "-o", str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 1, one.stderr  # the diverging solver's rows
    assert "pnpkit: 12 row(s) diverged (the iterate became non-finite)" in one.stderr
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.run([str(torchrun), "--nproc-per-node", "2", "--master-port", "29533", "-m", "pnpkit",
                          "bench", str(path), "-q", "-o", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 1, two.stderr
    # Only rank 0 reports: one summary line, one line naming the diverged rows.
    assert two.stdout.count(" row(s): ") == 1, two.stdout
    assert two.stderr.count("row(s) diverged") == 1, two.stderr
    a, b = read(tmp_path / "one" / "rows.csv"), read(tmp_path / "two" / "rows.csv")
    assert not list((tmp_path / "two").glob("rows.rank*.csv"))
    def strip(rows: list[dict[str, str]]) -> list[dict[str, str]]:  # timings differ run to run
        return [{k: v for k, v in r.items() if k not in ("wall_time", "peak_memory_mb")} for r in rows]

    assert strip(a) == strip(b)


def test_peak_memory_follows_live_tensors_on_cpu():
    import time

    import torch

    seen = []
    for n in (50, 10, 50):  # a second, equal peak must be measured again, not hidden by reuse
        with PeakMemory(torch.device("cpu")) as mem:
            blocks = [torch.ones(n, 2**18) for _ in range(2)]  # 2 n MiB
            # Held for 100 ms, as a solve holds its tensors: the resident set is sampled every
            # 2 ms, and a block freed within a few ms on a busy machine can fall between samples.
            time.sleep(0.1)
            del blocks
        seen.append(mem.peak_mb)
    assert 90 < seen[0] < 130 and 15 < seen[1] < 40 and 90 < seen[2] < 130, seen


AUDIO_SWEEP = """
output = "asweep"
metrics = ["si_snri_msdm", "mse"]
seeds = [0]

[data]
dataset = "toy-audio"
count = 2

[[tasks]]
name = "mask"
operator = "toy-mask"

[[priors]]
name = "toy-gauss"

[[solvers]]
label = "pgd"
name = "pgd"
settings = { iterations = 3 }

[[solvers]]
label = "pinv"
name = "pinv"
"""


def test_audio_sweep_gets_the_sample_rate_and_a_column_per_stem(toy_site, monkeypatch, tmp_path):
    # si_snri_msdm is the MSDM plugin's metric
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,msdm")
    reset_manager(PluginManager())
    path = tmp_path / "audio.toml"
    path.write_text(AUDIO_SWEEP)
    rows = bench.run(path, progress=False)
    assert len(rows) == 2 * 2 and all(r["status"] == "ok" for r in rows)
    for r in rows:
        stems = [float(r["si_snri_msdm/0"]), float(r["si_snri_msdm/1"])]
        assert float(r["si_snri_msdm"]) == pytest.approx(sum(stems) / 2, abs=1e-3)
    summary = (tmp_path / "asweep" / "summary.md").read_text()
    assert "si_snri_msdm/0" in summary and "si_snri_msdm/1" in summary


PICKY_PLUGIN = '''
from dataclasses import dataclass

import pnpkit
from pnpkit.solvers import DoesNotApply, Solver


@dataclass(kw_only=True)
class Picky(Solver):
    name = "picky"

    def solve(self, y, operator, prior, **kwargs):
        raise DoesNotApply(f"picky needs an SVD; {type(operator).__name__} has none")


@dataclass(kw_only=True)
class Broken(Solver):
    name = "broken"

    def solve(self, y, operator, prior, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'Tensor' and 'str'")


@pnpkit.hookimpl
def register_solvers(register):
    register("picky", Picky)
    register("broken", Broken)
'''

APPLIES = """
output = "out"
metrics = ["mse"]
[data]
dataset = "toy-images"
count = 1
size = 8
[[tasks]]
name = "mask"
operator = "toy-mask"
[[priors]]
name = "toy-gauss"
[[solvers]]
name = "pinv"
[[solvers]]
name = "picky"
[[solvers]]
name = "ddrm"
settings = { iterations = 2 }
[[solvers]]
name = "broken"
"""


def test_a_solver_that_does_not_apply_is_said_so_and_not_counted_as_an_error(
        toy_site, fake_site, monkeypatch, tmp_path, capsys):
    from pnpkit.cli import main

    fake_site("pnpkit-picky", "pnpkit_picky_plugin", PICKY_PLUGIN, entry_name="picky")
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,bench,peers,picky")
    reset_manager(PluginManager())
    path = tmp_path / "sweep.toml"
    path.write_text(APPLIES)
    assert main(["bench", str(path), "-q"]) == 0
    out = (tmp_path / "out").resolve()
    assert (f"4 row(s): 1 solved, 0 diverged, 2 do not apply, 1 failed; see {out / 'summary.md'}"
            in capsys.readouterr().out)
    status = {r["solver"]: r["status"] for r in read(out / "rows.csv")}
    assert status == {
        "pinv": "ok",
        "picky": "does not apply: picky needs an SVD; ToyMask has none",
        # deepinv's DDRM through pnpkit-peers: the toy mask is no DecomposablePhysics
        "ddrm": "does not apply: DDRM needs a decomposable operator (deepinv DecomposablePhysics); "
                "ToyMask is not one",
        "broken": "error: TypeError: unsupported operand type(s) for +: 'Tensor' and 'str'"}
    summary = (out / "summary.md").read_text()
    assert "| picky | does not apply | 0 |" in summary and "| ddrm | does not apply | 0 |" in summary
    assert "| broken | error | 0 |" in summary
    assert "\n- picky: does not apply: picky needs an SVD; ToyMask has none\n" in summary
    assert "Rows: 1 solved, 0 diverged, 2 do not apply, 1 failed." in summary
    html = (out / "report.html").read_text()
    assert html.count('<tr class="na">') == 2 and html.count('<tr class="failed">') == 1
