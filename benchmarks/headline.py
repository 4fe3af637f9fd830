"""The headline tables of a finished sweep: one line per solver, one column per task.

    python benchmarks/headline.py benchmarks/results/images [--reference dps] [--metric psnr]

Reads the sweep's ``rows.csv`` (every item, as ``pnpkit bench`` wrote it) and writes
``headline.md`` beside it, which the READMEs quote:

1. the mean of ``metric`` per solver and task (columns ``task`` and ``task+n`` for the noiseless
   and the noisy measurement), its mean over every column, and the solver's mean rank over
   the columns (1 = best; a near-trivial task with PSNRs over 100 dB cannot swamp it);
2. per solver, over all its items: NFE, wall time and peak memory per image, and the ratios of
   wall time and peak memory to the reference solver's on the same items (mean over the
   task / noise groups of the ratio of the group means, so that every group counts once).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def headline(rows: list[dict[str, str]], reference: str, metric: str) -> str:
    ok = [r for r in rows if r["status"] == "ok"]
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    groups = list(dict.fromkeys((r["task"], r["noise"]) for r in rows))
    label = {g: g[0] if float(g[1]) == 0 else f"{g[0]}+n" for g in groups}
    cell: dict[tuple[str, tuple[str, str]], list[dict[str, str]]] = {}
    for r in ok:
        cell.setdefault((r["solver"], (r["task"], r["noise"])), []).append(r)

    def avg(solver: str, group: tuple[str, str], key: str) -> float:
        return _mean([float(r[key]) for r in cell.get((solver, group), []) if r.get(key)])

    noisy = sorted({g[1] for g in groups if float(g[1]) > 0})
    lines = [f"Mean {metric.upper()} per task"
             + (f" (`+n`: sigma_y = {', '.join(noisy)})" if noisy else "")
             + f"; n = {max((len(v) for v in cell.values()), default=0)} items per cell.", "",
             "| solver | " + " | ".join(label[g] for g in groups) + " | mean | mean rank |",
             "|---|" + "---:|" * (len(groups) + 2)]
    table = {s: [avg(s, g, metric) for g in groups] for s in solvers}
    ranks: dict[str, list[int]] = {s: [] for s in solvers}
    for j in range(len(groups)):
        present = sorted((v[j], s) for s, v in table.items() if v[j] == v[j])
        for r, (_, s) in enumerate(reversed(present), start=1):   # 1 = highest
            ranks[s].append(r)
    for s in solvers:
        values = table[s]
        done = [v for v in values if v == v]
        mean = _mean(done) if len(done) == len(values) else float("nan")
        rank = (f"{_mean(ranks[s]):.1f}" + ("" if len(ranks[s]) == len(groups)
                                            else f" ({len(ranks[s])} of {len(groups)})")
                if ranks[s] else "-")
        lines.append(f"| {s} | " + " | ".join(_fmt(v) for v in values) + f" | {_fmt(mean)} | {rank} |")
    lines += ["", f"Cost per image, and ratios to `{reference}` on the same task groups.", "",
              "| solver | NFE | wall time (s) | peak memory (MB) "
              f"| time / {reference} | memory / {reference} |",
              "|---|---:|---:|---:|---:|---:|"]
    for s in solvers:
        mine = [r for r in ok if r["solver"] == s]
        if not mine:
            lines.append(f"| {s} | - | - | - | - | - |")
            continue
        t_ratio, m_ratio = [], []
        for g in groups:
            t, tr = avg(s, g, "wall_time"), avg(reference, g, "wall_time")
            m, mr = avg(s, g, "peak_memory_mb"), avg(reference, g, "peak_memory_mb")
            if t == t and tr == tr and tr > 0:
                t_ratio.append(t / tr)
            if m == m and mr == mr and mr > 0:
                m_ratio.append(m / mr)
        lines.append(f"| {s} | {_fmt(_mean([float(r['nfe']) for r in mine]), 0)} "
                     f"| {_fmt(_mean([float(r['wall_time']) for r in mine]))} "
                     f"| {_fmt(_mean([float(r['peak_memory_mb']) for r in mine]), 1)} "
                     f"| {_fmt(_mean(t_ratio), 3)} | {_fmt(_mean(m_ratio), 3)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a sweep's output folder (holds rows.csv)")
    parser.add_argument("--reference", default="dps")
    parser.add_argument("--metric", default="psnr")
    args = parser.parse_args(argv)
    path = args.results / "rows.csv"
    if not path.exists():
        parser.error(f"{path} does not exist: run the sweep first (pnpkit bench SWEEP.toml)")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    text = headline(rows, args.reference, args.metric)
    (args.results / "headline.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
