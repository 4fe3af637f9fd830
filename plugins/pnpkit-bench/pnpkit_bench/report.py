"""A sweep's reports: ``summary.md``, the quality-vs-time and convergence plots, the image grids
and a static ``report.html``, all built from the rows of ``rows.csv``.

The tables are one data structure (:func:`tables`) rendered twice, to Markdown and to HTML, by
the Jinja2 templates in ``pnpkit_bench/templates/``: every table has exactly one line per
solver, whatever happened to it (a solver that errored, diverged or does not apply has its
status in the line and its reasons below the table). A solver that does not apply to a task
(status ``does not apply``, see :mod:`pnpkit_bench.sweep`) is shown as such, greyed, and
counted apart from the rows that failed. The plots are
:class:`matplotlib.figure.Figure` objects saved to their files: the caller's matplotlib
backend is left as it was.

Regenerate the reports of a finished sweep folder without solving anything::

    python -m pnpkit_bench.report benchmarks/results/images
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .figures import metric_label, show_image
from .sweep import COLUMNS, metric_columns, read_rows, reconstruction_name, row_key, safe_name

__all__ = ["Line", "Table", "main", "regenerate", "status_counts", "summary_table", "tables",
           "write_reports"]

#: Solvers per grid picture: more are split over several pictures, so no panel is squeezed.
GRID_SOLVERS = 7
#: Items (rows) per grid picture.
GRID_ITEMS = 4
#: Colours and markers of the solvers, the same in every plot of a sweep: ten distinct hues
#: and seven markers, cycled together (7 and 10 are coprime: 70 solvers before a pair repeats).
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


@dataclass
class Line:
    """One solver's line of a table: its cells (solver, status, n, ...) and its CSS class."""

    solver: str
    status: str
    cells: list[str]
    css: str = ""


@dataclass
class Table:
    """One (task, noise, prior) table: the header, one :class:`Line` per solver, the notes."""

    task: str
    noise: str
    prior: str
    head: list[str]
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: How many items and seeds the table's means are over, e.g. ``"16 items x 1 seed"``.
    sample: str = ""

    @property
    def title(self) -> str:
        return f"{self.task}, σ_y = {self.noise}, prior {self.prior}"

    @property
    def anchor(self) -> str:
        return "table-" + safe_name(f"{self.task}_{self.noise}_{self.prior}")


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


def paired_difference(rows: list[dict[str, str]], ref_rows: list[dict[str, str]], column: str
                      ) -> tuple[float, float, int] | None:
    """The paired difference of ``column`` to the reference over the (seed, item) pairs both
    solved: (mean of the per-item differences, its standard error sd/sqrt(n), n); None when no
    pair has both values. With one pair the standard error is NaN.

    >>> a = [{"seed": "0", "item": i, "status": "ok", "psnr": v} for i, v in (("a", "21"), ("b", "23"))]
    >>> r = [{"seed": "0", "item": i, "status": "ok", "psnr": v} for i, v in (("a", "20"), ("b", "20"))]
    >>> paired_difference(a, r, "psnr")
    (2.0, 1.0, 2)
    """
    ref = {(r["seed"], r["item"]): v for r in ref_rows if r["status"] == "ok"
           for v in _values([r], column)}
    diffs = [v - ref[(r["seed"], r["item"])] for r in rows if r["status"] == "ok"
             and (r["seed"], r["item"]) in ref for v in _values([r], column)]
    if not diffs:
        return None
    n = len(diffs)
    se = statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.nan
    return statistics.fmean(diffs), se, n


def _paired_text(d: tuple[float, float, int] | None) -> str:
    if d is None:
        return "-"
    mean, se, n = d
    return f"{mean:+.3g} ± {se:.2g} ({n})" if not math.isnan(se) else f"{mean:+.3g} (1)"


def _values(rows: list[dict[str, str]], column: str) -> list[float]:
    """The column's numbers in ``rows``; empty cells and NaN (a stem with no window the MSDM
    protocol keeps) are left out of the mean."""
    out = []
    for r in rows:
        cell = r.get(column) or ""
        try:
            v = float(cell)
        except ValueError:
            continue
        if not math.isnan(v):
            out.append(v)
    return out


def status_kind(status: str) -> str:
    """A row's status without its reason: ``"error: TypeError: ..."`` -> ``"error"``."""
    return status.split(":", 1)[0].strip() or "unknown"


def status_counts(rows: list[dict[str, str]]) -> dict[str, int]:
    """How many rows were solved, diverged, do not apply and failed (every other status).

    >>> status_counts([{"status": "ok"}, {"status": "does not apply: DDRM needs ..."},
    ...                {"status": "error: ValueError: boom"}, {"status": "diverged: at iteration 3"}])
    {'solved': 1, 'diverged': 1, 'do not apply': 1, 'failed': 1}
    """
    kinds = Counter(status_kind(r["status"]) for r in rows)
    named = {"solved": kinds.pop("ok", 0), "diverged": kinds.pop("diverged", 0),
             "do not apply": kinds.pop("does not apply", 0)}
    return {**named, "failed": sum(kinds.values())}


def _column_head(metric: str) -> str:
    """A table's metric header: the column name with its unit, e.g. ``psnr (dB)``."""
    label = metric_label(metric)
    return f"{metric} (dB)" if "(dB)" in label else metric


def tables(rows: list[dict[str, str]], metrics: list[str], reference: str | None) -> list[Table]:
    """One :class:`Table` per (task, noise, prior), one :class:`Line` per solver, in row order.

    :param rows: the rows of ``rows.csv``.
    :param metrics: the metric columns.
    :param reference: the solver label the time ratios are against, or None.
    """
    out = []
    for (task, noise, prior), by_solver in _groups(rows).items():
        head = ["solver", "status", "n", *(_column_head(m) for m in metrics), "wall time (s)", "NFE",
                "peak memory (MB)"]
        if reference:
            head.append(f"time / {reference}")
            head += [f"Δ {_column_head(m)} vs {reference}" for m in metrics]
        table = Table(task, noise, prior, head)
        all_rows = [r for rs in by_solver.values() for r in rs]
        n_items = len({r["item"] for r in all_rows})
        n_seeds = len({r["seed"] for r in all_rows})
        table.sample = (f"{n_items} item{'s' if n_items != 1 else ''} x {n_seeds} "
                        f"seed{'s' if n_seeds != 1 else ''}")
        ref_times = _values([r for r in by_solver.get(reference or "", []) if r["status"] == "ok"],
                            "wall_time")
        ref_time = statistics.fmean(ref_times) if ref_times else None
        for solver, rs in by_solver.items():
            ok = [r for r in rs if r["status"] == "ok"]
            kinds = Counter(status_kind(r["status"]) for r in rs)
            if len(kinds) == 1:
                status = next(iter(kinds))
            else:
                status = ", ".join(f"{n} {k}" for k, n in kinds.items())
            cells = [solver, status, str(len(ok))]
            cells += [_stat(_values(ok, m)) for m in metrics]
            times = _values(ok, "wall_time")
            cells += [_stat(times), _stat(_values(ok, "nfe")), _stat(_values(ok, "peak_memory_mb"))]
            if reference:
                cells.append(f"{statistics.fmean(times) / ref_time:.3g}" if ref_time and times else "-")
                ref_rows = by_solver.get(reference, [])
                cells += ["-" if solver == reference else _paired_text(paired_difference(rs, ref_rows, m))
                          for m in metrics]
            if len(ok) == len(rs):
                css = ""
            elif set(kinds) == {"does not apply"}:
                css = "na"  # not a failure: the method does not take this problem
            else:
                css = "failed" if not ok else "partial"
            table.lines.append(Line(solver, status, cells, css))
            reasons = Counter(r["status"] for r in rs if r["status"] != "ok")
            for reason, n in reasons.items():
                times_text = f" ({n} of {len(rs)} rows)" if n != 1 or len(rs) > 1 else ""
                table.notes.append(f"{solver}: {reason}{times_text}")
        out.append(table)
    return out


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("pnpkit_bench", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "html.j2"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    # Markdown: a cell never breaks its table (pipes escaped, one line); a note stays one line
    env.filters["md_cell"] = lambda s: " ".join(str(s).split()).replace("|", "\\|")
    env.filters["md_text"] = lambda s: " ".join(str(s).split())
    return env


def summary_table(rows: list[dict[str, str]], metrics: list[str], reference: str | None) -> str:
    """``summary.md``: one Markdown table per (task, noise, prior), one line per solver, the
    reasons of the solvers that did not solve every row in a list under their table."""
    return str(_environment().get_template("summary.md.j2").render(
        tables=tables(rows, metrics, reference), counts=_counts_text(rows)))


def _counts_text(rows: list[dict[str, str]]) -> str:
    return ", ".join(f"{n} {what}" for what, n in status_counts(rows).items())


def _style(solvers: list[str]) -> dict[str, dict[str, Any]]:
    return {s: {"color": COLOURS[i % len(COLOURS)], "marker": MARKERS[i % len(MARKERS)]}
            for i, s in enumerate(solvers)}


def _panels(n: int, columns: int, width: float = 4.0, height: float = 3.3) -> tuple[Any, list[Any]]:
    """A constrained-layout figure of ``n`` panels, at most ``columns`` a row (and room on the
    right for one shared legend); unused panels are hidden."""
    from matplotlib.figure import Figure

    cols = max(1, min(columns, n))
    nrows = -(-n // cols)
    fig = Figure(figsize=(width * cols + 2.0, height * nrows + 0.4), layout="constrained")
    axes = list(fig.subplots(nrows, cols, squeeze=False).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _group_title(task: str, noise: str, prior: str, priors: int) -> str:
    return f"{task}, σy = {noise}" + (f", prior {prior}" if priors > 1 else "")


def _shared_legend(fig: Any, style: dict[str, dict[str, Any]], shown: list[str], line: bool) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=style[s]["color"], marker=style[s]["marker"],
                      ls="-" if line else "none", lw=1.2, ms=6) for s in shown]
    fig.legend(handles, shown, loc="outside right upper", fontsize=8, title="solver",
               title_fontsize=8, frameon=False)


def quality_vs_time(path: Path, rows: list[dict[str, str]], metric: str) -> Path:
    """``metric`` (mean over items and seeds) against wall time per item, one panel per
    (task, noise, prior), one colour and marker per solver and one legend beside the panels."""
    groups = list(_groups(rows).items())
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    style = _style(solvers)
    priors = len({g[0][2] for g in groups})
    fig, axes = _panels(len(groups), 3)
    shown: set[str] = set()
    for ax, ((task, noise, prior), by_solver) in zip(axes, groups, strict=True):
        positive = False
        for solver, rs in by_solver.items():
            ok = [r for r in rs if r["status"] == "ok"]
            times, values = _values(ok, "wall_time"), _values(ok, metric)
            if times and values:
                ax.scatter(statistics.fmean(times), statistics.fmean(values), s=42,
                           edgecolors="black", linewidths=0.4, zorder=3, **style[solver])
                shown.add(solver)
                positive = positive or statistics.fmean(times) > 0
        if positive:  # a log axis needs a positive time (a panel of failed rows has none)
            ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "no finished solve", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="0.4")
        ax.grid(alpha=0.3, which="both", lw=0.5)
        ax.set_xlabel("wall time per item (s)", fontsize=8)
        ax.set_ylabel(metric_label(metric), fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.set_title(_group_title(task, noise, prior, priors), fontsize=9)
    _shared_legend(fig, style, [s for s in solvers if s in shown], line=False)
    fig.savefig(path, dpi=100)
    return path


def _histories(out: Path) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    histories: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    hist_file = out / "histories.jsonl"
    if hist_file.exists():
        for line in hist_file.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                histories[tuple(rec["key"])] = rec["history"]
    return histories


def _trace(history: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """A history's residual against the fraction of the solve done: the ``iterate`` stage (else
    the last logged one); a solver that logs only its result is one point at 1."""
    stages = list(dict.fromkeys(h["stage"] for h in history))
    if not stages:
        return [], []
    stage = "iterate" if "iterate" in stages else stages[-1]
    recs = [h for h in history if h["stage"] == stage and "residual" in h]
    if not recs:
        return [], []
    last = max(h["iteration"] for h in recs) + 1
    return [(h["iteration"] + 1) / last for h in recs], [float(h["residual"]) for h in recs]


def convergence(path: Path, rows: list[dict[str, str]], histories: dict[tuple[str, ...], list[Any]]
                ) -> Path:
    """The data residual along each solve (the first solved row of each solver), one panel per
    (task, noise, prior), on each solver's own iteration count: the x axis is the fraction of the
    solver's iterations done, so a 10-step and a 1000-step solver both span the panel."""
    groups = list(_groups(rows).items())
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    style = _style(solvers)
    priors = len({g[0][2] for g in groups})
    fig, axes = _panels(len(groups), 3)
    shown: set[str] = set()
    for ax, ((task, noise, prior), by_solver) in zip(axes, groups, strict=True):
        traces = {}
        for solver, rs in by_solver.items():
            r = next((r for r in rs if r["status"] == "ok"), None)
            xs, ys = _trace(histories.get(row_key(r), [])) if r else ([], [])
            if xs:
                traces[solver] = (xs, ys)
        # a residual of 0 (an exact projection) is drawn on the panel's floor, a third of its
        # smallest positive residual, so it stays in sight on the log axis
        positive = [y for _, ys in traces.values() for y in ys if y > 0]
        floor = min(positive) / 3 if positive else 1e-8
        for solver, (xs, ys) in traces.items():
            # every solver's last value is marked: one that logs only its result is a visible point
            ax.plot(xs, [max(y, floor) for y in ys], lw=1.2, color=style[solver]["color"],
                    marker=style[solver]["marker"], markevery=[len(xs) - 1], ms=6, mec="black",
                    mew=0.4)
            shown.add(solver)
        ax.set_yscale("log")
        ax.set_xlim(0, 1.04)
        ax.grid(alpha=0.3, which="major", lw=0.5)
        ax.set_xlabel("fraction of the solver's iterations", fontsize=8)
        ax.set_ylabel("||Ax - y|| / ||y|| (first item)", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.set_title(_group_title(task, noise, prior, priors), fontsize=9)
    _shared_legend(fig, style, [s for s in solvers if s in shown], line=True)
    fig.savefig(path, dpi=100)
    return path


@dataclass
class Grid:
    """One grid picture of the report: its file name, heading and caption."""

    file: str
    title: str
    caption: str


def _value_text(metric: str, value: float) -> str:
    """A panel's value under its solver's name: ``24.13 dB`` (the metric is in the picture's title)."""
    return f"{value:.2f} dB" if metric_label(metric).endswith("(dB)") else f"{value:.3g}"


def image_grids(out: Path, rows: list[dict[str, str]], items: list[Any], metric: str) -> list[Grid]:
    """The reconstructions of the first :data:`GRID_ITEMS` items of each (task, noise, prior):
    the measurement, each solver (with its ``metric``) and the reference (when ``items`` has it),
    at most :data:`GRID_SOLVERS` solvers a picture; a sweep of signals that are not pictures
    gets none."""
    import torch
    from matplotlib.figure import Figure
    from safetensors.torch import load_file

    from pnpkit.data import is_image_like

    for old in out.glob("grid_*.png"):  # the previous drawing's parts
        old.unlink()
    refs = {item.id: item.signal for item in items}
    grids: list[Grid] = []
    for (task, noise, prior), by_solver in _groups(rows).items():
        item_ids = list(dict.fromkeys(r["item"] for rs in by_solver.values() for r in rs))[:GRID_ITEMS]
        pictures: dict[str, dict[str, tuple[torch.Tensor, float]]] = {}
        measurements: dict[str, torch.Tensor] = {}
        for solver, rs in by_solver.items():
            for item_id in item_ids:
                r = next((r for r in rs if r["item"] == item_id and r["status"] == "ok"), None)
                f = out / "reconstructions" / f"{reconstruction_name(row_key(r))}.safetensors" if r else None
                if r is None or f is None or not f.exists():
                    continue
                t = load_file(f)
                if not is_image_like(t["x"]):
                    continue
                values = _values([r], metric)
                pictures.setdefault(solver, {})[item_id] = (t["x"], values[0] if values else math.nan)
                y = t.get("y")
                if item_id not in measurements and y is not None and is_image_like(y):
                    measurements[item_id] = y
        if not pictures:
            continue
        solvers = [s for s in by_solver if s in pictures]
        missing = [s for s in by_solver if s not in pictures]
        size = -(-len(solvers) // -(-len(solvers) // GRID_SOLVERS))  # balanced: 13 -> 7 + 6
        parts = [solvers[i:i + size] for i in range(0, len(solvers), size)]
        for k, part in enumerate(parts, start=1):
            columns: list[tuple[str, dict[str, tuple[torch.Tensor, float]]]] = []
            if measurements:
                columns.append(("measurement", {i: (m, math.nan) for i, m in measurements.items()}))
            columns += [(s, pictures[s]) for s in part]
            if any(i in refs for i in item_ids):
                columns.append(("reference", {i: (refs[i], math.nan) for i in item_ids if i in refs}))
            fig = Figure(figsize=(1.4 * len(columns), 1.95 * len(item_ids) + 0.35), layout="constrained")
            axes = fig.subplots(len(item_ids), len(columns), squeeze=False)
            for i, item_id in enumerate(item_ids):
                for j, (name, shown) in enumerate(columns):
                    ax = axes[i][j]
                    ax.axis("off")
                    if item_id not in shown:
                        ax.set_title(f"{name}\n(not solved)", fontsize=8)
                        continue
                    picture, value = shown[item_id]
                    show_image(ax, picture)
                    caption = name if math.isnan(value) else f"{name}\n{_value_text(metric, value)}"
                    ax.set_title(caption, fontsize=8)
            fig.suptitle(f"{task}, σy = {noise}, prior {prior}; {metric_label(metric)} under each "
                         f"solver; items {', '.join(item_ids)}", fontsize=9)
            name = f"grid_{safe_name(task)}_{safe_name(noise)}_{safe_name(prior)}"
            file = f"{name}.png" if len(parts) == 1 else f"{name}_{k}.png"
            fig.savefig(out / file, dpi=110)
            first = sum(len(p) for p in parts[:k - 1]) + 1
            title = f"{task}, σ_y = {noise}, prior {prior}"
            if len(parts) > 1:
                title += f": solvers {first}–{first + len(part) - 1} of {len(solvers)}"
            caption = f"Not shown (no solved row): {', '.join(missing)}." if missing and k == 1 else ""
            grids.append(Grid(file, title, caption))
    return grids


def _metrics(rows: list[dict[str, str]], sweep: dict[str, Any], items: list[Any]) -> list[str]:
    """The metric columns: those of ``rows.csv`` (its header after :data:`COLUMNS`), else the
    sweep's metrics as the items fill them."""
    if rows:
        return [c for c in rows[0] if c not in COLUMNS]
    return metric_columns(list(sweep["metrics"]), items)


def _description(sweep: dict[str, Any], rows: list[dict[str, str]]) -> str:
    data = sweep.get("data", {})
    source = ", ".join(f"{k} = {v}" for k, v in data.items())
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    counts = _counts_text(rows)
    return (f"{len(rows)} rows: {len(tasks)} task(s) ({', '.join(tasks)}) x {len(solvers)} solvers, "
            f"seeds {sweep.get('seeds', [0])}, data: {source or '-'}; device {sweep.get('device', 'cpu')}, "
            f"{sweep.get('dtype', 'float32')}. Rows: {counts}.")


def write_reports(out: Path, rows: list[dict[str, str]], sweep: dict[str, Any], items: list[Any]) -> None:
    """Write ``summary.md``, ``quality_vs_time.png``, ``convergence.png``, the image grids and
    ``report.html`` into ``out`` from a sweep's rows (and ``histories.jsonl``, reconstructions).

    :param pathlib.Path out: the sweep's output folder.
    :param rows: the rows of ``rows.csv``.
    :param dict sweep: the sweep (its ``metrics`` and ``reference``).
    :param items: the sweep's items (the grids' references); may be empty.
    """
    out = Path(out)
    metrics = _metrics(rows, sweep, items)
    reference = sweep.get("reference")
    (out / "summary.md").write_text(summary_table(rows, metrics, reference))
    primary = metrics[0] if metrics else None
    if primary is not None:
        quality_vs_time(out / "quality_vs_time.png", rows, primary)
    convergence(out / "convergence.png", rows, _histories(out))
    grids = image_grids(out, rows, items, primary) if primary is not None else []
    label = metric_label(primary) if primary else "quality"
    html = _environment().get_template("report.html.j2").render(
        name=out.name, description=_description(sweep, rows), tables=tables(rows, metrics, reference),
        grids=grids,
        quality_caption=f"{label} (mean over items and seeds) against the mean wall time per item; "
                        "one colour and marker per solver, the same in every plot.",
        convergence_caption="The data residual ||Ax - y|| / ||y|| along the first item's solve, "
                            "against the fraction of each solver's own iterations (a solver that "
                            "logs only its result is a single point at 1; a residual of 0 is "
                            "drawn at the bottom of its panel).")
    (out / "report.html").write_text(html)


def _has_pictures(out: Path) -> bool:
    """Whether a sweep folder's first reconstruction is a picture (its grids are drawn)."""
    from safetensors.torch import load_file

    from pnpkit.data import is_image_like

    first = next(iter(sorted((out / "reconstructions").glob("*.safetensors"))), None)
    return first is not None and is_image_like(load_file(first)["x"])


def regenerate(folder: str | Path, base_dir: str | Path | None = None) -> Path:
    """Rewrite a finished sweep folder's reports from its ``rows.csv``, ``histories.jsonl`` and
    reconstructions; nothing is solved.

    :param folder: the sweep's output folder (it has ``sweep.json`` and ``rows.csv``).
    :param base_dir: the folder the sweep's relative ``[data]`` paths are relative to (the
        sweep file's), for the grids' reference column; None: the output folder.
    :return: the path of ``report.html``.
    :raises FileNotFoundError: ``folder`` has no ``sweep.json`` or ``rows.csv``.
    """
    from pnpkit.data import load_items

    out = Path(folder)
    for name in ("sweep.json", "rows.csv"):
        if not (out / name).is_file():
            raise FileNotFoundError(f"{out / name} does not exist: give the output folder of a "
                                    "finished `pnpkit bench` sweep")
    sweep = json.loads((out / "sweep.json").read_text())["sweep"]
    items: list[Any] = []
    try:  # only image grids need the items (their reference column)
        if _has_pictures(out):
            items = load_items(dict(sweep["data"]), Path(base_dir) if base_dir else out)
    except Exception as exc:  # the grids lose their reference column, nothing else
        print(f"pnpkit_bench.report: the sweep's data could not be loaded ({exc}); the grids have "
              "no reference column (pass --base-dir, the sweep file's folder)", file=sys.stderr)
        items = []
    write_reports(out, read_rows(out / "rows.csv"), sweep, items)
    return out / "report.html"


def main(argv: list[str] | None = None) -> int:
    """``python -m pnpkit_bench.report FOLDER [--base-dir DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m pnpkit_bench.report",
                                     description="rewrite a finished sweep's summary.md, plots, "
                                                 "grids and report.html from its rows")
    parser.add_argument("folder", type=Path, help="the sweep's output folder")
    parser.add_argument("--base-dir", type=Path, help="the sweep file's folder (relative [data] paths)")
    args = parser.parse_args(argv)
    try:
        path = regenerate(args.folder, args.base_dir)
    except FileNotFoundError as exc:
        print(f"python -m pnpkit_bench.report: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} and summary.md, quality_vs_time.png, convergence.png beside it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
