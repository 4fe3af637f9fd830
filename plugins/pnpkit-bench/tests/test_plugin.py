"""The plugin: the ``bench`` command through ``register_commands``, figures through ``render_item``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from pnpkit.plugins import get_manager


def test_bench_is_a_plugin_command(bench_site, tmp_path, capsys):
    from pnpkit.cli import build_parser, main

    assert "bench" in build_parser().format_help()
    assert get_manager().plugins["bench"].error is None
    assert get_manager().plugins["bench"].hooks == ["register_commands", "render_item"]
    path = tmp_path / "s.toml"
    path.write_text('output = "o"\nmetrics = ["mse"]\n[data]\ndataset = "toy-images"\ncount = 1\n'
                    '[[tasks]]\nname = "t"\noperator = "toy-mask"\n[[priors]]\nname = "toy-gauss"\n'
                    '[[solvers]]\nname = "pinv"\n[[solvers]]\nname = "pgd"\nsettings = { iterations = 2 }\n')
    assert main(["bench", str(path), "-q"]) == 0
    printed = capsys.readouterr().out
    out = (tmp_path / "o").resolve()
    assert (f"2 row(s): 2 solved, 0 diverged, 0 do not apply, 0 failed; see {out / 'summary.md'} and "
            f"{out / 'report.html'}") in printed
    assert (tmp_path / "o" / "report.html").is_file()
    assert main(["bench", str(tmp_path / "missing.toml")]) == 2
    assert "pnpkit: error: sweep file" in capsys.readouterr().err


def test_plugin_module_imports_nothing_heavy():
    heavy = ("matplotlib", "pnpkit_bench.sweep", "pnpkit_bench.figures")
    code = f"import sys, pnpkit_bench.plugin; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _history(n: int = 5) -> list[dict]:
    return [{"stage": "iterate", "iteration": k, "residual": 0.5 / (k + 1), "psnr": 20.0 + k}
            for k in range(n)]


def test_render_item_draws_image_panels_and_skips_unshowable_ones(bench_site, tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    panels = [("measurement", torch.rand(1, 16, 16, generator=g) * 2 - 1),
              ("complex", torch.randn(1, 16, 16, dtype=torch.complex64)),
              ("result", torch.rand(3, 16, 16, generator=g) * 2 - 1),
              ("reference", torch.rand(3, 16, 16, generator=g) * 2 - 1)]
    path = tmp_path / "figure.png"
    drawn = get_manager().pm.hook.render_item(path=path, panels=panels, history=_history(),
                                              kind="image", sample_rate=None, channel_names=None)
    assert drawn is True
    with Image.open(path) as im:
        # three shown panels + the convergence plot: (2.7 * 4 + 0.9) x 3.0 inches at 110 dpi
        assert im.size == (1287, 330)


def test_render_item_draws_one_row_per_stem_for_separated_audio(bench_site, tmp_path):
    from PIL import Image

    t = torch.arange(4096) / 8000
    mix = torch.sin(2 * torch.pi * 440 * t)[None] * 0.5
    stems = torch.stack([torch.sin(2 * torch.pi * f * t) * 0.3 for f in (110, 220)])
    panels = [("mixture", mix), ("estimate", stems), ("reference", stems)]
    path = tmp_path / "figure.png"
    assert get_manager().pm.hook.render_item(path=path, panels=panels, history=_history(),
                                             kind="audio", sample_rate=8000,
                                             channel_names=["bass", "drums"]) is True
    with Image.open(path) as im:
        # 2 columns (max of 2 multi-channel panels, 1 single + the plot) x (1 + 2 stems) rows,
        # 3.5 x 2.3 inches a cell and 1 inch for the colour bar, at 100 dpi
        assert im.size == (800, 690)


def test_show_image_draws_the_saved_png_pixels(tmp_path):
    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image

    from pnpkit.data import save_signal
    from pnpkit_bench.figures import show_image

    img = torch.linspace(-1.2, 1.2, 3 * 4 * 5).reshape(3, 4, 5)
    ax = Figure().subplots()
    show_image(ax, img, "t")
    shown = ax.get_images()[0].get_array()
    with Image.open(save_signal(img, tmp_path / "x", "image")) as im:
        assert np.array_equal(np.asarray(shown), np.asarray(im))
    # (C, H, W) -> (H, W, C); -1.2 clips to 0, -0.386 -> round(0.307 * 255) = 78, 1.2 clips to 255
    assert np.asarray(shown)[0, 0].tolist() == [0, 78, 182]
    assert np.asarray(shown)[-1, -1].tolist() == [73, 177, 255]


def test_separation_figure_titles_each_stem_with_its_own_scores_on_one_db_scale():
    from pnpkit_bench.figures import draw_run_figure

    t = torch.arange(4096) / 8000
    mix = torch.sin(2 * torch.pi * 440 * t)[None] * 0.5
    stems = torch.stack([torch.sin(2 * torch.pi * f * t) * 0.3 for f in (110, 220)])
    panels = [("mixture", mix), (["dirac (si_snri 3.10)", "dirac (si_snri -1.25)"], stems),
              ("reference", stems)]
    history = [{"stage": "iterate", "iteration": k, "window": w, "residual": 0.5 / (k + 1),
                "psnr": 30.0, "si_snr": 2.0 + k} for w in (0, 1) for k in range(4)]
    fig = draw_run_figure(panels, history, "audio", 8000, ["bass", "drums"])
    titles = [ax.get_title() for ax in fig.axes]
    assert "bass: dirac (si_snri 3.10)" in titles and "drums: dirac (si_snri -1.25)" in titles
    assert "bass: reference" in titles and "drums: reference" in titles
    (bar,) = [ax for ax in fig.axes if ax.get_ylabel() == "dB"]  # one colour bar, in dB
    scales = {im.get_clim() for ax in fig.axes for im in ax.get_images()}
    assert len(scales) == 1, "every spectrogram on one scale"
    (conv,) = [ax for ax in fig.axes if ax.get_title() == "convergence"]
    (twin,) = [ax for ax in fig.axes if ax.get_ylabel() == "SI-SNR (dB)"]
    assert conv.get_xlabel() == "iteration (each of 2 windows)"
    assert len(conv.get_lines()) == 2 and len(twin.get_lines()) == 2, "a line per window"
    with pytest.raises(ValueError, match="a panel with 2 channels has 3 titles; give one title "
                                         "per channel or a single string"):
        draw_run_figure([("mixture", mix), (["a", "b", "c"], stems)], history, "audio", 8000)


def test_audio_convergence_has_no_psnr_axis():
    from pnpkit_bench.figures import draw_run_figure

    fig = draw_run_figure([("mixture", torch.rand(1, 2048)), ("est", torch.rand(2, 2048))],
                          _history(), "audio", 8000)
    assert not [ax for ax in fig.axes if "PSNR" in ax.get_ylabel()]


def test_image_figure_has_psnr_in_its_legend_and_integer_iterations():
    from pnpkit_bench.figures import draw_run_figure

    history = [{"stage": s, "iteration": k, "residual": 0.5 / (k + 1), "psnr": 20.0 + k}
               for k in range(10) for s in ("data", "iterate")]
    fig = draw_run_figure([("x", torch.zeros(1, 8, 8))], history, "image")
    (conv,) = [ax for ax in fig.axes if ax.get_title() == "convergence"]
    labels = [t.get_text() for t in conv.get_legend().get_texts()]
    assert labels == ["residual (data)", "PSNR (data)", "residual (iterate)", "PSNR (iterate)"]
    fig.canvas.draw()  # the ticks are placed at drawing time
    ticks = [t for t in conv.get_xticks() if 0 <= t <= 9]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == ["||Ax - y|| / ||y||", "PSNR (dB)"]


STEMS_PLUGIN = '''
import pnpkit


def stems(count=1):
    import torch
    from pnpkit.data import Item

    t = torch.arange(2048) / 8000
    sig = torch.stack([0.4 * torch.sin(2 * 3.14159 * f * t) for f in (110, 330)])
    return [Item("song", sig, "audio", 8000, ["low", "high"])]


def stem_mse(x, ref):
    return (x - ref).pow(2).mean(-1)  # (B, K): one value per stem


@pnpkit.hookimpl
def register_datasets(register):
    register("toy-stems", stems)


@pnpkit.hookimpl
def register_metrics(register):
    register("stem_mse", stem_mse, description="MSE per stem")
'''


def test_a_separation_run_writes_reference_stems_and_titles_each_stem_with_its_own_score(
        bench_site, fake_site, monkeypatch, tmp_path):
    import soundfile

    from pnpkit import config as cfgmod
    from pnpkit import pipeline
    from pnpkit.plugins import PluginManager, reset_manager
    from pnpkit_bench import figures

    fake_site("pnpkit-stems", "pnpkit_stems_plugin", STEMS_PLUGIN, entry_name="stems")
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,bench,stems")
    reset_manager(PluginManager())
    drawn = []
    monkeypatch.setattr(figures, "run_figure", lambda *a, **k: drawn.append(a))
    path = tmp_path / "run.toml"
    path.write_text('seed = 0\noutput = "out"\nmetrics = ["stem_mse"]\n[data]\ndataset = "toy-stems"\n'
                    '[operator]\nname = "toy-mask"\n[prior]\nname = "toy-gauss"\n'
                    '[solver]\nname = "pgd"\niterations = 2\n')
    pipeline.run(cfgmod.load(path), progress=False)
    item = tmp_path / "out" / "items" / "song"
    reference, rate = soundfile.read(item / "reference.wav", always_2d=True)
    for c, stem in enumerate(["low", "high"]):
        wav, stem_rate = soundfile.read(item / f"reference_{stem}.wav", always_2d=True)
        assert stem_rate == rate == 8000 and wav.shape == (2048, 1)
        assert (wav[:, 0] == reference[:, c]).all()
    scores = json.loads((item / "metrics.json").read_text())["metrics"]
    (call,) = drawn  # run_figure(path, panels, ...): the estimate's panel has a title per stem
    titles = [title for title, _ in call[1]]
    assert titles[-1] == "reference" and scores["stem_mse/low"] != scores["stem_mse/high"]
    assert titles[-2] == [f"pgd (stem_mse {scores['stem_mse/low']:.2f})",
                          f"pgd (stem_mse {scores['stem_mse/high']:.2f})"]
    # the solver's history scores the (B, C, T) stems by SI-SNR, so the figure's convergence
    # panel has an SI-SNR axis (and no PSNR one)
    history = call[2]
    assert history and all("si_snr" in h and "psnr" not in h for h in history)
    fig = figures.draw_run_figure(call[1], history, "audio", 8000, ["low", "high"])
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "SI-SNR (dB)" in labels and not [lb for lb in labels if "PSNR" in lb]
    (conv,) = [ax for ax in fig.axes if ax.get_title() == "convergence"]
    assert [t.get_text() for t in conv.get_legend().get_texts()] == ["residual", "SI-SNR"]


def test_an_image_solve_draws_a_psnr_axis():
    from pnpkit import PGD
    from pnpkit.operators import MatrixOperator, measure
    from pnpkit.testing import TikhonovPrior
    from pnpkit_bench.figures import draw_run_figure

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 8, 8, generator=g) * 2 - 1
    op = MatrixOperator(torch.randn(40, 64, generator=g) / 16, shape=(1, 8, 8))
    res = PGD(iterations=3, stepsize=0.5, sigma=0.1).solve(measure(op, x), op, TikhonovPrior(),
                                                           reference=x)
    fig = draw_run_figure([("x", x[0]), ("result", res.x[0])], res.history, "image")
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["||Ax - y|| / ||y||", "PSNR (dB)"]
