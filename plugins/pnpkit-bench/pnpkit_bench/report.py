"""A sweep's reports: ``summary.md``, the quality-vs-time and convergence plots, one image
grid per task and noise level, and a static ``report.html``."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from .figures import show_image
from .sweep import metric_columns, reconstruction_name, row_key, safe_name

__all__ = ["summary_table", "write_reports"]


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
            ref_times = [float(r["wall_time"]) for r in by_solver[reference] if r["status"] == "ok"]
            ref_time = statistics.fmean(ref_times) if ref_times else None
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
    """Write ``summary.md``, ``quality_vs_time.png``, ``convergence.png``, the image grids and
    ``report.html`` into ``out`` from a sweep's rows (and ``histories.jsonl``, reconstructions).

    :param pathlib.Path out: the sweep's output folder.
    :param rows: the rows of ``rows.csv``.
    :param dict sweep: the sweep (its ``metrics`` and ``reference``).
    :param items: the sweep's items (the grids' references; the metric columns).
    """
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
    for ax, ((task, noise, _prior), by_solver) in zip(axes.flat, groups, strict=False):
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
    for ax, ((task, noise, _prior), by_solver) in zip(axes.flat, groups, strict=False):
        for solver, rs in by_solver.items():
            r = next((r for r in rs if r["status"] == "ok"), None)
            h = histories.get(row_key(r)) if r else None
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
    from safetensors.torch import load_file

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
                f = out / "reconstructions" / f"{reconstruction_name(row_key(r))}.safetensors"
                if not f.exists():
                    continue
                t = load_file(f)
                show_image(ax, t["x"])
                ax.set_title((f"{solver}\n" if i == 0 else "") + f"{metric} {float(r[metric]):.2f}",
                             fontsize=7)
                y = t.get("y")
                if measurement is None and y is not None and y.dim() == 3 and y.shape[0] in (1, 3):
                    measurement = y
            if measurement is not None:
                show_image(axes[i][0], measurement)
            show_image(axes[i][-1], item.signal)
            if i == 0:
                axes[0][0].set_title("measurement", fontsize=7)
                axes[0][-1].set_title("reference", fontsize=7)
        fig.suptitle(f"{task}, sigma_y = {noise}, prior {prior}", fontsize=9)
        fig.tight_layout()
        path = out / f"grid_{safe_name(task)}_{safe_name(noise)}_{safe_name(prior)}.png"
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
