"""The reliability catalogue: every bad input and fault a user can run into, one test each.

Each case asserts the message (one line on stderr, naming the key or file and a fix that
works), the exit code (2 bad input, 1 diverged items or an unexpected fault, 130 Ctrl-C) and
that no finished result was lost or changed (or, for a fresh run, that nothing was written).
Runs go through ``pnpkit.cli.main`` in-process on toy problems; only what needs a real
process (Ctrl-C, ``kill -9``) starts one. The root README's "Reliability" section counts the
cases (``pytest --collect-only -q tests/test_errors_catalogue.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from pnpkit.cli import main
from pnpkit.pipeline import Pipeline
from pnpkit.plugins import PluginManager, reset_manager
from pnpkit.runs import FolderLock, write_json
from pnpkit.solvers import HQS, PGD, IterativeSolver
from pnpkit.testing import toy_problem

FAULTS = '''
"""Faulty components: a dataset with a NaN item, a prior whose factory fails, solvers that
return NaN, crash, or update their iterate in place."""
from dataclasses import dataclass

import torch

import pnpkit
from pnpkit.solvers import Result, Solver


def nan_images(count=2, size=8):
    from pnpkit.data import Item

    items = [Item(f"img{i}", torch.zeros(1, size, size)) for i in range(count)]
    items[-1].signal[0, 0, 0] = float("nan")
    return items


def broken_prior(scale=0.5):
    raise RuntimeError("cannot map the network file")


@dataclass(kw_only=True)
class NaNSolver(Solver):
    name = "nan-solver"

    def solve(self, y, operator, prior, **kw):
        x = torch.full_like(operator.A_adjoint(y), float("nan"))
        return Result(x=x, history=[], nfe=0, wall_time=0.0, iterations=1, config=self.to_dict())


@dataclass(kw_only=True)
class Crash(Solver):
    name = "crash"

    def solve(self, y, operator, prior, **kw):
        raise RuntimeError("the solver hit a bug")


@pnpkit.hookimpl
def register_datasets(register):
    register("nan-images", nan_images)


@pnpkit.hookimpl
def register_priors(register):
    register("broken", broken_prior)


@pnpkit.hookimpl
def register_solvers(register):
    register("nan-solver", NaNSolver)
    register("crash", Crash)
'''

SECTIONS = {"data": 'dataset = "toy-images"\ncount = 2\nsize = 8',
            "operator": 'name = "toy-mask"\nsigma_y = 0.05',
            "prior": 'name = "toy-gauss"',
            "solver": 'name = "hqs"\niterations = 3'}


@pytest.fixture
def faults(toy_site, fake_site, monkeypatch):
    """The toy plugin and the faulty one, in a fresh manager."""
    fake_site("pnpkit-faults", "pnpkit_faults_plugin", FAULTS, entry_name="faults")
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,faults")
    reset_manager(PluginManager())
    yield toy_site
    reset_manager()


def config(tmp_path: Path, top: str = "", name: str = "run.toml", **sections: str) -> Path:
    """A run configuration: the toy sections, any of them replaced, ``top`` keys first."""
    body = {**SECTIONS, **sections}
    path = tmp_path / name
    path.write_text(f'output = "out"\n{top}\n' + "".join(f"\n[{k}]\n{v}\n" for k, v in body.items()))
    return path


def fails(capsys, argv: list[str], code: int = 2) -> str:
    """Run ``pnpkit ARGV``: it exits ``code`` with exactly one line on stderr; return the line."""
    assert main(argv) == code
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    return err[0]


def error(capsys, argv: list[str], tmp_path: Path) -> str:
    """A fresh run refused as bad input: exit 2, one ``pnpkit: error:`` line, nothing written."""
    line = fails(capsys, argv)
    assert line.startswith("pnpkit: error: "), line
    assert not (tmp_path / "out").exists(), "nothing is written for a refused run"
    return line


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a run folder but its lock, by relative path: what must not change."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != FolderLock.NAME}


def finished_run(capsys, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A finished two-item run in tmp_path/out, and its snapshot."""
    assert main(["run", str(config(tmp_path)), "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    return out, snapshot(out)


def subprocess_env(site: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(site), PNPKIT_LOAD_PLUGINS="toy,faults",
                OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


# -- divergence and non-finite values ----------------------------------------------------------

def test_a_diverging_solve_stops_at_its_first_non_finite_iterate_and_keeps_the_last_finite():
    op, prior, x, y = toy_problem()
    result = PGD(iterations=50, stepsize=1e6).solve(y, op, prior, reference=x)
    assert result.diverged and result.diverged_at == 2 and result.iterations == 2
    assert [r["iteration"] for r in result.history] == [0, 1]
    assert bool(torch.isfinite(result.x).all()) and result.nfe == 3
    # the result is the last logged iterate: its data fit is the history's last record's
    fit = float(0.5 * (op.A(result.x) - y).pow(2).flatten(1).sum(1).mean())
    assert fit == pytest.approx(result.history[-1]["objective"])
    assert "diverged_at=2" in repr(result) and result.summary()["diverged_at"] == 2
    assert HQS(iterations=5).solve(y, op, prior).diverged_at is None


def test_a_step_that_updates_its_iterate_in_place_still_leaves_the_last_finite_one():
    class InPlace(IterativeSolver):
        name = "in-place"

        def step(self, ctx, state, k):
            state["x"].mul_(1e4)  # an optimiser's in-place update, blowing up
            return state

    op, prior, x, y = toy_problem()
    result = InPlace(iterations=10).solve(y, op, prior)
    assert result.diverged_at == 1 and len(result.history) == 1
    assert float(result.x.abs().max()) < 1e6 and bool(torch.isfinite(result.x).all())


def test_non_finite_y_or_x_init_is_refused_by_solve():
    op, prior, x, y = toy_problem()
    bad = y.clone()
    bad[0, 3] = float("nan")
    with pytest.raises(ValueError, match=r"^hqs: the measurement y holds non-finite values \(1 NaN or "
                                         r"infinity of 10\); replace them \(e.g. with 0\) before solving$"):
        HQS(iterations=2).solve(bad, op, prior)
    with pytest.raises(ValueError, match=r"^pgd: x_init holds non-finite values"):
        PGD(iterations=2).solve(y, op, prior, x_init=torch.full_like(x, float("inf")))


def test_a_diverged_run_exits_1_naming_its_items_and_never_averages_them(faults, tmp_path, capsys):
    cfg = config(tmp_path, solver='name = "pgd"\niterations = 5\nstepsize = 1e8\ninit = "zeros"')
    assert main(["run", str(cfg), "-q"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("0 item(s) (2 diverged, not averaged) -> ")
    assert captured.err.strip() == (
        "pnpkit: 2 item(s) diverged (the iterate became non-finite): img0 at iteration 0, img1 at "
        "iteration 0; their last finite iterates are saved, not averaged; lower the step size or "
        "learning rate, or raise the iterations")
    out = tmp_path / "out"
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["items"] == 0 and summary["diverged"] == {"img0": 0, "img1": 0}
    assert summary["mean"] == {"nfe": None, "wall_time": None} and summary["per_item"] == {}
    record = json.loads((out / "items" / "img0" / "metrics.json").read_text())
    assert record["status"] == "diverged" and record["diverged_at"] == 0
    # resuming does not solve them again (they are results), and says so again
    before = snapshot(out)
    assert main(["run", str(cfg), "-q"]) == 1
    assert snapshot(out)["items/img0/tensors.safetensors"] == before["items/img0/tensors.safetensors"]


def test_a_solver_returning_nan_is_a_diverged_item_without_an_estimate(faults, tmp_path, capsys):
    cfg = config(tmp_path, solver='name = "nan-solver"')
    assert main(["run", str(cfg), "-q"]) == 1
    assert "pnpkit: 2 item(s) diverged" in capsys.readouterr().err
    folder = tmp_path / "out" / "items" / "img0"
    assert json.loads((folder / "metrics.json").read_text())["status"] == "diverged"
    assert not (folder / "tensors.safetensors").exists() and not (folder / "reconstruction.png").exists()


def test_summaries_average_finished_items_only_and_count_each_metric():
    manifest = {"items": {
        "a": {"status": "done", "metrics": {"psnr": 30.0}, "nfe": 3, "wall_time": 1.0},
        "b": {"status": "diverged", "diverged_at": 4, "metrics": {"psnr": -300.0}, "nfe": 5,
              "wall_time": 1.0},
        "c": {"status": "done", "metrics": {"psnr": float("nan")}, "nfe": 3, "wall_time": 3.0}}}
    summary = Pipeline.summarise(manifest, ["a", "b", "c"])
    assert summary["items"] == 2 and summary["diverged"] == {"b": 4}
    assert summary["mean"]["psnr"] == 30.0 and summary["count"]["psnr"] == 1
    assert summary["mean"]["wall_time"] == 2.0 and summary["count"]["wall_time"] == 2
    assert sorted(summary["per_item"]) == ["a", "c"]


def test_an_image_file_with_nan_is_refused_naming_it(faults, tmp_path, capsys):
    pixels = np.zeros((8, 8), np.float32)
    pixels[2, 3] = np.nan
    Image.fromarray(pixels, mode="F").save(tmp_path / "nan.tif")
    line = error(capsys, ["run", str(config(tmp_path, data='files = "nan.tif"'))], tmp_path)
    assert line == (f"pnpkit: error: {tmp_path / 'nan.tif'}: holds non-finite values (NaN or infinity); "
                    "replace them (e.g. with 0) before restoring it")


def test_a_wav_with_nan_is_refused_naming_it(faults, tmp_path, capsys):
    wav = np.zeros((800, 1), np.float32)
    wav[10] = np.inf
    soundfile.write(tmp_path / "nan.wav", wav, 8000, subtype="FLOAT")
    line = error(capsys, ["run", str(config(tmp_path, data='files = "nan.wav"'))], tmp_path)
    assert line.startswith(f"pnpkit: error: {tmp_path / 'nan.wav'}: holds non-finite values")


def test_a_dataset_item_with_nan_is_refused_naming_it(faults, tmp_path, capsys):
    line = error(capsys, ["run", str(config(tmp_path, data='dataset = "nan-images"'))], tmp_path)
    assert line == ("pnpkit: error: dataset 'nan-images': item 'img1' holds non-finite values (NaN "
                    "or infinity); fix the dataset, or leave the item out")


# -- one output folder, one run at a time -----------------------------------------------------

def test_a_busy_output_folder_exits_2_naming_its_holder_and_stays_as_it_was(faults, tmp_path, capsys):
    out, before = finished_run(capsys, tmp_path)
    holder = FolderLock(out)
    holder.acquire()
    try:
        line = fails(capsys, ["run", str(config(tmp_path, solver='name = "pgd"')), "-q"])
    finally:
        holder.release()
    assert line.startswith(f"pnpkit: error: {out} is in use by another run (pid {os.getpid()} on ")
    assert line.endswith("); wait for it to finish, or choose another output folder (-o DIR)")
    assert snapshot(out) == before


def test_a_killed_holder_leaves_no_lock(faults, tmp_path, capsys):
    """A process holding the folder is killed with SIGKILL: the next run gets the folder."""
    out, before = finished_run(capsys, tmp_path)
    code = ("import sys, time; from pnpkit.runs import FolderLock; FolderLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True,
                            env=subprocess_env(faults))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        line = fails(capsys, ["run", str(config(tmp_path)), "-q"])
        assert f"is in use by another run (pid {proc.pid} on " in line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert main(["run", str(config(tmp_path)), "-q"]) == 0  # resumes: everything was finished
    assert snapshot(out)["items/img1/tensors.safetensors"] == before["items/img1/tensors.safetensors"]


def test_concurrent_writes_of_one_file_never_fail_or_leave_temporary_files(tmp_path):
    path, errors = tmp_path / "manifest.json", []

    def writer(n: int) -> None:
        for i in range(60):
            try:
                write_json(path, {"writer": n, "i": i, "items": list(range(50))})
            except OSError as exc:  # pragma: no cover - what shared temporary files did
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and json.loads(path.read_text())["i"] == 59
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


# -- every error one line ---------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"not a picture at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"])
def test_a_corrupt_or_empty_png_in_files(faults, tmp_path, capsys, content):
    (tmp_path / "broken.png").write_bytes(content)
    line = error(capsys, ["run", str(config(tmp_path, data='files = "broken.png"'))], tmp_path)
    assert line.startswith(f"pnpkit: error: {tmp_path / 'broken.png'}: cannot be read as an image (")
    assert line.endswith("); give a PNG, JPEG or TIFF file")


@pytest.fixture
def checkpoint(tmp_path):
    """A copy of the shipped grey 32 x 32 prior's checkpoint, to damage."""
    import shutil

    import pnpkit_priors

    src = Path(pnpkit_priors.__file__).parent / "weights" / "grey32"
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst)
    return dst


def _damage(ckpt: Path, how: str) -> Path:
    weights = ckpt / "unet" / "diffusion_pytorch_model.safetensors"
    if how == "corrupt":
        weights.write_bytes(b"garbage" * 10)
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[:100_000])
    elif how == "config":
        (ckpt / "unet" / "config.json").write_text("{ not json")
        return ckpt / "unet" / "config.json"
    elif how == "channels":
        cfg = json.loads((ckpt / "unet" / "config.json").read_text())
        cfg.update(in_channels=3, out_channels=3)
        (ckpt / "unet" / "config.json").write_text(json.dumps(cfg))
    elif how == "pickle":
        class Code:
            def __reduce__(self):
                return (print, ("this never runs",))

        weights.unlink()
        weights = weights.with_suffix(".bin")
        torch.save({"conv_in.weight": Code()}, weights)
    return weights


@pytest.mark.parametrize("how,message", [
    ("corrupt", "is corrupt or truncated (70 bytes; safetensors: Error while deserializing header: "
                "header too large); copy the weights again from where they came from"),
    ("truncated", "is corrupt or truncated (100000 bytes; safetensors: Error while deserializing "
                  "header: incomplete metadata, file not fully covered); copy the weights again"),
    ("config", "is corrupt, not JSON (Expecting property name enclosed in double quotes: line 1 "
               "column 3 (char 2)); replace it with the checkpoint's own config.json"),
    ("channels", ": the weights do not fit {ckpt}/unet/config.json (conv_in.weight is [32, 1, 3, 3] in "
                 "the file, [32, 3, 3, 3] for the config: another channel count or size); give the "
                 "config.json saved with these weights"),
    ("pickle", ": torch.load(weights_only=True) refuses it: the file holds pickled objects, not only "
               "tensors, and pnpkit never unpickles code; give the weights as "
               "diffusion_pytorch_model.safetensors"),
])
def test_a_damaged_checkpoint(toy_site, monkeypatch, tmp_path, capsys, checkpoint, how, message):
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,priors")
    reset_manager(PluginManager())
    damaged = _damage(checkpoint, how)
    cfg = config(tmp_path, prior=f'name = "diffusers"\npath = "{checkpoint}"\ncheck_size = false')
    line = error(capsys, ["run", str(cfg)], tmp_path)
    assert line.startswith(f"pnpkit: error: {damaged}")
    assert message.format(ckpt=checkpoint) in line
    assert "weights_only=False" not in line and "allow_pickle" not in line


@pytest.mark.parametrize("device,message", [
    ("gpu0", "device = 'gpu0' is not a device name; this machine has: "),
    ("cuda:99", "device = 'cuda:99': this machine has no such device; it has: "),
])
def test_a_device_this_machine_lacks_names_the_ones_it_has(faults, tmp_path, capsys, device, message):
    from pnpkit.runs import available_devices

    have = ", ".join(available_devices())
    line = error(capsys, ["run", str(config(tmp_path, top=f'device = "{device}"'))], tmp_path)
    assert line == f'pnpkit: error: {message}{have} (e.g. device = "cpu")'
    # --device overrides the configuration's: the same check
    line = error(capsys, ["run", str(config(tmp_path)), "--device", device], tmp_path)
    assert line == f'pnpkit: error: {message}{have} (e.g. device = "cpu")'


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu(faults, tmp_path, capsys):
    line = error(capsys, ["run", str(config(tmp_path, top='device = "cuda"'))], tmp_path)
    assert line == ("pnpkit: error: device = 'cuda': this machine has no such device; it has: cpu "
                    '(e.g. device = "cpu")')


def test_device_cpu_from_the_command_line_runs(faults, tmp_path, capsys):
    assert main(["run", str(config(tmp_path)), "-q", "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["device"] == "cpu"


def test_an_output_that_is_a_file(faults, tmp_path, capsys):
    (tmp_path / "out").write_text("my notes")
    line = fails(capsys, ["run", str(config(tmp_path))])
    assert line == (f"pnpkit: error: output {tmp_path / 'out'} is a file, not a folder (or lies under "
                    "one); choose another output folder (-o DIR)")
    assert (tmp_path / "out").read_text() == "my notes"


def test_an_output_that_cannot_be_created(faults, tmp_path, capsys):
    line = error(capsys, ["run", str(config(tmp_path)), "-o", "/sys/pnpkit-catalogue-out"], tmp_path)
    assert line == ("pnpkit: error: cannot create the output folder /sys/pnpkit-catalogue-out: "
                    "permission denied; choose a folder you can write to (-o DIR)")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_an_output_folder_that_is_not_writable(faults, tmp_path, capsys):
    (tmp_path / "out").mkdir(mode=0o500)
    line = fails(capsys, ["run", str(config(tmp_path))])
    assert line == (f"pnpkit: error: cannot write to the output folder {tmp_path / 'out'} (permission "
                    "denied); choose a folder you can write to (-o DIR)")


@pytest.mark.parametrize("solver,message", [
    ('name = "hqs"\nstepsize = 0', "hqs: stepsize must be > 0 (the data step's weight gamma, e.g. "
                                   "stepsize = 1.0), got 0.0"),
    ('name = "pgd"\nstepsize = -1.0', "pgd: stepsize must be > 0"),
    ('name = "hqs"\nsigma = -0.1', "hqs: sigma must be > 0 (the denoiser's noise level in the signal "
                                   "range [-1, 1], e.g. sigma = 0.05), got -0.1"),
    ('name = "admm"\nsigma_end = 0', "admm: sigma_end must be > 0"),
])
def test_solver_settings_out_of_range(faults, tmp_path, capsys, solver, message):
    line = error(capsys, ["run", str(config(tmp_path, solver=solver))], tmp_path)
    assert line.startswith(f"pnpkit: error: {message}")


def test_a_plugin_factory_that_fails(faults, tmp_path, capsys):
    line = error(capsys, ["run", str(config(tmp_path, prior='name = "broken"'))], tmp_path)
    assert line == ("pnpkit: error: prior 'broken' (plugin 'faults') failed to build: RuntimeError: "
                    "cannot map the network file; check its settings (`pnpkit show prior broken`)")


def test_a_solver_that_crashes_is_one_line_exit_1_and_leaves_a_folder_a_fixed_run_reuses(
        faults, tmp_path, capsys):
    line = fails(capsys, ["run", str(config(tmp_path, solver='name = "crash"')), "-q"], code=1)
    assert line == ("pnpkit: error: RuntimeError: the solver hit a bug (PNPKIT_DEBUG=1 shows the "
                    "traceback)")
    # The folder holds no finished item: the corrected configuration runs without --overwrite.
    assert main(["run", str(config(tmp_path)), "-q"]) == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["items"] == 2


@pytest.mark.parametrize("where,text,message", [
    ("top", 'seed = "3"', "seed must be a whole number >= 0 (e.g. seed = 0), got '3' (a string)"),
    ("top", "seed = 1.5", "seed must be a whole number >= 0 (e.g. seed = 0), got 1.5"),
    ("operator", 'name = "toy-mask"\nsigma_y = "0.05"',
     "[operator] (operator 'toy-mask') sigma_y must be a number, got '0.05' (a string); write it "
     "without quotes, e.g. sigma_y = 0.0"),
    ("data", 'dataset = "toy-images"\ncount = "2"',
     "[data] (dataset 'toy-images') count must be a whole number, got '2' (a string); write it "
     "without quotes, e.g. count = 3"),
    ("data", 'dataset = "toy-images"\nsize = "8"',
     "[data] size must be a whole number > 0 (e.g. size = 64), got '8' (a string)"),
    ("data", 'sample = "camera"\nsize = -4', "[data] size must be a whole number > 0 (e.g. size = 64), "
                                             "got -4"),
    ("data", 'sample = "camera"\nlimit = 0', "[data] limit must be a whole number > 0 (e.g. limit = 4), "
                                             "got 0"),
])
def test_a_value_of_the_wrong_type_or_range_names_its_key(faults, tmp_path, capsys, where, text, message):
    cfg = config(tmp_path, top=text) if where == "top" else config(tmp_path, **{where: text})
    line = error(capsys, ["run", str(cfg)], tmp_path)
    assert line == f"pnpkit: error: {message}"


def test_a_corrupt_manifest_is_named_and_left_alone(faults, tmp_path, capsys):
    out, _ = finished_run(capsys, tmp_path)
    (out / "manifest.json").write_text('{"fingerprint": "ab')
    before = snapshot(out)
    line = fails(capsys, ["run", str(config(tmp_path)), "-q"])
    assert line.startswith(f"pnpkit: error: {out / 'manifest.json'} is corrupt (not the JSON pnpkit "
                           "writes: ")
    assert line.endswith("); pass --overwrite to start the run afresh, or remove the file")
    assert snapshot(out) == before
    assert main(["run", str(config(tmp_path)), "-q", "--overwrite"]) == 0


def test_pnpkit_debug_keeps_the_traceback(faults, tmp_path, monkeypatch):
    from pnpkit.config import ConfigError

    monkeypatch.setenv("PNPKIT_DEBUG", "1")
    with pytest.raises(ConfigError, match="seed must be a whole number"):
        main(["run", str(config(tmp_path, top='seed = "x"'))])


def test_ctrl_c_exits_130_in_one_line_and_keeps_the_finished_items(faults, tmp_path, capsys):
    cfg = config(tmp_path, data='dataset = "toy-images"\ncount = 4\nsize = 16',
                 solver='name = "hqs"\niterations = 500')
    cmd = [sys.executable, "-m", "pnpkit", "run", str(cfg), "-q"]
    proc = subprocess.Popen(cmd, env=subprocess_env(faults), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    manifest = tmp_path / "out" / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and json.loads(manifest.read_text())["items"]:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == ("pnpkit: interrupted; the finished items are kept, and the same command "
                           "resumes the rest")
    done = json.loads(manifest.read_text())["items"]
    assert 1 <= len(done) < 4, "interrupted part-way"
    first = snapshot(tmp_path / "out")["items/img0/tensors.safetensors"]
    assert main(["run", str(cfg), "-q"]) == 0  # the lock went with the process
    assert snapshot(tmp_path / "out")["items/img0/tensors.safetensors"] == first
    assert sorted(json.loads(manifest.read_text())["items"]) == ["img0", "img1", "img2", "img3"]


# -- hints that work --------------------------------------------------------------------------

def test_the_size_hint_of_a_fixed_size_prior_works(toy_site, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,priors")
    reset_manager(PluginManager())
    data = 'sample = "camera"\nsize = 36'
    cfg = config(tmp_path, data=data, prior='name = "default-grey32"\ncheck_size = true')
    line = error(capsys, ["run", str(cfg)], tmp_path)
    assert line == ("pnpkit: error: item 'camera': 36 x 36 pictures, but prior 'default-grey32' runs "
                    "at 32 x 32 only; resize the data ([data] size = 32), or run it on tiles of its "
                    "size ([prior] tile = 32), or let it run at any size ([prior] check_size = false)")
    solver = 'name = "hqs"\niterations = 1'
    for n, fix in enumerate(({"data": 'sample = "camera"\nsize = 32'},
                             {"prior": 'name = "default-grey32"\ncheck_size = true\ntile = 32'},
                             {"prior": 'name = "default-grey32"\ncheck_size = false'})):
        run = config(tmp_path, **{"data": data, "prior": 'name = "default-grey32"\ncheck_size = true',
                                  "solver": solver, **fix})
        assert main(["run", str(run), "-q", "-o", str(tmp_path / f"fixed{n}")]) == 0, fix


def test_a_channel_count_an_image_cannot_have(faults, tmp_path, capsys):
    line = error(capsys, ["run", str(config(tmp_path, data='sample = "camera"\nsize = 8\nchannels = 2'))],
                 tmp_path)
    assert line == ("pnpkit: error: [data] channels = 2 cannot apply to an image; use channels = 1 "
                    "(grey) or 3 (colour), or drop it to keep the file's")
    assert main(["run", str(config(tmp_path, data='sample = "camera"\nsize = 8\nchannels = 1')), "-q"]) == 0


def test_audio_channels_down_mix_or_name_what_works(faults, tmp_path, capsys):
    t = np.arange(1600) / 8000
    soundfile.write(tmp_path / "stereo.wav", np.stack([np.sin(440 * t), np.sin(660 * t)], 1) * 0.5, 8000)
    line = error(capsys, ["run", str(config(tmp_path, data='files = "stereo.wav"\nchannels = 3'))],
                 tmp_path)
    assert line == (f"pnpkit: error: {tmp_path / 'stereo.wav'}: has 2 channel(s), [data] channels = 3 "
                    "cannot apply; use channels = 1 (down-mix) or 2, or drop it")
    assert main(["run", str(config(tmp_path, data='files = "stereo.wav"\nchannels = 1')), "-q"]) == 0
    assert capsys.readouterr().err.strip() == "pnpkit: stereo.wav: 2 channels down-mixed to mono"
    wav, rate = soundfile.read(tmp_path / "out" / "items" / "stereo" / "reconstruction.wav")
    assert wav.shape == (1600,) and rate == 8000


@pytest.fixture
def stems_prior(faults, fake_site, monkeypatch):
    """A fake two-stem prior that declares its rate, 8000 Hz (tests/test_measurement_audio.py's)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "measurement_audio", Path(__file__).with_name("test_measurement_audio.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fake_site("pnpkit-fakeaudio", "pnpkit_fakeaudio", module.FAKE_AUDIO, entry_name="fakeaudio")
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,faults,fakeaudio")
    reset_manager(PluginManager())


def test_a_wav_at_another_rate_than_the_prior_is_resampled_with_a_note(stems_prior, tmp_path, capsys):
    t = np.arange(4410) / 44100
    stems = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 1500 * t)], 1) * 0.4
    soundfile.write(tmp_path / "stems.wav", stems, 44100)
    cfg = config(tmp_path, data='files = "stems.wav"', prior='name = "fake-stems"',
                 operator='name = "toy-mask"')
    assert main(["run", str(cfg), "-q"]) == 0
    assert capsys.readouterr().err.strip() == "pnpkit: stems.wav: 44100 Hz resampled to 8000 Hz"
    wav, rate = soundfile.read(tmp_path / "out" / "items" / "stems" / "reference.wav")
    assert rate == 8000 and wav.shape == (800, 2)
    # a [data] sample_rate the prior does not work at is refused, naming the one it does
    line = fails(capsys, ["run", str(config(tmp_path, data='files = "stems.wav"\nsample_rate = 16000',
                                            prior='name = "fake-stems"', operator='name = "toy-mask"')),
                          "-o", str(tmp_path / "other")])
    assert line == ("pnpkit: error: [data] sample_rate = 16000, but prior 'fake-stems' works at 8000 "
                    "Hz; set sample_rate = 8000 or drop it (files are resampled to the prior's rate)")


# -- results that match their configuration ---------------------------------------------------

def test_overwrite_with_fewer_items_leaves_none_of_the_old_ones(faults, tmp_path, capsys):
    finished_run(capsys, tmp_path)
    fewer = config(tmp_path, data='dataset = "toy-images"\ncount = 1\nsize = 8')
    assert main(["run", str(fewer), "-q", "--overwrite"]) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "items").iterdir()) == ["img0"]
    assert list(json.loads((out / "manifest.json").read_text())["items"]) == ["img0"]


def test_a_run_whose_data_fails_to_load_writes_nothing(faults, tmp_path, capsys):
    line = error(capsys, ["run", str(config(tmp_path, data='files = "photos/*.png"'))], tmp_path)
    assert line.startswith("pnpkit: error: [data] files: nothing matches 'photos/*.png'")
    assert main(["run", str(config(tmp_path)), "-q"]) == 0  # the corrected config needs no --overwrite


def test_resuming_under_another_environment_is_refused_naming_the_difference(faults, tmp_path, capsys):
    out, _ = finished_run(capsys, tmp_path)
    env = json.loads((out / "config.json").read_text())["environment"]
    assert env["torch"] == torch.__version__ and env["threads"] == torch.get_num_threads()
    assert env["device"] == "cpu" and "pnpkit" in env
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["environment"]["torch"] = "1.0.0"
    write_json(out / "manifest.json", manifest)
    before = snapshot(out)
    line = fails(capsys, ["run", str(config(tmp_path)), "-q"])
    assert line == (f"pnpkit: error: {out} holds results computed under another environment (torch "
                    f"1.0.0 here, {torch.__version__} now), which would not match new ones; resume "
                    "under the same one, pass --overwrite to recompute everything, or choose "
                    "another output folder (-o DIR)")
    assert snapshot(out) == before


def test_resuming_under_another_thread_count_is_said_not_refused(faults, tmp_path, capsys):
    out, _ = finished_run(capsys, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["environment"]["threads"] = 999
    write_json(out / "manifest.json", manifest)
    before = snapshot(out)["items/img0/tensors.safetensors"]
    assert main(["run", str(config(tmp_path)), "-q"]) == 0
    err = capsys.readouterr().err
    assert (f"pnpkit: resuming {out} with {torch.get_num_threads()} threads; its finished items "
            "used 999 (results may differ in the last digits; OMP_NUM_THREADS sets the count)") in err
    assert snapshot(out)["items/img0/tensors.safetensors"] == before  # the finished item kept


# -- pnpkit bench -----------------------------------------------------------------------------

BENCH = """
output = "bench"
metrics = ["psnr"]
[data]
dataset = "toy-images"
count = 1
size = 8
[[tasks]]
name = "half"
operator = "toy-mask"
noise = [0.0, 0.05]
[[priors]]
name = "toy-gauss"
[[solvers]]
name = "hqs"
settings = {{ iterations = 2 }}
[[solvers]]
name = "pgd"
settings = {{ iterations = 2{pgd} }}
per_task = {{ "half:noisy" = {{ {noisy} }} }}
"""


@pytest.fixture
def bench(faults, monkeypatch):
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,faults,bench")
    reset_manager(PluginManager())


def test_a_typo_in_a_sweep_stops_it_before_its_first_case(bench, tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text(BENCH.format(pgd="", noisy="stepsise = 0.5"))
    line = fails(capsys, ["bench", str(path), "-q"])
    assert line == ("pnpkit: error: [[solvers]] 'pgd' (task 'half', noise 0.05): unknown setting "
                    "'stepsise' for solver 'pgd'. Did you mean 'stepsize'? Valid settings: iterations, "
                    "init, tol, stepsize, sigma, sigma_end.")
    assert not (tmp_path / "bench").exists(), "no case ran"


def test_diverged_sweep_rows_exit_1_and_are_named(bench, tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text(BENCH.format(pgd=', stepsize = 1e8, init = "zeros"', noisy="sigma = 0.1"))
    assert main(["bench", str(path), "-q"]) == 1
    captured = capsys.readouterr()
    out = (tmp_path / "bench").resolve()
    assert (f"4 row(s): 2 solved, 2 diverged, 0 do not apply, 0 failed; see {out / 'summary.md'} and "
            f"{out / 'report.html'}") in captured.out
    assert captured.err.strip() == (
        "pnpkit: 2 row(s) diverged (the iterate became non-finite): half/0/toy-gauss/pgd/0/img0 at "
        "iteration 0, half/0.05/toy-gauss/pgd/0/img0 at iteration 0; never averaged; lower the step "
        "size or learning rate, or raise the iterations")
