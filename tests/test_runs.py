"""The run layer's output folder (``pnpkit.runs``), shared by ``pnpkit run`` and ``pnpkit bench``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pnpkit.config import ConfigError
from pnpkit.runs import OutputFolder, fingerprint, write_json


def test_output_resolves_against_the_config_folder_unless_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = tmp_path / "configs"
    assert OutputFolder.resolve(None, "runs/a", base).path == base / "runs" / "a"
    assert OutputFolder.resolve("elsewhere", "runs/a", base).path == Path("elsewhere")
    assert OutputFolder.resolve(None, "/abs/b", base).path == Path("/abs/b")
    assert OutputFolder.resolve(None, "o", base, stamp="sweep.json").stamp == base / "o" / "sweep.json"


def test_fingerprint_ignores_key_order_and_the_excluded_keys():
    a = fingerprint({"solver": {"name": "hqs", "iterations": 3}, "seed": 0, "output": "x"})
    b = fingerprint({"seed": 0, "solver": {"iterations": 3, "name": "hqs"}, "output": "y"})
    assert a == b and len(a) == 16 and int(a, 16) >= 0
    assert fingerprint({"seed": 1, "output": "x"}) != fingerprint({"seed": 0, "output": "x"})
    assert fingerprint({"seed": 0, "_base_dir": "p"}, exclude=("_base_dir",)) == fingerprint({"seed": 0})


def test_claim_starts_resumes_refuses_and_overwrites(tmp_path):
    folder = OutputFolder(tmp_path / "run")
    assert folder.claim("aaaa", overwrite=False) is None and folder.path.is_dir()
    write_json(folder.stamp, {"fingerprint": "aaaa", "items": {"img0": {"status": "done"}}})
    assert folder.claim("aaaa", overwrite=False)["items"] == {"img0": {"status": "done"}}
    with pytest.raises(ConfigError, match=r"run holds a run of a different configuration; pass "
                                          r"--overwrite to replace it, or choose another output "
                                          r"folder \(-o DIR\)"):
        folder.claim("bbbb", overwrite=False)
    assert folder.claim("bbbb", overwrite=True) is None


def test_write_json_is_atomic_and_remove_takes_globs(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]} and not list(tmp_path.glob("*.tmp"))
    for name in ("rows.rank0.csv", "rows.rank1.csv", "rows.csv"):
        (tmp_path / name).write_text("x")
    OutputFolder(tmp_path).remove("rows.rank*.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "rows.csv"]


def test_claim_locks_the_folder_until_release_and_a_refusal_frees_it(tmp_path):
    from pnpkit.runs import FolderBusy

    first, second = OutputFolder(tmp_path / "run"), OutputFolder(tmp_path / "run")
    assert first.claim("aaaa", overwrite=False) is None and first.lock.held
    with pytest.raises(FolderBusy, match=r"run is in use by another run \(pid \d+ on .* since "):
        second.claim("aaaa", overwrite=False)
    first.release()
    assert not (tmp_path / "run" / ".pnpkit.lock").read_text(), "a released lock names no holder"
    write_json(second.stamp, {"fingerprint": "aaaa", "items": {"x": {}}})
    with pytest.raises(ConfigError, match="different configuration"):
        second.claim("bbbb", overwrite=False)
    assert not second.lock.held, "a refused claim leaves the folder free"
    first.claim("aaaa", overwrite=False)
    first.release()


def test_a_stamp_with_nothing_finished_is_replaced_without_overwrite(tmp_path):
    folder = OutputFolder(tmp_path / "run")
    folder.create()
    write_json(folder.stamp, {"fingerprint": "aaaa", "items": {}})
    finished = lambda stamp: bool(stamp.get("items"))  # noqa: E731
    assert folder.claim("bbbb", overwrite=False, finished=finished) is None
    folder.release()
    write_json(folder.stamp, {"fingerprint": "aaaa", "items": {"x": {"status": "done"}}})
    with pytest.raises(ConfigError, match="different configuration"):
        folder.claim("bbbb", overwrite=False, finished=finished)


def test_resume_checks_the_recorded_environment(tmp_path):
    from pnpkit.runs import environment

    env = environment("cpu")
    folder = OutputFolder(tmp_path / "run")
    folder.create()
    write_json(folder.stamp, {"fingerprint": "aaaa", "environment": {**env, "torch": "1.0"},
                              "items": {"x": {}}})
    differs = re.escape(f"another environment (torch 1.0 here, {env['torch']} now)")
    with pytest.raises(ConfigError, match=differs):
        folder.claim("aaaa", overwrite=False, environment=env)
    write_json(folder.stamp, {"fingerprint": "aaaa", "environment": env, "items": {"x": {}}})
    assert folder.claim("aaaa", overwrite=False, environment=env)["items"] == {"x": {}}
    folder.release()
    write_json(folder.stamp, {"fingerprint": "aaaa", "items": {"x": {}}})  # before environments
    assert folder.claim("aaaa", overwrite=False, environment=env) is not None


def test_check_device_names_what_this_machine_has():
    import torch

    from pnpkit.runs import available_devices, check_device

    assert check_device("cpu") == torch.device("cpu") and available_devices()[0] == "cpu"
    for bad in ("gpu0", 3, "cuda:x"):
        with pytest.raises(ConfigError, match="is not a device name; this machine has: cpu"):
            check_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda': this machine has no such device; it has: cpu"):
            check_device("cuda")
