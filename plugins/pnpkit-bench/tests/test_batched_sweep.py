"""`batch = N`: the items of a case solved in one call, one row per item as unbatched."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from pnpkit.config import ConfigError
from pnpkit.solvers import Result
from pnpkit_bench import sweep as bench

SWEEP = """
output = "{out}"
metrics = ["psnr"]
seeds = [0, 1]
{batch}

[data]
dataset = "toy-images"
count = 3
size = 16

[[tasks]]
name = "half"
operator = "toy-mask"
noise = [0.0, 0.05]

[[priors]]
name = "toy-gauss"
settings = {{ scale = 0.6 }}

[[solvers]]
label = "hqs"
name = "hqs"
settings = {{ iterations = 6, sigma = 0.2 }}

[[solvers]]
label = "pgd"
name = "pgd"
settings = {{ iterations = 4, stepsize = 0.5 }}

[[solvers]]
label = "diverging"
name = "pgd"
settings = {{ iterations = 3, stepsize = 1e8, init = "zeros" }}
"""


def write(tmp_path: Path, out: str, batch: str) -> Path:
    path = tmp_path / f"{out}.toml"
    path.write_text(SWEEP.format(out=out, batch=batch))
    return path


def test_a_batched_sweep_writes_the_rows_of_the_unbatched_one(toy_site, tmp_path):
    one = bench.run(write(tmp_path, "one", ""), progress=False)
    two = bench.run(write(tmp_path, "two", "batch = 2"), progress=False)
    assert [bench.row_key(r) for r in one] == [bench.row_key(r) for r in two]
    for a, b in zip(one, two, strict=True):
        assert a["status"] == b["status"] and a["nfe"] == b["nfe"]
        if a["status"] == "ok":  # the same measurement (each item's own noise), the same solve
            assert abs(float(a["psnr"]) - float(b["psnr"])) < 2e-3, (a, b)
    # 3 items in batches of 2: a batch of 2 and one of 1 per case; its history says the batch
    hist = [json.loads(line) for line in (tmp_path / "two" / "histories.jsonl").read_text().splitlines()]
    assert [h.get("batch") for h in hist[:3]] == [["img0", "img1"], ["img0", "img1"], None]
    x = {p.name for p in (tmp_path / "two" / "reconstructions").iterdir()}
    assert x == {p.name for p in (tmp_path / "one" / "reconstructions").iterdir()} and len(x) == 2 * 2 * 2 * 3


def test_a_resumed_batched_sweep_solves_only_the_missing_items(toy_site, tmp_path, monkeypatch):
    path = write(tmp_path, "s", "batch = 3")
    first = bench.run(path, progress=False)
    kept = [r for r in first if r["item"] != "img1"]  # as if each batch lost its second item
    with (tmp_path / "s" / "rows.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(first[0]))
        w.writeheader()
        w.writerows(kept)
    sizes: list[list[str]] = []
    solve_batch = bench.Sweep._solve_batch

    def spy(self: Any, cases: list[Any], metrics: list[str]) -> Any:
        sizes.append([c.item for c in cases])
        return solve_batch(self, cases, metrics)

    monkeypatch.setattr(bench.Sweep, "_solve_batch", spy)
    again = bench.run(path, progress=False)
    assert sizes == [["img1"]] * (2 * 3 * 2)  # noise levels x solvers x seeds
    assert [bench.row_key(r) for r in again] == [bench.row_key(r) for r in first]
    assert [r for r in again if r["item"] != "img1"] == kept


class _Stub:
    """A solver whose batch result is given: item 1 diverges at iteration 2."""

    def __init__(self, fail_batches: bool = False) -> None:
        self.fail_batches = fail_batches
        self.calls: list[int] = []

    def solve(self, y: torch.Tensor, op: Any, prior: Any, **kw: Any) -> Result:
        self.calls.append(y.shape[0])
        if self.fail_batches and y.shape[0] > 1:
            raise RuntimeError("out of memory")
        n = y.shape[0]
        diverged = [None, 2, None][:n] if not self.fail_batches else [None] * n
        return Result(x=kw["reference"].clone(), history=[{"stage": "final"}], nfe=7,
                      wall_time=3.0, iterations=5, config={"name": "stub"},
                      diverged_at=2 if 2 in diverged else None, item_diverged_at=diverged)


def _sweep_with(stub: _Stub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    sweep = bench.Sweep(bench.load_sweep(write(tmp_path, "stub", "batch = 3")))
    monkeypatch.setattr(sweep, "_solver", lambda *a: stub)
    return sweep


def test_an_item_that_diverges_in_a_batch_is_its_row_alone(toy_site, tmp_path, monkeypatch):
    stub = _Stub()
    sweep = _sweep_with(stub, tmp_path, monkeypatch)
    (sweep.output / "reconstructions").mkdir(parents=True)
    cases = [c for c in sweep.cases() if c.solver["label"] == "hqs" and c.seed == 0 and c.noise == 0]
    out = sweep._solve_batch(cases, ["psnr"])
    assert stub.calls == [3]
    assert [r["status"] for r, _ in out] == ["ok", "diverged: at iteration 2", "ok"]
    assert all(r["wall_time"] == "1.0000" and r["nfe"] == 7 for r, _ in out)  # 3 s over 3 items
    assert out[1][0].get("psnr") is None and float(out[0][0]["psnr"]) > 90
    saved = sorted(p.name for p in (sweep.output / "reconstructions").iterdir())
    assert [n.rsplit("__", 1)[-1] for n in saved] == ["img0.safetensors", "img2.safetensors"]


def test_a_failing_batch_is_solved_again_item_by_item(toy_site, tmp_path, monkeypatch):
    stub = _Stub(fail_batches=True)
    sweep = _sweep_with(stub, tmp_path, monkeypatch)
    (sweep.output / "reconstructions").mkdir(parents=True)
    cases = [c for c in sweep.cases() if c.solver["label"] == "hqs" and c.seed == 0 and c.noise == 0]
    out = sweep._solve_batch(cases, ["psnr"])
    assert stub.calls == [3, 1, 1, 1]
    assert [r["status"] for r, _ in out] == ["ok"] * 3 and out[0][0]["wall_time"] == "3.0000"


def test_each_item_of_a_batch_is_measured_with_its_own_noise(toy_site, tmp_path, monkeypatch):
    seen: list[torch.Tensor] = []

    class Keep(_Stub):
        def solve(self, y: torch.Tensor, op: Any, prior: Any, **kw: Any) -> Result:
            seen.append(y.clone())
            return super().solve(y, op, prior, **kw)

    sweep = _sweep_with(Keep(), tmp_path, monkeypatch)
    (sweep.output / "reconstructions").mkdir(parents=True)
    cases = [c for c in sweep.cases() if c.solver["label"] == "hqs" and c.seed == 1 and c.noise > 0]
    sweep._solve_batch(cases, ["psnr"])
    sweep._solve_batch(cases[2:], ["psnr"])
    assert torch.equal(seen[0][2:], seen[1])  # item 2's y whatever batch it is in
    op = sweep._operator(cases[0].task, cases[0].noise, tuple(sweep.items[0].signal.shape))
    noise = [seen[0][i] - op.A(sweep.items[i].signal[None])[0] for i in range(3)]
    assert 0.03 < float(noise[0].std()) < 0.07 and not torch.allclose(noise[0], noise[1])


@pytest.mark.parametrize("value", ["0", "2.5", "true", "\"16\""])
def test_batch_must_be_a_whole_number_of_at_least_one(tmp_path, value):
    path = write(tmp_path, "bad", f"batch = {value}")
    with pytest.raises(ConfigError, match=r"^batch must be a whole number >= 1 \(items solved in one "
                                          r"call, e.g. batch = 16\), got "):
        bench.load_sweep(path)


def test_batch_1_keeps_the_unbatched_fingerprint(tmp_path):
    plain = bench.load_sweep(write(tmp_path, "a", ""))
    ones = bench.load_sweep(write(tmp_path, "a", "batch = 1"))
    sixteen = bench.load_sweep(write(tmp_path, "a", "batch = 16"))
    fp = bench.Sweep.fingerprint
    assert fp(_Bare(plain)) == fp(_Bare(ones)) != fp(_Bare(sixteen))


class _Bare:
    def __init__(self, sweep: dict[str, Any]) -> None:
        self.sweep = sweep


def test_the_summary_gives_the_paired_difference_to_the_reference_with_its_standard_error(toy_site,
                                                                                           tmp_path):
    from pnpkit_bench.report import paired_difference

    path = write(tmp_path, "ref", "reference = \"hqs\"")
    rows = bench.run(path, progress=False)
    clean = [r for r in rows if r["noise"] == "0"]
    pgd = [r for r in clean if r["solver"] == "pgd"]
    hqs = {(r["seed"], r["item"]): float(r["psnr"]) for r in clean if r["solver"] == "hqs"}
    diffs = torch.tensor([float(r["psnr"]) - hqs[(r["seed"], r["item"])] for r in pgd], dtype=torch.float64)
    mean, se, n = paired_difference(pgd, [r for r in clean if r["solver"] == "hqs"], "psnr")
    assert n == 6 and abs(mean - float(diffs.mean())) < 1e-9
    assert abs(se - float(diffs.std() / 6**0.5)) < 1e-9
    summary = (tmp_path / "ref" / "summary.md").read_text()
    assert "Means over 3 items x 2 seeds (`n`: the rows each solver solved)." in summary
    assert "| time / hqs | Δ psnr (dB) vs hqs |" in summary
    line = next(ln for ln in summary.split("### half, σ_y = 0,")[1].splitlines() if ln.startswith("| pgd |"))
    assert line.endswith(f" | {mean:+.3g} ± {se:.2g} (6) |"), line
    assert "| diverging | diverged | 0 |" in summary and summary.count(" | - |\n") >= 2
    assert "paired difference to the reference" in (tmp_path / "ref" / "report.html").read_text()
