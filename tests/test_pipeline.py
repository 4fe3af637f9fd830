"""Scripted pipelines: configuration errors, outputs, bit-for-bit reproduction, resume, and the
per-item figure drawn by whichever plugin implements ``render_item``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pnpkit import config as cfgmod
from pnpkit import pipeline
from pnpkit.plugins import PluginManager, reset_manager

CONFIG = """
seed = 3
output = "{out}"
metrics = ["psnr", "ssim", "mse"]

[data]
dataset = "toy-images"
count = {count}
size = 16
{data_extra}

[operator]
name = "toy-mask"
sigma_y = 0.05

[prior]
name = "toy-gauss"
scale = 0.6

[solver]
name = "hqs"
iterations = {iterations}
sigma = 0.3
sigma_end = 0.05
"""


def write_config(tmp_path: Path, name: str = "run.toml", count: int = 2, iterations: int = 10,
                 out: str = "out", data_extra: str = "") -> Path:
    path = tmp_path / name
    path.write_text(CONFIG.format(out=out, count=count, iterations=iterations, data_extra=data_extra))
    return path


@pytest.fixture
def toy_and_bench(toy_site, monkeypatch):
    """The toy plugin and pnpkit-bench (which draws figure.png), in a fresh manager."""
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,bench")
    reset_manager(PluginManager())
    return toy_site


def test_run_writes_every_output(toy_and_bench, tmp_path):
    summary = pipeline.run(cfgmod.load(write_config(tmp_path)), progress=False)
    out = tmp_path / "out"
    assert summary["items"] == 2 and set(summary["mean"]) == {"mse", "nfe", "psnr", "ssim", "wall_time"}
    for item in ("img0", "img1"):
        folder = out / "items" / item
        for f in ("reconstruction.png", "reference.png", "measurement.png", "figure.png",
                  "metrics.json", "history.json", "tensors.safetensors"):
            assert (folder / f).is_file(), f
        rec = json.loads((folder / "metrics.json").read_text())
        assert rec["nfe"] == 10 and rec["iterations"] == 10
        tensors = load_file(folder / "tensors.safetensors")
        assert tensors["reconstruction"].shape == (1, 16, 16)
        # The prior helps: better than the masked measurement itself.
        mask_psnr = 10 * torch.log10(4 / (tensors["measurement"] - tensors["reference"]).pow(2).mean())
        assert rec["metrics"]["psnr"] > float(mask_psnr)
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["solver"] == {"name": "hqs", "iterations": 10, "init": "pinv", "tol": 0.0,
                                  "stepsize": 1.0, "sigma": 0.3, "sigma_end": 0.05}
    assert resolved["operator"] == {"name": "toy-mask", "sigma_y": 0.05, "keep": 0.5, "seed": 0}
    assert (out / "config.toml").read_text().startswith("# Fully resolved")


def test_resolved_config_reproduces_bit_for_bit(toy_site, tmp_path):
    pipeline.run(cfgmod.load(write_config(tmp_path)), progress=False)
    again = cfgmod.load(tmp_path / "out" / "config.toml")
    pipeline.run(again, output=tmp_path / "again", progress=False)
    for item in ("img0", "img1"):
        a = (tmp_path / "out" / "items" / item / "tensors.safetensors").read_bytes()
        b = (tmp_path / "again" / "items" / item / "tensors.safetensors").read_bytes()
        assert a == b


def test_seed_changes_the_noise(toy_site, tmp_path):
    pipeline.run(cfgmod.load(write_config(tmp_path)), progress=False)
    pipeline.run(cfgmod.load(write_config(tmp_path), ["seed=4"]), output=tmp_path / "s4", progress=False)
    a = load_file(tmp_path / "out" / "items" / "img0" / "tensors.safetensors")["measurement"]
    b = load_file(tmp_path / "s4" / "items" / "img0" / "tensors.safetensors")["measurement"]
    assert not torch.equal(a, b)


def test_different_config_in_same_folder_is_refused(toy_site, tmp_path):
    pipeline.run(cfgmod.load(write_config(tmp_path)), progress=False)
    changed = cfgmod.load(write_config(tmp_path), ["solver.iterations=11"])
    with pytest.raises(cfgmod.ConfigError,
                       match="holds a run of a different configuration; pass --overwrite"):
        pipeline.run(changed, progress=False)
    assert pipeline.run(changed, overwrite=True, progress=False)["mean"]["nfe"] == 11


def test_audio_items_run_through_the_same_solver(toy_and_bench, tmp_path):
    path = tmp_path / "audio.toml"
    path.write_text("""
output = "aout"
metrics = ["si_snr"]
[data]
dataset = "toy-audio"
[operator]
name = "toy-mask"
[prior]
name = "toy-gauss"
[solver]
name = "pgd"
iterations = 5
""")
    summary = pipeline.run(cfgmod.load(path), progress=False)
    folder = tmp_path / "aout" / "items" / "clip0"
    assert (folder / "reconstruction.wav").is_file() and (folder / "figure.png").is_file()
    import soundfile

    wav, rate = soundfile.read(folder / "reconstruction.wav")
    assert rate == 8000 and wav.shape == (2048, 2)
    assert summary["mean"]["si_snr"] > 0


PAINTER = '''
import json
import pnpkit


@pnpkit.hookimpl
def render_item(path, panels, history, kind, sample_rate, channel_names):
    path.with_suffix(".json").write_text(json.dumps({
        "titles": [t for t, _ in panels], "shapes": [list(s.shape) for _, s in panels],
        "history": len(history), "kind": kind, "sample_rate": sample_rate}))
    path.write_bytes(b"drawn")
    return True
'''


def test_figure_is_drawn_by_the_render_item_plugin(toy_site, fake_site, monkeypatch, tmp_path):
    fake_site("pnpkit-painter", "pnpkit_painter_plugin", PAINTER, entry_name="painter")
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,painter")
    reset_manager(PluginManager())
    pipeline.run(cfgmod.load(write_config(tmp_path, count=1, iterations=4)), progress=False)
    folder = tmp_path / "out" / "items" / "img0"
    assert (folder / "figure.png").read_bytes() == b"drawn"
    seen = json.loads((folder / "figure.json").read_text())
    titles = seen["titles"]
    assert titles[0] == "measurement" and titles[-1] == "reference" and len(titles) == 4
    assert titles[1].startswith("pseudo-inverse (psnr ") and titles[2].startswith("hqs (psnr ")
    assert seen["shapes"] == [[1, 16, 16]] * 4
    assert seen["kind"] == "image" and seen["sample_rate"] is None
    assert seen["history"] == len(json.loads((folder / "history.json").read_text())) > 0


def test_without_a_figure_plugin_the_run_writes_no_figure(toy_site, tmp_path):
    summary = pipeline.run(cfgmod.load(write_config(tmp_path, count=1, iterations=4)), progress=False)
    folder = tmp_path / "out" / "items" / "img0"
    assert summary["items"] == 1 and (folder / "reconstruction.png").is_file()
    assert (folder / "metrics.json").is_file() and not (folder / "figure.png").exists()


@pytest.mark.parametrize("text,message", [
    ('outptu = "x"', "unknown key 'outptu' in the configuration. Did you mean 'output'"),
    ("[data]\nsampel = 1", "unknown key 'sampel' in \\[data\\]. Did you mean 'sample'"),
])
def test_unknown_keys_suggest_the_closest(tmp_path, text, message):
    base = 'output = "o"\n[operator]\nname="a"\n[prior]\nname="b"\n[solver]\nname="hqs"\n'
    path = tmp_path / "c.toml"
    if text.startswith("[data]"):
        path.write_text(base + text + '\nsample = "camera"\n')
    else:
        path.write_text(text + "\n" + base + '[data]\nsample = "camera"\n')
    with pytest.raises(cfgmod.ConfigError, match=message):
        cfgmod.load(path)


def test_unknown_plugin_settings_are_errors(toy_site, tmp_path):
    path = write_config(tmp_path)
    with pytest.raises(TypeError,
                       match="unknown setting 'keeep' for operator 'toy-mask'. Did you mean 'keep'"):
        pipeline.Pipeline(cfgmod.load(path, ["operator.keeep=0.3"]))
    with pytest.raises(TypeError, match="unknown setting 'iters' for solver 'hqs'"):
        pipeline.Pipeline(cfgmod.load(path, ["solver.iters=3"]))
    with pytest.raises(cfgmod.ConfigError, match="needs exactly one of"):
        cfgmod.load(path, ['data.sample="camera"'])


def test_config_files_are_data_not_code(tmp_path):
    path = tmp_path / "evil.toml"
    path.write_text('output = "__import__(\'os\').system(\'touch pwned\')"\n')
    with pytest.raises(cfgmod.ConfigError):
        cfgmod.load(path)
    assert not (tmp_path / "pwned").exists()


def test_killed_run_resumes_and_loses_nothing(toy_site, tmp_path):
    """Kill a 4-item run after its first item, start it again: finished items are kept as they
    were, the rest are done, and everything equals an uninterrupted run."""
    cfg = write_config(tmp_path, count=4, iterations=400)
    env = dict(os.environ, PYTHONPATH=str(toy_site), PNPKIT_LOAD_PLUGINS="toy")
    cmd = [sys.executable, "-m", "pnpkit", "run", str(cfg), "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = tmp_path / "out" / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifest.exists() and len(json.loads(manifest.read_text())["items"]) >= 1:
            break
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be killed: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(manifest.read_text())["items"]
    assert 1 <= len(done) < 4, "the run must be killed part-way"
    first = tmp_path / "out" / "items" / "img0" / "tensors.safetensors"
    stamp, content = first.stat().st_mtime_ns, first.read_bytes()

    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert first.stat().st_mtime_ns == stamp and first.read_bytes() == content
    final = json.loads(manifest.read_text())["items"]
    assert sorted(final) == ["img0", "img1", "img2", "img3"]

    straight = subprocess.run(cmd + ["-o", str(tmp_path / "straight")], env=env,
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    for item in final:
        a = (tmp_path / "out" / "items" / item / "tensors.safetensors").read_bytes()
        b = (tmp_path / "straight" / "items" / item / "tensors.safetensors").read_bytes()
        assert a == b, item


def test_torchrun_two_gloo_processes_match_a_single_process(toy_site, tmp_path):
    """`torchrun --nproc-per-node 2 -m pnpkit run`: ranks share the items, rank 0 merges, and
    every item equals the single-process run's, bit for bit."""
    cfg = write_config(tmp_path, count=5, iterations=20)
    env = dict(os.environ, PYTHONPATH=str(toy_site), PNPKIT_LOAD_PLUGINS="toy")
    single = subprocess.run([sys.executable, "-m", "pnpkit", "run", str(cfg), "-q",
                             "-o", str(tmp_path / "one")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr
    torchrun = Path(sys.executable).with_name("torchrun")
    multi = subprocess.run([str(torchrun), "--nproc-per-node", "2", "--master-port", "29517", "-m", "pnpkit",
                            "run", str(cfg), "-q", "-o", str(tmp_path / "two")],
                           env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr
    assert multi.stdout.count(" item(s) -> ") == 1, multi.stdout  # rank 0 alone reports
    assert single.stdout.count(" item(s) -> ") == 1
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())["items"]
    two = json.loads((tmp_path / "two" / "manifest.json").read_text())["items"]
    assert sorted(two) == sorted(one) == [f"img{i}" for i in range(5)]
    assert not list((tmp_path / "two").glob("manifest.rank*.json")), "shards are merged away"
    for item in one:
        assert two[item]["metrics"] == one[item]["metrics"]
        a = (tmp_path / "one" / "items" / item / "tensors.safetensors").read_bytes()
        b = (tmp_path / "two" / "items" / item / "tensors.safetensors").read_bytes()
        assert a == b, item
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m1["per_item"] == m2["per_item"] and m1["mean"]["psnr"] == m2["mean"]["psnr"]
