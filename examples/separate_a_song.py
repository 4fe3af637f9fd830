"""
Separate a song into its stems
==============================

A mixture WAV in, one WAV per stem out: bass, drums, guitar and piano, with the project's
4-stem music prior (``default-stems8k-edm``, 8 kHz) and MSDM's Dirac sampler. The song here is
made from the rendered chorales shipped with pnpkit-audio (held out from the prior's
training), so the true stems are there to score against; with your own song, skip the first
cell. First one window of the prior (8.192 s) from Python, then the whole song with
``pnpkit run``, which separates a longer song window by window and cross-fades the windows.

Run it as a script (``python examples/separate_a_song.py``) or cell by cell (``# %%``).
``PNPKIT_EXAMPLE_PIECES`` (how many 8.192 s excerpts make the song, 1 to 4, default 2) and
``PNPKIT_EXAMPLE_ITERATIONS`` (the sampler's noise levels, default 50: 100 network calls per
window) make it smaller and quicker; ``PNPKIT_EXAMPLE_OUT`` is where it writes (default
``runs/separate-a-song``). At the defaults it takes about 2 minutes on 2 CPU cores (400
network calls in all: 100 for the first window, 100 for each of the song's 3 windows).
"""
# ruff: noqa: E402  (gallery style: each cell imports what it introduces)

# %%
# Make a song and keep its stems
# ------------------------------
#
# The shipped excerpts are (4, 65536) stems at 8 kHz in pnpkit's [-1, 1]: bass, drums,
# guitar, piano. The song is their sum, excerpt after excerpt, written as a mono WAV; the
# stems go to a 4-channel WAV, the reference.

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import soundfile
import torch

import pnpkit

PIECES = int(os.environ.get("PNPKIT_EXAMPLE_PIECES", "2"))
ITERATIONS = int(os.environ.get("PNPKIT_EXAMPLE_ITERATIONS", "50"))
OUT = Path(os.environ.get("PNPKIT_EXAMPLE_OUT", "runs/separate-a-song")).resolve()
OUT.mkdir(parents=True, exist_ok=True)

excerpts = pnpkit.create("dataset", "chorales-excerpts", limit=PIECES)
stems = torch.cat([item.signal for item in excerpts], dim=-1)  # (4, PIECES * 65536)
rate = excerpts[0].sample_rate
names = excerpts[0].channel_names or ["bass", "drums", "guitar", "piano"]
song = stems.sum(0)
soundfile.write(OUT / "song.wav", song.numpy(), rate, subtype="FLOAT")
soundfile.write(OUT / "stems.wav", stems.T.numpy(), rate, subtype="FLOAT")
print(f"{OUT / 'song.wav'}: {song.shape[-1] / rate:.1f} s at {rate} Hz; stems: {', '.join(names)}")

# %%
# Separate one window from Python
# -------------------------------
#
# The measurement is the mixture ``y = sum_k x_k`` (the registered ``mixture`` operator) of
# one window of the prior (``prior.fixed_shape``); the solver returns the four stems stacked
# as channels. SI-SNRi is each stem's scale-invariant SNR gain over the mixture itself.

from pnpkit.data import save_signal
from pnpkit.metrics import si_snr

prior = pnpkit.create("prior", "default-stems8k-edm")
(window,) = prior.fixed_shape  # 65536 samples, 8.192 s
wav, _ = soundfile.read(OUT / "song.wav", dtype="float32")
y = torch.from_numpy(wav[:window]).view(1, 1, window)
mixture = pnpkit.create("operator", "mixture", shape=(len(names), window))
solver = pnpkit.create("solver", "msdm-dirac", iterations=ITERATIONS)
result = solver.solve(y, mixture, prior, generator=torch.Generator().manual_seed(0))
reference = stems[None, :, :window]
(OUT / "python").mkdir(exist_ok=True)
for k, name in enumerate(names):
    path = save_signal(result.x[0, k:k + 1], OUT / "python" / f"reconstruction_{name}", "audio", rate)
    gain = si_snr(result.x[:, k:k + 1], reference[:, k:k + 1]) - si_snr(y, reference[:, k:k + 1])
    print(f"{path}: SI-SNRi {float(gain):+.2f} dB")
print(f"{result.nfe} network calls, {result.wall_time:.1f} s")

# %%
# The whole song with ``pnpkit run``
# ----------------------------------
#
# ``[data] measurement`` is the song at any length (mono or stereo, any rate: it is down-mixed
# and resampled to the prior's and the stems written back at the song's rate); ``reference``
# (optional) adds the per-stem scores. Windows overlap by ``overlap`` seconds.

config = OUT / "separate.toml"
config.write_text(f"""\
output = "cli"
metrics = ["si_snri"]

[data]
measurement = "song.wav"
reference = "stems.wav"
overlap = 1.0

[operator]
name = "mixture"
sources = {len(names)}

[prior]
name = "default-stems8k-edm"

[solver]
name = "msdm-dirac"
iterations = {ITERATIONS}
""")
pnpkit_cli = Path(sys.executable).with_name("pnpkit")
command = [str(pnpkit_cli), "run", str(config), "--overwrite"] if pnpkit_cli.exists() else \
    [sys.executable, "-m", "pnpkit", "run", str(config), "--overwrite"]
subprocess.run(command, check=True)

# %%
# Where to look
# -------------
#
# One WAV per stem at the song's full length, and the scores; ``pnpkit.load_run`` reads them
# back (the exact tensors too).

run = pnpkit.load_run(OUT / "cli")
item = run.items["song"]
for name in names:
    print(item.path / f"reconstruction_{name}.wav")
print(f"mean SI-SNRi {item.metrics['si_snri']:+.2f} dB over the stems; "
      f"reconstruction {tuple(item.reconstruction.shape)}")
