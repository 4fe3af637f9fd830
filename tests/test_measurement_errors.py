"""Bad measured input: each is one line naming the file and the fix, exit code 2, and nothing
written (the output folder is not even created)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile
from PIL import Image

from pnpkit.cli import main
from pnpkit.plugins import PluginManager, reset_manager


def _sibling(name: str) -> ModuleType:
    """A neighbouring test module (tests/ is no package: --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_images, _audio = _sibling("test_measurement"), _sibling("test_measurement_audio")
picture, save_png, FAKE_AUDIO, song = _images.picture, _images.save_png, _audio.FAKE_AUDIO, _audio.song


@pytest.fixture
def plugins(toy_site, fake_site, monkeypatch):
    fake_site("pnpkit-fakeaudio", "pnpkit_fakeaudio", FAKE_AUDIO, entry_name="fakeaudio")
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy,fakeaudio,operators")
    reset_manager(PluginManager())
    yield
    reset_manager()


def run(tmp_path: Path, capsys, data: str, operator: str = 'name = "super-resolution"',
        prior: str = 'name = "toy-gauss"') -> str:
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'output = "out"\n\n[data]\n{data}\n\n[operator]\n{operator}\n\n'
                   f'[prior]\n{prior}\n\n[solver]\nname = "hqs"\niterations = 2\n')
    assert main(["run", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pnpkit: error: "), err
    assert not (tmp_path / "out").exists()  # nothing written, not even the folder
    return err[0]


@pytest.mark.parametrize("content", [b"", b"this is not a picture", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_an_unreadable_measurement(plugins, tmp_path, capsys, content):
    (tmp_path / "blurry.png").write_bytes(content)
    line = run(tmp_path, capsys, 'measurement = "blurry.png"')
    assert f"{tmp_path / 'blurry.png'}: cannot be read as an image" in line
    assert "give a PNG, JPEG or TIFF file" in line


def test_an_unreadable_audio_measurement(plugins, tmp_path, capsys):
    (tmp_path / "song.wav").write_bytes(b"RIFF not really")
    line = run(tmp_path, capsys, 'measurement = "song.wav"', 'name = "mixture"',
               'name = "fake-stems"')
    assert "song.wav: cannot be read as audio" in line and "give a WAV or FLAC file" in line


def test_a_reference_of_another_shape_than_the_signal(plugins, tmp_path, capsys):
    save_png(tmp_path / "low.png", picture(16, 24))
    save_png(tmp_path / "ref.png", picture(60, 96))
    line = run(tmp_path, capsys, 'measurement = "low.png"\nreference = "ref.png"')
    assert (f"{tmp_path / 'ref.png'}: the reference has shape (1, 60, 96), but the measurement "
            "low.png (1, 16, 24) gives signals of shape (1, 64, 96)") in line
    assert "give the reference of that shape, or drop reference" in line


def test_a_measurement_no_signal_can_produce(plugins, tmp_path, capsys):
    song(tmp_path / "song.wav", 0.1, 8000, channels=2)
    line = run(tmp_path, capsys, 'measurement = "song.wav"\nchannels = 2', 'name = "mixture"',
               'name = "fake-stems"')
    assert f"{tmp_path / 'song.wav'}: mixture: no signal gives a measurement of shape (2, 800)" in line
    assert "down-mix" in line


def test_a_mixture_shorter_than_one_window(plugins, tmp_path, capsys):
    song(tmp_path / "song.wav", 0.1, 8000)
    line = run(tmp_path, capsys, 'measurement = "song.wav"', 'name = "mixture"',
               'name = "fake-stems"\nwindow = 1024')
    assert (f"{tmp_path / 'song.wav'}: 800 samples (0.100 s at 8000 Hz) is shorter than the "
            "prior's window of 1024 samples (0.128 s); pad the file to at least 0.128 s or use "
            "a prior with a shorter window") in line


def test_non_finite_values_in_a_measurement(plugins, tmp_path, capsys):
    wav = np.zeros((2000, 1), np.float32)
    wav[100] = np.nan
    soundfile.write(str(tmp_path / "song.wav"), wav, 8000, subtype="FLOAT")
    line = run(tmp_path, capsys, 'measurement = "song.wav"', 'name = "mixture"',
               'name = "fake-stems"')
    assert f"{tmp_path / 'song.wav'}: holds non-finite values (NaN or infinity)" in line
    arr = np.zeros((8, 8), np.float32)
    arr[2, 3] = np.inf
    Image.fromarray(arr).save(tmp_path / "y.tif")
    line = run(tmp_path, capsys, 'measurement = "y.tif"', 'name = "denoising"')
    assert f"{tmp_path / 'y.tif'}: holds non-finite values" in line


def test_a_missing_measurement_or_a_channels_that_cannot_apply(plugins, tmp_path, capsys):
    line = run(tmp_path, capsys, 'measurement = "nothing/*.png"')
    assert "[data] measurement: nothing matches 'nothing/*.png'" in line
    save_png(tmp_path / "grey.png", picture(8, 8))
    line = run(tmp_path, capsys, 'measurement = "grey.png"\nchannels = 3')
    assert "grey.png: a grey measurement cannot give colour (channels = 3)" in line
    song(tmp_path / "song.wav", 0.3, 8000, channels=2)
    line = run(tmp_path, capsys, 'measurement = "song.wav"\nchannels = 3', 'name = "mixture"',
               'name = "fake-stems"')
    assert "song.wav: has 2 channel(s), [data] channels = 3 cannot apply" in line


def test_a_tile_larger_than_the_image(plugins, tmp_path, capsys):
    save_png(tmp_path / "low.png", picture(16, 20))
    line = run(tmp_path, capsys, 'measurement = "low.png"', prior='name = "toy-gauss"\ntile = 96')
    assert "[prior] tile = 96 is larger than the image (64 x 80)" in line


def test_a_bad_kernel_file_is_one_line_and_nothing_written(plugins, tmp_path, capsys):
    """Kernel errors are the operator factory's (pnpkit-operators); the run stops before writing."""
    save_png(tmp_path / "blurry.png", picture(16, 16))
    np.save(tmp_path / "psf.npy", np.zeros((5, 5)))
    line = run(tmp_path, capsys, 'measurement = "blurry.png"', 'name = "blur"\nkernel = "psf.npy"')
    assert "all zeros" in line and "psf.npy" in line
    # the same holds on the simulated path
    line = run(tmp_path, capsys, 'files = "blurry.png"', 'name = "blur"\nkernel = "psf.npy"')
    assert "all zeros" in line


def test_a_mask_of_another_size_than_the_measurement(plugins, tmp_path, capsys):
    save_png(tmp_path / "holes.png", picture(16, 24))
    save_png(tmp_path / "mask.png", np.full((16, 20), 255, np.uint8))
    line = run(tmp_path, capsys, 'measurement = "holes.png"', 'name = "inpainting"\nmask = "mask.png"')
    assert f"the mask {str(tmp_path / 'mask.png')!r} is 16 x 20 but the image is 16 x 24" in line
