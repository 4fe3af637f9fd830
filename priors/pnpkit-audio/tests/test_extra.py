"""music21 and pyfluidsynth are the `dataset` extra: only the dataset builder needs them."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]


def test_they_are_an_extra_not_a_requirement() -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(PACKAGE / "setup.cfg")
    requires = cfg["options"]["install_requires"].split()
    assert "music21" not in requires and "pyfluidsynth" not in requires
    assert cfg["options.extras_require"]["dataset"].split() == ["music21", "pyfluidsynth"]


@pytest.mark.parametrize("module", ["music21", "fluidsynth"])
def test_the_builder_without_them_is_one_line_naming_the_extra(tmp_path: Path, module: str) -> None:
    code = (f"import sys; sys.modules[{module!r}] = None\n"  # as if not installed
            "from pnpkit.cli import main\n"
            f"sys.exit(main(['build-audio-dataset', '--out', {str(tmp_path / 'out')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"pnpkit: error: {module} is not installed; the audio dataset builder "
                           "needs the `dataset` extra of pnpkit-audio (music21, pyfluidsynth): "
                           "pip install pnpkit-audio[dataset]\n")
    assert not (tmp_path / "out").exists()


def test_separating_needs_neither(tmp_path: Path) -> None:
    # the prior, the shipped excerpts and the plugin load without the extra
    code = ("import sys; sys.modules['music21'] = None; sys.modules['fluidsynth'] = None\n"
            "import pnpkit\n"
            "items = pnpkit.create('dataset', 'chorales-excerpts', limit=1)\n"
            "prior = pnpkit.create('prior', 'default-stems8k')\n"
            "print(len(items), tuple(items[0].signal.shape)[0], prior.fixed_shape)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "4", "(65536,)"]
