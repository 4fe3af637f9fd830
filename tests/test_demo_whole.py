"""The whole-picture and whole-song demo: its inputs script writes real measurement files,
and the demo configs restore them (run here at tiny sizes and iteration counts)."""

from __future__ import annotations

import importlib.util
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from pnpkit import config as cfgmod
from pnpkit import operators as ops
from pnpkit import pipeline
from pnpkit.data import image_to_tensor
from pnpkit.plugins import get_manager

ROOT = Path(__file__).resolve().parents[1]
STEMS = ["bass", "drums", "guitar", "piano"]

pytestmark = pytest.mark.usefixtures("all_plugins", "two_threads")


def _inputs_module():
    spec = importlib.util.spec_from_file_location("make_demo_inputs",
                                                  ROOT / "examples" / "make_demo_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's inputs with 32 x 32 pictures and the shipped 8.192 s excerpt (no rendering)."""
    out = tmp_path_factory.mktemp("demo-inputs")
    assert _inputs_module().main(["--out", str(out), "--size", "32", "--shipped-song"]) == 0
    return out


def test_the_inputs_are_the_registered_operators_measurements(inputs: Path) -> None:
    record = json.loads((inputs / "inputs.json").read_text())
    shapes = {p["measurement"]: (p["signal_shape"], p["measurement_shape"]) for p in record["pictures"]}
    assert shapes == {"measurements/camera.png": ([1, 32, 32], [1, 8, 8]),
                      "measurements/astronaut.png": ([3, 32, 32], [3, 32, 32])}
    camera = np.asarray(Image.open(inputs / "measurements" / "camera.png"))
    assert camera.shape == (8, 8) and camera.dtype == np.uint8
    assert np.asarray(Image.open(inputs / "measurements" / "astronaut.png")).shape == (32, 32, 3)
    # the camera file is A x to the 8-bit PNG's rounding (1/255 on [0, 1] is 2/255 on [-1, 1])
    x = image_to_tensor(np.asarray(Image.open(inputs / "references" / "camera.png")))
    op = get_manager().get("operator", "super-resolution").build({"factor": 4}, shape=(1, 32, 32))
    y = image_to_tensor(camera)
    assert float((ops.measure(op, x[None])[0].clamp(-1, 1) - y).abs().max()) <= 2 / 255 + 1e-6
    # the song: the mixture is the sum of the 4 reference stems, at 8 kHz
    mix, rate = soundfile.read(inputs / "measurements" / "chorale.wav", always_2d=True)
    ref, ref_rate = soundfile.read(inputs / "references" / "chorale.wav", always_2d=True)
    assert rate == ref_rate == 8000 and mix.shape == (65536, 1) and ref.shape == (65536, 4)
    np.testing.assert_allclose(mix[:, 0], ref.sum(1), atol=1e-6)
    for k, stem in enumerate(STEMS):
        alone, _ = soundfile.read(inputs / "stems" / f"chorale_{stem}.wav")
        np.testing.assert_array_equal(alone, ref[:, k])
    assert "shipped excerpt" in record["song"]["piece"]


def test_the_demo_song_is_a_whole_held_out_piece() -> None:
    module = _inputs_module()
    from pnpkit_audio import render

    assert render.split_of(module.SONG, 0, 0.06, 0.06) == "test"


@pytest.mark.parametrize("config, item, overrides", [
    ("demo-camera.toml", "camera", ["solver.iterations=2", "solver.tau=3"]),
    ("demo-astronaut.toml", "astronaut", ["solver.iterations=2"]),
])
def test_a_whole_picture_demo_restores_its_measurement_file(
        tmp_path: Path, inputs: Path, config: str, item: str, overrides: list[str]) -> None:
    files = [f"data.measurement={json.dumps(str(inputs / 'measurements' / (item + '.png')))}",
             f"data.reference={json.dumps(str(inputs / 'references' / (item + '.png')))}"]
    cfg = cfgmod.load(ROOT / "configs" / config, files + overrides)
    runs = tmp_path / "runs"
    summary = pipeline.run(cfg, output=runs / f"demo-{item}", progress=False)
    assert summary["items"] == 1
    folder = runs / f"demo-{item}" / "items" / item
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "done"
    assert np.isfinite(record["metrics"]["psnr"])
    # restored at the reference's full size, not at the measurement's
    restored = np.asarray(Image.open(folder / "reconstruction.png"))
    assert restored.shape[:2] == (32, 32)
    assert (folder / "figure.png").stat().st_size > 5_000
    # the README's opening picture is drawn from these outputs
    spec = importlib.util.spec_from_file_location("make_readme_figure",
                                                  ROOT / "docs" / "make_readme_figure.py")
    figure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figure)
    titled, caption = figure.panels(item, runs)
    assert [t.split(":")[0] for t, _ in titled][::2] == ["measurement", "reference"]
    assert titled[0][1].shape[:2] == ((8, 8) if item == "camera" else (32, 32))
    assert f"{record['metrics']['psnr']:.2f} dB" in titled[1][0]
    assert caption.startswith(f"{item}, held out (test split); A^+ y scores")
    assert figure.main(["--demo", item, "--runs", str(runs), "--out", str(tmp_path / "demo.png")]) == 0
    assert Image.open(tmp_path / "demo.png").size[0] > 3 * Image.open(tmp_path / "demo.png").size[1] // 2


def test_the_song_demo_writes_every_stem_at_the_songs_length(tmp_path: Path, inputs: Path) -> None:
    files = [f"data.measurement={json.dumps(str(inputs / 'measurements' / 'chorale.wav'))}",
             f"data.reference={json.dumps(str(inputs / 'references' / 'chorale.wav'))}"]
    cfg = cfgmod.load(ROOT / "configs" / "separation-song.toml", files + ["solver.iterations=2"])
    summary = pipeline.run(cfg, output=tmp_path / "out", progress=False)
    assert summary["items"] == 1
    folder = tmp_path / "out" / "items" / "chorale"
    for stem in STEMS:
        wav, rate = soundfile.read(folder / f"reconstruction_{stem}.wav", always_2d=True)
        assert rate == 8000 and wav.shape == (65536, 1)
    record = json.loads((folder / "metrics.json").read_text())
    assert {f"si_snri_msdm/{s}" for s in STEMS} <= set(record["metrics"])


def test_the_demo_configs_name_the_files_the_inputs_script_writes() -> None:
    module = _inputs_module()
    default_out = Path(module.__file__).resolve().parents[1] / "runs" / "demo-inputs"
    for config, name in [("demo-camera.toml", "camera.png"), ("demo-astronaut.toml", "astronaut.png"),
                         ("separation-song.toml", "chorale.wav")]:
        data = tomllib.loads((ROOT / "configs" / config).read_text())["data"]
        assert (ROOT / "configs" / data["measurement"]).resolve() == default_out / "measurements" / name
        assert (ROOT / "configs" / data["reference"]).resolve() == default_out / "references" / name
    # the operators the configs restore with are the ones the measurements were made with
    pictures = {p[0]: p for p in module.PICTURES}
    for config, name in [("demo-camera.toml", "camera"), ("demo-astronaut.toml", "astronaut")]:
        operator = tomllib.loads((ROOT / "configs" / config).read_text())["operator"]
        _, _, op_name, settings, sigma_y = pictures[name]
        assert operator == {"name": op_name, **settings, "sigma_y": sigma_y}


def test_the_song_demo_separates_the_whole_rendered_piece_window_by_window(tmp_path: Path) -> None:
    """The demo's own input: the whole 18.7 s piece (3 windows of the prior's 8.192 s)."""
    from pnpkit_audio import render

    try:
        render.check_renderer()
    except render.RendererMissing as exc:
        pytest.skip(str(exc))
    inputs = tmp_path / "inputs"
    assert _inputs_module().main(["--out", str(inputs), "--size", "32"]) == 0
    mix, rate = soundfile.read(inputs / "measurements" / "chorale.wav", always_2d=True)
    assert rate == 8000 and mix.shape[0] == 149429  # bach/bwv6.6, whole: 18.68 s
    files = [f"data.measurement={json.dumps(str(inputs / 'measurements' / 'chorale.wav'))}",
             f"data.reference={json.dumps(str(inputs / 'references' / 'chorale.wav'))}"]
    cfg = cfgmod.load(ROOT / "configs" / "separation-song.toml", files + ["solver.iterations=2"])
    pipeline.run(cfg, output=tmp_path / "out", progress=False)
    folder = tmp_path / "out" / "items" / "chorale"
    record = json.loads((folder / "metrics.json").read_text())
    assert record["windows"] == 3 and record["nfe"] == 3 * (2 * 2 + 1)  # windows x (levels x N + 1)
    for stem in STEMS:
        wav, stem_rate = soundfile.read(folder / f"reconstruction_{stem}.wav", always_2d=True)
        assert stem_rate == 8000 and wav.shape == (149429, 1)
