"""The image demos `make demo` runs: each shipped config restores held-out patches with the
packaged default prior, clearly better than the measurement's pseudo-inverse."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from pnpkit import config as cfgmod
from pnpkit import pipeline

ROOT = Path(__file__).resolve().parents[1]
#: The patch demos (a registered dataset of 32 x 32 held-out patches); the whole-picture demos
#: (`[data] measurement`, the files examples/make_demo_inputs.py writes) are tested in
#: tests/test_demo_whole.py.
DEMOS = sorted(p.name for p in (ROOT / "configs").glob("demo-*.toml")
               if "dataset = " in p.read_text())


pytestmark = pytest.mark.usefixtures("all_plugins", "two_threads")


def test_the_demos_are_there():
    assert {"demo-inpainting.toml", "demo-sr.toml"} <= set(DEMOS)


@pytest.mark.parametrize("config", DEMOS)
def test_demo_beats_the_pseudo_inverse(tmp_path: Path, config: str) -> None:
    cfg = cfgmod.load(ROOT / "configs" / config, ["data.count=1"])
    summary = pipeline.run(cfg, output=tmp_path / "out", progress=False)
    assert summary["items"] == 1
    gains = []
    for item in sorted((tmp_path / "out" / "items").iterdir()):
        record = json.loads((item / "metrics.json").read_text())
        assert record["status"] == "done"
        gains.append(record["metrics"]["psnr"] - record["pseudo_inverse_metrics"]["psnr"])
        assert (item / "figure.png").stat().st_size > 10_000
    # the default prior helps: at least 2 dB over A^+ y on the first held-out patch (measured:
    # +10.7 dB box inpainting, +5.3 dB grey SR x4, +4.9 dB colour SR x4)
    assert statistics.fmean(gains) > 2.0, gains
