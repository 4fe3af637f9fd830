"""``pnpkit bench SWEEP.toml``: tasks x noise levels x solvers x priors x seeds over a dataset.

Every solver, ours and the peers registered from deepinv, goes through the same ``solve``
call on the same prior, operator, measurement and seed, and is measured the same way:
quality (PSNR / SSIM for images, SI-SNR(i) for audio), wall time, NFE and peak memory
(CPU: the process's resident set above its level before the solve, sampled every 2 ms, with
glibc set to return large blocks to the system so the figure follows live tensors; GPU:
torch's peak allocated memory). A sweep file::

    output = "runs/sweep"
    metrics = ["psnr", "ssim"]
    seeds = [0]
    reference = "dps"                 # time ratios are reported against this solver label

    [data]                            # as in `pnpkit run`
    dataset = "heldout-grey32"
    count = 4

    [[tasks]]
    name = "sr4"
    operator = "super-resolution"
    noise = [0.0, 0.05]               # sigma_y values
    settings = { factor = 4 }

    [[priors]]
    name = "default-grey32"

    [[solvers]]
    label = "dcdp-v2"
    name = "dcdp"
    settings = { purification = "tweedie" }
    per_task = { sr4 = { preset = "sr4" }, "sr4:noisy" = { t_end = 50 } }

Output: ``rows.csv`` (one row per item, appended as each finishes: an interrupted sweep
resumes where it stopped), ``histories.jsonl``, ``summary.md`` (mean +- std and the time
ratio to the reference), ``quality_vs_time.png``, ``convergence.png``, one image grid per
task and noise level, and ``report.html`` (static; open it in a browser). Under
``torchrun`` the rows are sharded over ranks and rank 0 merges them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import statistics
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import operators as ops
from .config import ConfigError, _unknown
from .data import load_items
from .metrics import compute
from .plugins import get_manager
from .priors import torch_dtype

SWEEP_KEYS = {"output", "metrics", "seeds", "reference", "device", "dtype", "data", "tasks",
              "priors", "solvers"}
TASK_KEYS = {"name", "operator", "noise", "settings"}
PRIOR_KEYS = {"name", "label", "settings"}
SOLVER_KEYS = {"name", "label", "settings", "per_task"}
COLUMNS = ["task", "noise", "prior", "solver", "seed", "item", "status", "wall_time", "nfe",
           "peak_memory_mb"]


@dataclass(frozen=True)
class Case:
    task: dict[str, Any]
    noise: float
    prior: dict[str, Any]
    solver: dict[str, Any]
    seed: int
    index: int
    item: str

    @property
    def key(self) -> tuple[str, ...]:
        return (self.task["name"], f"{self.noise:g}", self.prior["label"], self.solver["label"],
                str(self.seed), self.item)


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Read and check a sweep file (unknown keys name the closest valid one)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {str(path)!r} does not exist")
    raw = tomllib.loads(path.read_text())
    for key in raw:
        if key not in SWEEP_KEYS:
            raise _unknown(key, SWEEP_KEYS, "the sweep")
    for section, keys in (("tasks", TASK_KEYS), ("priors", PRIOR_KEYS), ("solvers", SOLVER_KEYS)):
        entries = raw.get(section)
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"the sweep needs at least one [[{section}]] entry")
        for entry in entries:
            for key in entry:
                if key not in keys:
                    raise _unknown(key, keys, f"[[{section}]]")
            if "name" not in entry or (section == "tasks" and "operator" not in entry):
                raise ConfigError(f"each [[{section}]] entry needs a name"
                                  + (" and an operator" if section == "tasks" else ""))
            entry.setdefault("label", entry["name"])
            entry.setdefault("settings", {})
    labels = [s["label"] for s in raw["solvers"]]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"solver labels must be unique, got {labels}")
    if "output" not in raw or "data" not in raw:
        raise ConfigError("the sweep needs output = \"...\" and a [data] table")
    raw.setdefault("metrics", ["psnr"])
    raw.setdefault("seeds", [0])
    raw.setdefault("device", "cpu")
    raw.setdefault("dtype", "float32")
    for task in raw["tasks"]:
        task["noise"] = [float(v) for v in (task.get("noise", [0.0]) if isinstance(
            task.get("noise", [0.0]), list) else [task["noise"]])]
    if raw.get("reference") is not None and raw["reference"] not in labels:
        raise ConfigError(f"reference {raw['reference']!r} is not a solver label; labels: {labels}")
    raw["_base_dir"] = str(path.parent.resolve())
    return raw


def _libc() -> Any:
    """glibc, configured so that the resident set follows live memory (None elsewhere).

    By default glibc keeps freed blocks in its heap and raises its mmap threshold as large
    blocks are freed, so a second solve in the same process would show no growth at all. A
    fixed 64 KiB threshold returns every large tensor to the system when freed, and
    ``malloc_trim`` empties the heap before each measurement.
    """
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            lib = ctypes.CDLL("libc.so.6")
            lib.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
            _LIBC = lib
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


_LIBC: Any = None


class PeakMemory:
    """Peak memory of a block: GPU peak allocated, or resident-set growth sampled on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        lib = _libc()
        if lib is not None:
            lib.malloc_trim(0)
        self._base = self._peak = self._rss_mb()
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, self._rss_mb())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20 - self._base
            return
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self._peak, self._rss_mb()) - self._base


class Sweep:
    """Runs a loaded sweep; see the module documentation."""

    def __init__(self, sweep: dict[str, Any], output: str | Path | None = None) -> None:
        from .pipeline import Distributed

        self.sweep = sweep
        self.output = Path(output or sweep["output"])
        if not self.output.is_absolute() and output is None:
            self.output = Path(sweep["_base_dir"]) / self.output
        self.group = Distributed()
        self.device = torch.device(sweep["device"])
        self.dtype = torch_dtype(sweep["dtype"])
        self.manager = get_manager()
        self.items = load_items(dict(sweep["data"]), Path(sweep["_base_dir"]))
        self._priors: dict[str, Any] = {}
        self._operators: dict[tuple[Any, ...], Any] = {}

    # -- building ------------------------------------------------------------------------------
    def cases(self) -> list[Case]:
        return [Case(task, noise, prior, solver, int(seed), i, item.id)
                for task in self.sweep["tasks"] for noise in task["noise"]
                for prior in self.sweep["priors"] for solver in self.sweep["solvers"]
                for seed in self.sweep["seeds"] for i, item in enumerate(self.items)]

    def _prior(self, entry: dict[str, Any]) -> Any:
        if entry["label"] not in self._priors:
            comp = self.manager.get("prior", entry["name"])
            extra = _accepted(comp.factory, device=str(self.device), dtype=self.sweep["dtype"])
            self._priors[entry["label"]] = comp.create(**entry["settings"], **extra)
        return self._priors[entry["label"]]

    def _operator(self, task: dict[str, Any], noise: float, shape: tuple[int, ...]) -> Any:
        key = (task["name"], noise, shape)
        if key not in self._operators:
            comp = self.manager.get("operator", task["operator"])
            extra = _accepted(comp.factory, shape=shape, device=str(self.device),
                              dtype=self.sweep["dtype"])
            self._operators[key] = comp.create(**task["settings"], sigma_y=noise, **extra)
        return self._operators[key]

    def _solver(self, entry: dict[str, Any], task: str, noise: float) -> Any:
        settings = dict(entry["settings"])
        per_task = entry.get("per_task", {})
        settings.update(per_task.get(task, {}))
        if noise > 0:
            settings.update(per_task.get(f"{task}:noisy", {}))
        cls = self.manager.get("solver", entry["name"]).factory
        return cls.from_dict({"name": cls.name, **settings})

    # -- running -------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        clean = {k: v for k, v in self.sweep.items() if k not in ("output", "_base_dir")}
        return hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:16]

    def _read_rows(self, path: Path) -> list[dict[str, str]]:
        if not path.exists():
            return []
        with path.open(newline="") as f:
            return list(csv.DictReader(f))

    def run(self, overwrite: bool = False, progress: bool = True) -> list[dict[str, str]]:
        try:
            return self._run(overwrite, progress)
        finally:
            self.group.close()

    def _run(self, overwrite: bool, progress: bool) -> list[dict[str, str]]:
        from tqdm.auto import tqdm

        group = self.group
        out = self.output
        error = None
        if group.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            stamp = out / "sweep.json"
            if stamp.exists() and not overwrite and json.loads(stamp.read_text())["fingerprint"] != self.fingerprint():
                error = (f"{out} holds a different sweep; pass --overwrite or choose another "
                         "output folder (-o DIR)")
            elif overwrite:
                for f in [*out.glob("rows*.csv"), *out.glob("histories*.jsonl")]:
                    f.unlink()
            if error is None:
                stamp.write_text(json.dumps({"fingerprint": self.fingerprint(),
                                             "sweep": {k: v for k, v in self.sweep.items() if k != "_base_dir"}},
                                            indent=2))
        error = group.gather(error)[0]
        if error:
            raise ConfigError(error)
        done = {tuple(r[c] for c in COLUMNS[:6]) for f in out.glob("rows*.csv") for r in self._read_rows(f)}
        metric_names = list(self.sweep["metrics"])
        columns = COLUMNS + metric_columns(metric_names, self.items)
        suffix = "" if group.world == 1 else f".rank{group.rank}"
        rows_path, hist_path = out / f"rows{suffix}.csv", out / f"histories{suffix}.jsonl"
        todo = [c for i, c in enumerate(self.cases()) if c.key not in done and i % group.world == group.rank]
        new_file = not rows_path.exists()
        (out / "reconstructions").mkdir(exist_ok=True)
        with rows_path.open("a", newline="") as fr, hist_path.open("a") as fh:
            writer = csv.DictWriter(fr, fieldnames=columns)
            if new_file:
                writer.writeheader()
            for case in tqdm(todo, desc="bench", disable=not progress):
                row, history = self._solve(case, metric_names)
                writer.writerow(row)
                fr.flush()
                fh.write(json.dumps({"key": list(case.key), "history": history}) + "\n")
                fh.flush()
        group.barrier()
        if group.rank == 0:
            self._merge(columns)
            rows = self._read_rows(out / "rows.csv")
            write_reports(out, rows, self.sweep, self.items)
        group.barrier()
        return self._read_rows(out / "rows.csv")

    def _merge(self, columns: list[str]) -> None:
        out = self.output
        rows = {tuple(r[c] for c in COLUMNS[:6]): r for f in sorted(out.glob("rows*.csv")) for r in self._read_rows(f)}
        order = {c.key: i for i, c in enumerate(self.cases())}
        merged = sorted(rows.values(), key=lambda r: order.get(tuple(r[c] for c in COLUMNS[:6]), 1 << 30))
        tmp = out / "rows.csv.tmp"
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            for r in merged:
                w.writerow({c: r.get(c, "") for c in columns})
        os.replace(tmp, out / "rows.csv")
        hist = [line for f in sorted(out.glob("histories.rank*.jsonl")) for line in f.read_text().splitlines()]
        if hist:
            with (out / "histories.jsonl").open("a") as fh:
                fh.write("\n".join(hist) + "\n")
        for f in [*out.glob("rows.rank*.csv"), *out.glob("histories.rank*.jsonl")]:
            f.unlink()

    def _solve(self, case: Case, metric_names: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from safetensors.torch import save_file

        row: dict[str, Any] = dict(zip(COLUMNS[:6], case.key))
        item = self.items[case.index]
        x = item.signal[None].to(self.device, self.dtype)
        try:
            prior = self._prior(case.prior)
            op = self._operator(case.task, case.noise, tuple(item.signal.shape))
            solver = self._solver(case.solver, case.task["name"], case.noise)
            g = torch.Generator(device=self.device).manual_seed(case.seed * 100003 + case.index)
            y = ops.measure(op, x, g)
            with PeakMemory(self.device) as mem:
                result = solver.solve(y, op, prior, generator=g, reference=x)
        except Exception as exc:  # a solver that does not apply is a row, not a crash
            row.update(status=f"error: {type(exc).__name__}: {exc}"[:300], wall_time="", nfe="",
                       peak_memory_mb="")
            return row, []
        values = compute(metric_names, result.x.to(x.dtype), x, sample_rate=item.sample_rate,
                         channel_names=item.channel_names)
        row.update(status="ok", wall_time=f"{result.wall_time:.4f}", nfe=result.nfe,
                   peak_memory_mb=f"{mem.peak_mb:.2f}")
        row.update({k: f"{v[0]:.4f}" for k, v in values.items()})
        name = "__".join(_safe(k) for k in case.key)
        tensors = {"x": result.x[0].detach().float().cpu().contiguous()}
        if not y.is_complex():
            tensors["y"] = y[0].detach().float().cpu().contiguous()
        save_file(tensors, self.output / "reconstructions" / f"{name}.safetensors")
        return row, result.history


def metric_columns(names: list[str], items: list[Any]) -> list[str]:
    """The CSV columns the named metrics fill: per-stem metrics add ``name/<stem>`` columns."""
    if not items:
        return list(names)
    item = items[0]
    ref = item.signal[None].float()
    return list(compute(names, ref, ref, sample_rate=item.sample_rate,
                        channel_names=item.channel_names))


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in s)


def _accepted(factory: Any, **kwargs: Any) -> dict[str, Any]:
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in kwargs.items() if k in params}


# -- reports -------------------------------------------------------------------------------------
def _groups(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], dict[str, list[dict[str, str]]]]:
    out: dict[tuple[str, str, str], dict[str, list[dict[str, str]]]] = {}
    for r in rows:
        out.setdefault((r["task"], r["noise"], r["prior"]), {}).setdefault(r["solver"], []).append(r)
    return out


def _stat(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3g} ± {std:.2g}" if abs(mean) < 1000 else f"{mean:.4g} ± {std:.3g}"


def summary_table(rows: list[dict[str, str]], metrics: list[str], reference: str | None) -> str:
    """Markdown: one table per (task, noise, prior), one line per solver."""
    lines = []
    for (task, noise, prior), by_solver in _groups(rows).items():
        lines.append(f"\n### {task}, sigma_y = {noise}, prior {prior}\n")
        head = ["solver", "n", *metrics, "wall time (s)", "NFE", "peak memory (MB)"]
        if reference:
            head += [f"time / {reference}"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        ref_time = None
        if reference and reference in by_solver:
            ok = [float(r["wall_time"]) for r in by_solver[reference] if r["status"] == "ok"]
            ref_time = statistics.fmean(ok) if ok else None
        for solver, rs in by_solver.items():
            ok = [r for r in rs if r["status"] == "ok"]
            if not ok:
                lines.append(f"| {solver} | 0 | " + " | ".join(["-"] * (len(head) - 2))
                             + f" |\n\n> {solver}: {rs[0]['status']}")
                continue
            cells = [solver, str(len(ok))]
            # NaN (e.g. a stem with no window the MSDM protocol keeps) is left out of the mean
            cells += [_stat([v for r in ok if r.get(m) for v in [float(r[m])] if v == v])
                      for m in metrics]
            times = [float(r["wall_time"]) for r in ok]
            cells += [_stat(times), _stat([float(r["nfe"]) for r in ok]),
                      _stat([float(r["peak_memory_mb"]) for r in ok])]
            if reference:
                cells.append(f"{statistics.fmean(times) / ref_time:.3g}" if ref_time else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _panels(plt: Any, n: int, columns: int = 4) -> tuple[Any, Any]:
    """A figure of ``n`` panels, at most ``columns`` a row; unused panels are hidden."""
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def write_reports(out: Path, rows: list[dict[str, str]], sweep: dict[str, Any], items: list[Any]) -> None:
    """summary.md, quality_vs_time.png, convergence.png, grids and report.html."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = metric_columns(list(sweep["metrics"]), items)
    table = summary_table(rows, metrics, sweep.get("reference"))
    (out / "summary.md").write_text("# Benchmark summary\n\nMean ± std over items and seeds; "
                                    "times in seconds on this machine.\n" + table)
    groups = list(_groups(rows).items())
    primary = metrics[0]
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    # one colour and marker per solver, the same in every panel (tab20: up to 20 solvers)
    style = {s: dict(color=plt.get_cmap("tab20")(i % 20), marker="osD^v<>ph*"[i % 10])
             for i, s in enumerate(solvers)}
    fig, axes = _panels(plt, len(groups))
    for ax, ((task, noise, prior), by_solver) in zip(axes.flat, groups):
        for solver, rs in by_solver.items():
            ok = [r for r in rs if r["status"] == "ok"]
            if ok:
                ax.scatter(statistics.fmean(float(r["wall_time"]) for r in ok),
                           statistics.fmean(float(r[primary]) for r in ok), label=solver,
                           **style[solver])
        ax.set_xscale("log")
        ax.set_xlabel("wall time per item (s)")
        ax.set_ylabel(primary)
        ax.set_title(f"{task}, σy={noise}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "quality_vs_time.png", dpi=110)
    plt.close(fig)

    histories: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    hist_file = out / "histories.jsonl"
    if hist_file.exists():
        for line in hist_file.read_text().splitlines():
            rec = json.loads(line)
            histories[tuple(rec["key"])] = rec["history"]
    fig, axes = _panels(plt, len(groups))
    for ax, ((task, noise, prior), by_solver) in zip(axes.flat, groups):
        for solver, rs in by_solver.items():
            r = next((r for r in rs if r["status"] == "ok"), None)
            h = histories.get(tuple(r[c] for c in COLUMNS[:6])) if r else None
            if h:
                ax.semilogy([max(e["residual"], 1e-8) for e in h], label=solver, lw=1,
                            color=style[solver]["color"])
        ax.set_xlabel("logged step")
        ax.set_ylabel("||Ax - y|| / ||y|| (first item)")
        ax.set_title(f"{task}, σy={noise}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "convergence.png", dpi=110)
    plt.close(fig)

    grids = []
    if items and items[0].kind == "image":
        grids = _image_grids(out, groups, items, primary)
    html = ["<!doctype html><html><head><meta charset='utf-8'><title>pnpkit benchmark</title>",
            "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:"
            "collapse}td,th{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}</style></head><body>",
            "<h1>pnpkit benchmark</h1>", _markdown_tables_to_html(table),
            "<h2>Quality vs. time</h2><img src='quality_vs_time.png'>",
            "<h2>Convergence</h2><img src='convergence.png'>"]
    html += [f"<h2>{g.stem}</h2><img src='{g.name}'>" for g in grids]
    html.append("</body></html>")
    (out / "report.html").write_text("\n".join(html))


def _image_grids(out: Path, groups: list[Any], items: list[Any], metric: str) -> list[Path]:
    """One picture per (task, noise, prior): measurement, every solver, reference; 4 items."""
    import matplotlib.pyplot as plt
    import numpy as np
    from safetensors.torch import load_file

    def show(ax: Any, img: Any) -> None:
        a = np.clip((img.float().numpy() + 1) / 2, 0, 1)
        ax.imshow(a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1), cmap="gray",
                  vmin=0, vmax=1, interpolation="nearest")

    paths = []
    for (task, noise, prior), by_solver in groups:
        solvers = list(by_solver)
        shown = items[:4]
        fig, axes = plt.subplots(len(shown), len(solvers) + 2, squeeze=False,
                                 figsize=(1.6 * (len(solvers) + 2), 1.8 * len(shown)))
        for ax in axes.flat:
            ax.axis("off")
        for i, item in enumerate(shown):
            measurement = None
            for j, solver in enumerate(solvers, start=1):
                ax = axes[i][j]
                ax.set_title((f"{solver}\n" if i == 0 else ""), fontsize=7)
                r = next((r for r in by_solver[solver] if r["item"] == item.id and r["status"] == "ok"), None)
                if r is None:
                    continue
                f = out / "reconstructions" / ("__".join(_safe(r[c]) for c in COLUMNS[:6]) + ".safetensors")
                if not f.exists():
                    continue
                t = load_file(f)
                show(ax, t["x"])
                ax.set_title((f"{solver}\n" if i == 0 else "") + f"{metric} {float(r[metric]):.2f}", fontsize=7)
                y = t.get("y")
                if measurement is None and y is not None and y.dim() == 3 and y.shape[0] in (1, 3):
                    measurement = y
            if measurement is not None:
                show(axes[i][0], measurement)
            show(axes[i][-1], item.signal)
            if i == 0:
                axes[0][0].set_title("measurement", fontsize=7)
                axes[0][-1].set_title("reference", fontsize=7)
        fig.suptitle(f"{task}, sigma_y = {noise}, prior {prior}", fontsize=9)
        fig.tight_layout()
        path = out / f"grid_{_safe(task)}_{_safe(noise)}_{_safe(prior)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _markdown_tables_to_html(md: str) -> str:
    html, in_table = [], False
    for line in md.splitlines():
        if line.startswith("### "):
            html.append(f"<h3>{line[4:]}</h3>")
        elif line.startswith("|---") or line.startswith("|-"):
            continue
        elif line.startswith("| "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            tag = "th" if not in_table else "td"
            if not in_table:
                html.append("<table>")
                in_table = True
            html.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
            continue
        elif line.startswith("> "):
            html.append(f"<p><em>{line[2:]}</em></p>")
        if in_table and not line.startswith("| "):
            html.append("</table>")
            in_table = False
    if in_table:
        html.append("</table>")
    return "\n".join(html)


def run(path: str | Path, output: str | Path | None = None, overwrite: bool = False,
        progress: bool = True) -> list[dict[str, str]]:
    """Run the sweep in ``path``."""
    return Sweep(load_sweep(path), output).run(overwrite=overwrite, progress=progress)
