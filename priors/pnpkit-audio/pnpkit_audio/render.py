"""The dataset builder: music21's Bach chorales rendered to four stems with FluidSynth.

Slakh2100 renders Lakh MIDI files with sampled instruments and keeps each instrument class
as a stem; MSDM trains on its bass, drums, guitar and piano stems. This module builds the
same thing in miniature, offline:

- the music: the four-part chorales bundled in music21's corpus (no download);
- the stems: the bass voice on a GM bass program (an octave down), the tenor on a guitar
  program, soprano and alto on a piano program, and a drum part generated to follow each
  piece's bars and meter on the GM percussion channel (a kit chosen per piece);
- the variety: per piece a tempo (70 to 130 bpm), a transposition (-5 to +6 semitones),
  the programs within each class, the drum pattern and the velocities, all drawn from a
  seeded generator, so a build is reproducible;
- the audio: FluidSynth (through pyfluidsynth) with the General MIDI soundfont of Debian's
  ``fluid-soundfont-gm`` at 16 kHz, FluidSynth's default reverb and chorus, mono, resampled by
  torchaudio to the dataset's rate, one gain per piece so the mixture peaks at 0.9;
- the split: by piece (test / validation / train), so no piece is in two splits.

``pnpkit build-audio-dataset --out DIR`` (or :func:`build_dataset`) writes one 4-channel
FLAC per piece under ``DIR/<split>/`` and ``DIR/manifest.json`` with every choice made. A
build that is stopped and started again skips the pieces already written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import STEMS

#: Where Debian's ``fluid-soundfont-gm`` puts the General MIDI soundfont.
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
RENDER_RATE = 16000
FLUSH_SECONDS = 3  # silence rendered and discarded between stems: longer than any effect tail
SPLITS = ("train", "validation", "test")

# General MIDI programs (0-based) per class, and drum kits (bank 128) on channel 10.
PROGRAMS = {
    "bass": [32, 33, 34, 35, 36, 38],      # acoustic, finger, pick, fretless, slap, synth bass
    "guitar": [24, 25, 26, 27, 28, 29],    # nylon, steel, jazz, clean, muted, overdriven
    "piano": [0, 1, 2, 3, 4, 5],           # grand, bright, electric grand, honky-tonk, EP 1, EP 2
}
DRUM_KITS = [0, 8, 16, 24, 32, 40]         # standard, room, power, electronic, jazz, brush
DRUM_CHANNEL = 9
KICK, SNARE, CLOSED_HAT, OPEN_HAT, RIDE, CRASH, LOW_TOM = 36, 38, 42, 46, 51, 49, 45
VOICES = {"bass": ["bass"], "guitar": ["tenor"], "piano": ["soprano", "alto"]}


class RendererMissing(RuntimeError):
    """FluidSynth or the soundfont is not installed."""


@dataclass
class Piece:
    """One rendered piece and every random choice made for it."""

    id: str
    source: str
    split: str
    tempo: float
    transpose: int
    programs: dict[str, int]
    drum_kit: int
    pattern: str
    meter: str
    seconds: float = 0.0
    gain: float = 1.0
    samples: int = 0
    file: str = ""
    notes: dict[str, int] = field(default_factory=dict)


#: The one line for a missing Python dependency of the builder (the package's ``dataset`` extra).
EXTRA = ("the audio dataset builder needs the `dataset` extra of pnpkit-audio (music21, "
         "pyfluidsynth): pip install pnpkit-audio[dataset]")


def require_extra(module: str) -> None:
    """Raise :class:`RendererMissing` naming ``pip install pnpkit-audio[dataset]`` unless the
    Python module ``module`` (``music21`` or ``fluidsynth``) can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise RendererMissing(f"{module} is not installed; {EXTRA}")


def _corpus() -> Any:
    """music21's corpus module (music21 is the ``dataset`` extra, imported only here)."""
    require_extra("music21")
    from music21 import corpus

    return corpus


def check_renderer(soundfont: Path = SOUNDFONT) -> None:
    """Raise :class:`RendererMissing` with the fix when FluidSynth or the soundfont is absent."""
    fix = ("install them with `apt-get install --no-install-recommends fluidsynth "
           "fluid-soundfont-gm` (`make install` does it where apt works)")
    require_extra("fluidsynth")
    if not Path(soundfont).is_file():
        raise RendererMissing(f"the General MIDI soundfont {soundfont} is missing: {fix}")
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth; loads libfluidsynth)
    except (ImportError, OSError) as exc:
        raise RendererMissing(f"FluidSynth cannot be loaded ({exc}): {fix}") from exc


def chorale_sources() -> list[str]:
    """music21 corpus paths of the Bach chorales (sorted, as ``bach/bwvNNN.N``)."""
    corpus = _corpus()

    out = []
    for path in corpus.getComposer("bach"):
        p = Path(path)
        if p.suffix in (".mxl", ".xml", ".musicxml", ".krn") and p.stem.startswith("bwv"):
            out.append(f"bach/{p.stem}")
    return sorted(set(out))


def split_of(source: str, seed: int, test_fraction: float, validation_fraction: float) -> str:
    """The split of a piece: a pure function of its name and the seed (no piece in two splits)."""
    h = int(hashlib.sha256(f"{seed}:{source}".encode()).hexdigest()[:12], 16) / 16**12
    if h < test_fraction:
        return "test"
    if h < test_fraction + validation_fraction:
        return "validation"
    return "train"


def piece_id(source: str) -> str:
    return source.replace("/", "-").replace(".", "_")


def _voice_parts(score: Any) -> dict[str, Any] | None:
    """The soprano / alto / tenor / bass parts by name, or None when the piece lacks one."""
    found: dict[str, Any] = {}
    for part in score.parts:
        name = (part.partName or "").strip().lower()
        for voice in ("soprano", "alto", "tenor", "bass"):
            if name.startswith(voice) and voice not in found:
                found[voice] = part
    return found if len(found) == 4 else None


def _notes(part: Any, transpose: int, octave: int = 0) -> list[tuple[float, float, int]]:
    """(onset, duration, MIDI key) in quarter notes, ties merged."""
    out = []
    for n in part.stripTies().flatten().notes:
        pitches = getattr(n, "pitches", None) or [n.pitch]
        for p in pitches:
            out.append((float(n.offset), float(n.quarterLength), int(p.midi) + transpose + 12 * octave))
    return out


def _bars(part: Any) -> tuple[list[tuple[float, float]], str]:
    """(downbeat, bar length) of each bar in quarter notes (a pickup bar starts before 0)."""
    bars = []
    meter = "4/4"
    length = 4.0
    for m in part.getElementsByClass("Measure"):
        if m.timeSignature is not None:
            meter = m.timeSignature.ratioString
            length = float(m.timeSignature.barDuration.quarterLength)
        bars.append((float(m.offset) - float(m.paddingLeft or 0.0), length))
    return bars, meter


def drum_events(bars: list[tuple[float, float]], end: float, rng: np.random.Generator,
                pattern: str) -> list[tuple[float, float, int, int]]:
    """A drum part following the bars: (onset, duration, key, velocity) in quarter notes.

    ``pattern`` is ``"rock"`` (kick on 1 and 3, snare on the back beats, eighth hats),
    ``"halftime"`` (kick on 1, snare on 3, quarter hats), or ``"ride"`` (ride cymbal on the
    beats, kick on 1, cross-stick snare on the last beat). Each bar's velocities vary; the
    last bar of every fourth gets a tom fill and the first bar a crash.
    """
    events: list[tuple[float, float, int, int]] = []

    def hit(t: float, key: int, vel: float) -> None:
        if 0.0 <= t < end:
            events.append((t, 0.25, key, int(np.clip(vel + rng.normal(0, 6), 30, 127))))

    for i, (start, length) in enumerate(bars):
        beats = max(1, int(round(length)))
        if i == 0 or i % 8 == 0:
            hit(max(start, 0.0), CRASH, 95)
        for b in range(beats):
            t = start + b
            strong = b == 0 or (beats == 4 and b == 2)
            if pattern == "rock":
                if strong:
                    hit(t, KICK, 105)
                if b % 2 == 1 or (beats == 3 and b > 0):
                    hit(t, SNARE, 95)
                hit(t, CLOSED_HAT, 70)
                hit(t + 0.5, CLOSED_HAT if rng.random() > 0.1 else OPEN_HAT, 55)
            elif pattern == "halftime":
                if b == 0:
                    hit(t, KICK, 105)
                if b == beats // 2 and beats > 1:
                    hit(t, SNARE, 100)
                hit(t, CLOSED_HAT, 65)
            else:  # ride
                hit(t, RIDE, 70 if b else 85)
                if b == 0:
                    hit(t, KICK, 95)
                if b == beats - 1 and beats > 1:
                    hit(t, SNARE, 60)
        if i % 4 == 3 and length >= 2:  # a fill into the next phrase
            for j in range(4):
                hit(start + length - 1 + j * 0.25, LOW_TOM + 2 * (3 - j) if j < 3 else SNARE, 90)
    return events


class StemRenderer:
    """One FluidSynth instance (default reverb and chorus) rendering one stem at a time."""

    def __init__(self, soundfont: Path = SOUNDFONT, rate: int = RENDER_RATE) -> None:
        check_renderer(soundfont)
        import fluidsynth

        self.rate = int(rate)
        # FluidSynth's default reverb and chorus stay on, as a rendered mix would have them.
        self.synth = fluidsynth.Synth(samplerate=float(rate), gain=0.5)
        self.clock = 0  # samples rendered so far
        self.sfid = self.synth.sfload(str(soundfont))
        if self.sfid < 0:
            raise RendererMissing(f"FluidSynth could not load the soundfont {soundfont}")

    def render(self, events: list[tuple[float, float, int, int]], seconds_per_quarter: float,
               program: int, drums: bool, total: int) -> np.ndarray:
        """Render (onset, duration, key, velocity) events to ``total`` mono samples in [-1, 1]."""
        s = self.synth
        self.silence()
        channel = DRUM_CHANNEL if drums else 0
        s.program_select(channel, self.sfid, 128 if drums else 0, int(program))
        timeline: list[tuple[int, int, int, int]] = []  # (sample, order, key, velocity); off first
        for onset, dur, key, vel in events:
            if not 0 <= key < 128:
                continue
            on = int(round(onset * seconds_per_quarter * self.rate))
            off = int(round((onset + dur) * seconds_per_quarter * self.rate)) - 1
            timeline.append((on, 1, key, vel))
            timeline.append((max(on + 1, off), 0, key, 0))
        timeline.sort()
        chunks = []
        now = 0
        for when, kind, key, vel in timeline:
            when = min(when, total)
            if when > now:
                chunks.append(self._samples(when - now))
                now = when
            if kind:
                s.noteon(channel, key, vel)
            else:
                s.noteoff(channel, key)
        s.all_notes_off(channel)
        if total > now:
            chunks.append(self._samples(total - now))
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return audio[:total]

    def silence(self) -> None:
        """Cut every voice still sounding, reset the synth and let the effects' tails die out.

        Without it the tail of one stem (its last notes' release, its reverb) would leak into
        the next stem, and a piece's audio would depend on what was rendered before it.
        """
        for channel in range(16):
            self.synth.all_sounds_off(channel)
        self.synth.system_reset()
        # Let the cut voices and the reverb and chorus tails die out (discarded), and end on
        # FluidSynth's 64-sample block grid: events are applied at block boundaries, so each
        # stem must start on one for a piece to render the same whatever came before it.
        n = FLUSH_SECONDS * self.rate
        self._samples(n + (-(self.clock + n)) % 64)

    def _samples(self, n: int) -> np.ndarray:
        self.clock += n
        stereo = np.asarray(self.synth.get_samples(n), dtype=np.float32).reshape(-1, 2)
        return stereo.mean(axis=1) / 32768.0


def render_piece(source: str, renderer: StemRenderer, rng: np.random.Generator, split: str,
                 sample_rate: int) -> tuple[Piece, np.ndarray] | None:
    """Render one chorale to (4, L) stems at ``sample_rate``; None when it is not four-part."""
    import torch
    import torchaudio.functional as AF

    score = _corpus().parse(source)
    parts = _voice_parts(score)
    if parts is None:
        return None
    tempo = float(rng.integers(70, 131))
    transpose = int(rng.integers(-5, 7))
    programs = {k: int(rng.choice(v)) for k, v in PROGRAMS.items()}
    kit = int(rng.choice(DRUM_KITS))
    pattern = str(rng.choice(["rock", "halftime", "ride"]))
    bars, meter = _bars(parts["bass"])
    end = float(score.highestTime)
    spq = 60.0 / tempo
    total = int(round((end * spq + 1.0) * renderer.rate))  # one second for the last release
    stems: dict[str, np.ndarray] = {}
    notes: dict[str, int] = {}
    for stem in STEMS:
        if stem == "drums":
            events = drum_events(bars, end, rng, pattern)
        else:
            octave = -1 if stem == "bass" else 0
            events = []
            for voice in VOICES[stem]:
                base = 84 if stem == "piano" else 76  # velocities: the piano voices lead
                events += [(on, d, key, int(np.clip(base + rng.normal(0, 8), 40, 120)))
                           for on, d, key in _notes(parts[voice], transpose, octave)]
        notes[stem] = len(events)
        stems[stem] = renderer.render(events, spq, programs.get(stem, kit), stem == "drums", total)
    audio = torch.from_numpy(np.stack([stems[s] for s in STEMS]))
    if sample_rate != renderer.rate:
        audio = AF.resample(audio, renderer.rate, sample_rate)
    audio = audio.numpy()
    peak = float(np.abs(audio.sum(0)).max())
    gain = 0.9 / peak if peak > 0 else 1.0
    piece = Piece(id=piece_id(source), source=source, split=split, tempo=tempo,
                  transpose=transpose, programs=programs, drum_kit=kit, pattern=pattern,
                  meter=meter, seconds=audio.shape[1] / sample_rate, gain=gain,
                  samples=int(audio.shape[1]), notes=notes)
    return piece, (audio * gain).astype(np.float32)


def write_stems(path: Path, stems: np.ndarray, sample_rate: int) -> None:
    """(4, L) stems as one 4-channel 16-bit FLAC (channel order :data:`pnpkit_audio.STEMS`)."""
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    soundfile.write(str(tmp), np.clip(stems.T, -1, 1), int(sample_rate), format="FLAC",
                    subtype="PCM_16")
    tmp.replace(path)  # a killed build never leaves a half-written piece behind


def build_dataset(out: str | Path, *, sample_rate: int = 8000, seed: int = 0,
                  test_fraction: float = 0.06, validation_fraction: float = 0.06,
                  limit: int | None = None, sources: list[str] | None = None,
                  soundfont: Path = SOUNDFONT, progress: bool = True) -> dict[str, Any]:
    """Render the chorales to ``out/<split>/<id>.flac`` and write ``out/manifest.json``.

    :param out: the dataset folder.
    :param int sample_rate: the stems' rate (rendered at 16 kHz, resampled by torchaudio).
    :param int seed: every random choice (split, tempo, transposition, programs, drums).
    :param float test_fraction: share of pieces in the test split.
    :param float validation_fraction: share of pieces in the validation split.
    :param int limit: render only the first ``limit`` pieces (in sorted order).
    :param list sources: music21 corpus names to render (default: every Bach chorale).
    :return: the manifest (also written to ``out/manifest.json``).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    settings = {"sample_rate": int(sample_rate), "seed": int(seed), "stems": list(STEMS),
                "test_fraction": test_fraction, "validation_fraction": validation_fraction,
                "render_rate": RENDER_RATE, "soundfont": soundfont.name}
    manifest: dict[str, Any] = {"settings": settings, "pieces": {}, "skipped": {}}
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("settings") != settings:
            raise ValueError(f"{out} holds a dataset built with other settings "
                             f"({old.get('settings')}); choose another --out or delete it")
        manifest = old
    check_renderer(soundfont)
    todo = sources if sources is not None else chorale_sources()
    if limit is not None:
        todo = todo[:limit]
    start = time.perf_counter()
    for source in tqdm(todo, desc="render chorales", disable=not progress):
        pid = piece_id(source)
        if pid in manifest["pieces"] or source in manifest["skipped"]:
            continue
        split = split_of(source, seed, test_fraction, validation_fraction)
        # Each piece draws from its own stream: the choices do not depend on what else is built.
        rng = np.random.default_rng([seed, int(hashlib.sha256(source.encode()).hexdigest()[:8], 16)])
        # A fresh synth per piece: its audio does not depend on what was rendered before it.
        rendered = render_piece(source, StemRenderer(soundfont), rng, split, sample_rate)
        if rendered is None:
            manifest["skipped"][source] = "not four voices (soprano, alto, tenor, bass)"
        else:
            piece, stems = rendered
            piece.file = f"{split}/{pid}.flac"
            write_stems(out / piece.file, stems, sample_rate)
            manifest["pieces"][pid] = asdict(piece)
        manifest_path.write_text(json.dumps(manifest, indent=1))
    manifest["seconds_to_build"] = round(time.perf_counter() - start, 1)
    counts = {s: sum(1 for p in manifest["pieces"].values() if p["split"] == s) for s in SPLITS}
    hours = {s: round(sum(p["seconds"] for p in manifest["pieces"].values() if p["split"] == s)
                      / 3600, 3) for s in SPLITS}
    manifest["counts"], manifest["hours"] = counts, hours
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="the dataset folder")
    parser.add_argument("--sample-rate", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.06)
    parser.add_argument("--validation-fraction", type=float, default=0.06)
    parser.add_argument("--limit", type=int, default=None, help="render only this many pieces")
    parser.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    import sys

    try:
        _corpus()
        check_renderer()
    except RendererMissing as exc:  # one line, what to install
        print(f"pnpkit: error: {exc}", file=sys.stderr)
        return 2
    manifest = build_dataset(args.out, sample_rate=args.sample_rate, seed=args.seed,
                             test_fraction=args.test_fraction,
                             validation_fraction=args.validation_fraction, limit=args.limit,
                             progress=not args.quiet)
    print(f"{args.out}: {manifest['counts']} pieces, {manifest['hours']} hours "
          f"({len(manifest['skipped'])} skipped)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pnpkit build-audio-dataset",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
