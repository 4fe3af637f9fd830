"""The reports of a sweep, from its rows: one line per solver in every table (Markdown and HTML),
whatever the solver's status; the plots; regenerating a finished folder; the caller's backend."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pnpkit_bench import report
from pnpkit_bench.sweep import COLUMNS

SOLVERS = ["hqs", "ddrm", "pgd", "red|pipe", "half"]
DDRM = "does not apply: DDRM needs a decomposable operator; SuperResolution is not one"


def rows() -> list[dict[str, str]]:
    """Two tasks x 5 solvers x 2 items: ok, does not apply, diverged, ok (a ``|`` in its label),
    half ok and half errored (a reason with a ``|`` and a newline)."""
    out = []
    for task in ("sr4", "inpaint"):
        for solver in SOLVERS:
            for item in ("a", "b"):
                status = {"ddrm": DDRM, "pgd": "diverged: residual 3e+08 at iteration 4"}.get(solver, "ok")
                if solver == "half" and item == "b":
                    status = "error: ValueError: bad | input\nsecond line"
                ok = status == "ok"
                out.append({"task": task, "noise": "0", "prior": "p", "solver": solver, "seed": "0",
                            "item": item, "status": status,
                            "wall_time": "1.5" if ok else "", "nfe": "10" if ok else "",
                            "peak_memory_mb": "3.0" if ok else "", "psnr": "25.0" if ok else "",
                            "ssim": "0.5" if ok else ""})
    return out


def md_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table as its rows of cells (``\\|`` is a pipe inside a cell)."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|")
                     for c in line.strip().strip("|").replace("\\|", "\0").split("|")]
            cells = [c.replace("\0", "|") for c in cells]
            if current is None:
                current = []
                tables.append(current)
            current.append(cells)
        else:
            current = None
    return tables


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, list[list[str]]]] = []
        self.section = ""
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append({"thead": [], "tbody": []})
        elif tag in ("thead", "tbody"):
            self.section = tag
        elif tag == "tr":
            self.tables[-1][self.section].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][self.section][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def html_tables(text: str) -> list[dict[str, list[list[str]]]]:
    parser = _Tables()
    parser.feed(text)
    return parser.tables


@pytest.fixture
def written(tmp_path: Path) -> Path:
    report.write_reports(tmp_path, rows(), {"metrics": ["psnr", "ssim"], "reference": "hqs"}, [])
    return tmp_path


def test_every_markdown_table_has_one_line_per_solver_whatever_its_status(written):
    text = (written / "summary.md").read_text()
    tables = md_tables(text)
    assert len(tables) == 2
    for table in tables:
        head, rule, *lines = table
        assert head == ["solver", "status", "n", "psnr (dB)", "ssim", "wall time (s)", "NFE",
                        "peak memory (MB)", "time / hqs", "Δ psnr (dB) vs hqs", "Δ ssim vs hqs"]
        assert set(rule) == {"---"}
        assert [line[0] for line in lines] == SOLVERS, "exactly one line per solver, in order"
        assert all(len(line) == len(head) for line in lines), "no cell broken by a pipe"
        status = {line[0]: line[1:3] for line in lines}
        assert status == {"hqs": ["ok", "2"], "ddrm": ["does not apply", "0"], "pgd": ["diverged", "0"],
                          "red|pipe": ["ok", "2"], "half": ["1 ok, 1 error", "1"]}
        assert lines[0][3:] == ["25 ± 0", "0.5 ± 0", "1.5 ± 0", "10 ± 0", "3 ± 0", "1", "-", "-"]
    # the reasons are a list under each table, one line each, never inside it
    assert text.count(f"- ddrm: {DDRM} (2 of 2 rows)\n") == 2
    assert text.count("- pgd: diverged: residual 3e+08 at iteration 4 (2 of 2 rows)\n") == 2
    assert text.count("- half: error: ValueError: bad | input second line (1 of 2 rows)\n") == 2
    assert "> " not in text
    # 20 rows: 10 solved (hqs, red|pipe, half's a), 4 diverged, 4 do not apply, 2 failed
    assert "Rows: 10 solved, 4 diverged, 4 do not apply, 2 failed." in text


def test_every_html_table_has_one_line_per_solver_and_the_reasons_below(written):
    text = (written / "report.html").read_text()
    tables = html_tables(text)
    assert len(tables) == 2
    for table in tables:
        assert len(table["thead"]) == 1 and table["thead"][0][:3] == ["solver", "status", "n"]
        assert [r[0] for r in table["tbody"]] == SOLVERS
        assert all(len(r) == len(table["thead"][0]) for r in table["tbody"])
        assert [r[1] for r in table["tbody"]] == ["ok", "does not apply", "diverged", "ok",
                                                  "1 ok, 1 error"]
    # a solver that does not apply is greyed as such, not styled as a failure
    assert text.count('<tr class="na">') == 2 and text.count('<tr class="failed">') == 2
    assert text.count('<tr class="partial">') == 2
    assert "Rows: 10 solved, 4 diverged, 4 do not apply, 2 failed." in text
    assert text.count(f"<li>ddrm: {DDRM} (2 of 2 rows)</li>") == 2
    assert "red|pipe" in text and "<h3 id=" in text
    for name in ("quality_vs_time.png", "convergence.png", "summary.md", "rows.csv"):
        assert f'href="{name}"' in text, name


def test_labels_with_html_are_escaped(tmp_path):
    bad = [dict(r, solver="<b>x</b>") for r in rows()[:2]]
    report.write_reports(tmp_path, bad, {"metrics": ["psnr", "ssim"]}, [])
    text = (tmp_path / "report.html").read_text()
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text


def test_metric_labels_carry_their_units():
    from pnpkit_bench.figures import metric_label

    assert metric_label("psnr") == "PSNR (dB)"
    assert metric_label("si_snri_msdm/bass") == "SI-SNRi, MSDM protocol (dB), bass"
    assert metric_label("ssim") == "SSIM" and metric_label("lpips") == "lpips"
    assert report._column_head("si_snri/0") == "si_snri/0 (dB)" and report._column_head("mse") == "mse"


def test_quality_plot_has_units_and_one_legend_beside_the_panels(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    saved: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: saved.append(self))
    report.quality_vs_time(tmp_path / "q.png", rows(), "psnr")
    (fig,) = saved
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and all(ax.get_ylabel() == "PSNR (dB)" for ax in axes)
    assert all(ax.get_legend() is None for ax in axes), "no legend repeated in each panel"
    (legend,) = fig.legends
    # only the solvers with a solved row, each once, with its own colour and marker
    assert [t.get_text() for t in legend.get_texts()] == ["hqs", "red|pipe", "half"]
    styles = {(h.get_color(), h.get_marker()) for h in legend.legend_handles}
    assert len(styles) == 3


def test_convergence_plot_spans_every_solver_over_its_own_iterations(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    saved: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: saved.append(self))
    rs = [r for r in rows() if r["task"] == "sr4"]
    hist = {
        ("sr4", "0", "p", "hqs", "0", "a"): [{"stage": s, "iteration": k, "residual": 1 / (k + 1)}
                                            for k in range(1000) for s in ("data", "iterate")],
        ("sr4", "0", "p", "red|pipe", "0", "a"): [{"stage": "iterate", "iteration": k, "residual": 0.5}
                                                 for k in range(10)],
        # a peer that logs only its result, with an exact fit: one point on the panel's floor
        ("sr4", "0", "p", "half", "0", "a"): [{"stage": "final", "iteration": 0, "residual": 0.0}],
    }
    report.convergence(tmp_path / "c.png", rs, hist)
    (fig,) = saved
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    lines = {line.get_color(): line for line in ax.get_lines()}
    assert len(ax.get_lines()) == 3
    spans = sorted((min(line.get_xdata()), max(line.get_xdata())) for line in ax.get_lines())
    assert spans == [(0.001, 1.0), (0.1, 1.0), (1.0, 1.0)], "each solver spans its own iterations"
    floor = min(min(line.get_ydata()) for line in lines.values())
    assert floor == pytest.approx(1e-3 / 3), "a residual of 0 sits a third below the smallest"
    assert ax.get_yscale() == "log"
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["hqs", "red|pipe", "half"]


def test_a_finished_folder_is_regenerated_from_its_rows(tmp_path, capsys):
    import csv

    folder = tmp_path / "done"
    folder.mkdir()
    with (folder / "rows.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS + ["psnr", "ssim"])
        w.writeheader()
        w.writerows(rows())
    (folder / "sweep.json").write_text(json.dumps({"fingerprint": "x", "sweep": {
        "metrics": ["psnr", "ssim"], "reference": "hqs", "data": {"dataset": "none"}}}))
    assert report.main([str(folder)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {folder / 'report.html'}")
    for name in ("summary.md", "report.html", "quality_vs_time.png", "convergence.png"):
        assert (folder / name).is_file(), name
    assert [line[0] for line in md_tables((folder / "summary.md").read_text())[0][2:]] == SOLVERS
    assert report.main([str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err == (f"python -m pnpkit_bench.report: error: {tmp_path / 'nothing' / 'sweep.json'} does "
                   "not exist: give the output folder of a finished `pnpkit bench` sweep\n")


DRAW = """
import sys, json
import matplotlib
matplotlib.use("svg")  # the caller's choice, e.g. a notebook's inline backend
import torch
from pathlib import Path
from pnpkit_bench import report
from pnpkit_bench.figures import run_figure
out = Path(sys.argv[1])
report.write_reports(out, json.loads(sys.argv[2]), {"metrics": ["psnr", "ssim"]}, [])
hist = [{"stage": "iterate", "iteration": k, "residual": 0.1, "psnr": 20.0} for k in range(3)]
run_figure(out / "f.png", [("x", torch.zeros(1, 8, 8))], hist, "image")
run_figure(out / "a.png", [("mix", torch.rand(1, 2048)), ("est", torch.rand(2, 2048))], hist, "audio", 8000)
print("matplotlib.pyplot" in sys.modules, matplotlib.get_backend())
"""


def test_drawing_leaves_the_callers_backend_alone(tmp_path):
    out = subprocess.run([sys.executable, "-c", DRAW, str(tmp_path), json.dumps(rows())],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "svg"], "no pyplot imported, the backend unchanged"
    assert (tmp_path / "f.png").is_file() and (tmp_path / "a.png").is_file()


def test_image_grids_split_many_solvers_and_name_them(tmp_path, monkeypatch):
    import torch
    from matplotlib.figure import Figure
    from safetensors.torch import save_file

    from pnpkit.data import Item
    from pnpkit_bench.sweep import reconstruction_name, row_key

    solvers = [f"s{k}" for k in range(9)] + ["never"]
    rs = []
    (tmp_path / "reconstructions").mkdir()
    for solver in solvers:
        for item in ("a", "b"):
            ok = solver != "never"
            r = {"task": "sr4", "noise": "0", "prior": "p", "solver": solver, "seed": "0", "item": item,
                 "status": "ok" if ok else DDRM, "psnr": "21.5" if ok else ""}
            rs.append(r)
            if ok:
                save_file({"x": torch.zeros(1, 8, 8), "y": torch.zeros(1, 2, 2)},
                          tmp_path / "reconstructions" / f"{reconstruction_name(row_key(r))}.safetensors")
    (tmp_path / "grid_sr4_0_p.png").write_bytes(b"stale")
    drawn: list[Figure] = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self), real(self, *a, **k)))
    items = [Item("a", torch.zeros(1, 8, 8)), Item("b", torch.zeros(1, 8, 8))]
    grids = report.image_grids(tmp_path, rs, items, "psnr")
    assert [g.file for g in grids] == ["grid_sr4_0_p_1.png", "grid_sr4_0_p_2.png"]
    assert sorted(p.name for p in tmp_path.glob("grid_*.png")) == [g.file for g in grids], "stale one gone"
    assert [g.title for g in grids] == ["sr4, σ_y = 0, prior p: solvers 1–5 of 9",
                                        "sr4, σ_y = 0, prior p: solvers 6–9 of 9"]
    assert grids[0].caption == "Not shown (no solved row): never." and grids[1].caption == ""
    first = [ax.get_title() for ax in drawn[0].axes]
    # every row's every panel keeps its caption: measurement, 5 solvers with values, reference
    assert first[:7] == ["measurement", "s0\n21.50 dB", "s1\n21.50 dB", "s2\n21.50 dB",
                         "s3\n21.50 dB", "s4\n21.50 dB", "reference"]
    assert first[7:] == first[:7]
