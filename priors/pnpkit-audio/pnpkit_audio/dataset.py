"""The built multi-stem dataset: its splits, training segments and evaluation items.

A dataset folder is what :func:`pnpkit_audio.render.build_dataset` writes: ``manifest.json``
and one 4-channel FLAC per piece under ``<split>/`` (channels in the order of
:data:`pnpkit_audio.STEMS`). The package also ships a few rendered test pieces
(``pnpkit_audio/excerpts/``) so that the demo and the tests run without building anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import STEMS

#: The excerpts of test pieces committed with the package (8.192 s each at 8 kHz).
EXCERPTS_DIR = Path(__file__).resolve().parent / "excerpts"
#: Where ``chorales`` looks for a built dataset when no root is given.
DEFAULT_ROOT = Path(os.environ.get("PNPKIT_AUDIO_DATA", "data/chorales-8k"))


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of a dataset folder, with a clear error when it is not one."""
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{root} is not a built audio dataset (no manifest.json). Build one with "
            f"`pnpkit build-audio-dataset --out {root}` (about 1 s per piece), or use the "
            "shipped excerpts (dataset 'chorales-excerpts')")
    return json.loads(path.read_text())


def load_stems(path: str | Path) -> tuple[np.ndarray, int]:
    """(4, L) float32 stems and the sample rate of one piece's FLAC."""
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if data.shape[1] != len(STEMS):
        raise ValueError(f"{path}: expected {len(STEMS)} channels ({', '.join(STEMS)}), "
                         f"got {data.shape[1]}")
    return np.ascontiguousarray(data.T), int(rate)


def split_files(root: str | Path, split: str) -> list[Path]:
    """The FLAC files of one split, sorted by piece id."""
    manifest = read_manifest(root)
    splits = sorted({p["split"] for p in manifest["pieces"].values()})
    if split not in ("train", "validation", "test"):
        raise ValueError(f"unknown split {split!r}; choose train, validation or test")
    files = sorted(Path(root) / p["file"] for p in manifest["pieces"].values() if p["split"] == split)
    if not files:
        raise ValueError(f"{root} has no piece in split {split!r} (it has: {', '.join(splits)})")
    return files


class SegmentSampler:
    """Random fixed-length segments of one split, held in memory (16-bit) for training.

    Pieces are drawn in proportion to their length and the offset uniformly, so every
    second of the split is equally likely. The batch is a pure function of the generator.

    :param root: the dataset folder.
    :param str split: ``train``, ``validation`` or ``test``.
    :param int length: samples per segment.
    """

    def __init__(self, root: str | Path, split: str = "train", length: int = 16384) -> None:
        self.length = int(length)
        self.pieces: list[np.ndarray] = []
        self.sample_rate = 0
        for path in split_files(root, split):
            stems, self.sample_rate = load_stems(path)
            if stems.shape[1] >= self.length:
                self.pieces.append(np.round(stems * 32767).astype(np.int16))
        if not self.pieces:
            raise ValueError(f"no piece of split {split!r} in {root} is {length} samples long")
        sizes = np.array([p.shape[1] - self.length + 1 for p in self.pieces], dtype=np.float64)
        self.weights = sizes / sizes.sum()

    @property
    def seconds(self) -> float:
        """Total duration of the split's pieces."""
        return sum(p.shape[1] for p in self.pieces) / self.sample_rate

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """(batch_size, 4, length) float32 segments in [-1, 1]."""
        which = rng.choice(len(self.pieces), size=batch_size, p=self.weights)
        out = np.empty((batch_size, len(STEMS), self.length), dtype=np.float32)
        for i, k in enumerate(which):
            piece = self.pieces[k]
            start = int(rng.integers(0, piece.shape[1] - self.length + 1))
            out[i] = piece[:, start:start + self.length] / 32767.0
        return out


def excerpt(stems: np.ndarray, rate: int, seconds: float = 8.192) -> np.ndarray:
    """The ``seconds`` long excerpt of a piece that starts at its first second of mixture."""
    n = int(round(seconds * rate))
    mix = np.abs(stems.sum(0))
    onset = int(np.argmax(mix > 1e-3)) if (mix > 1e-3).any() else 0
    start = max(0, min(onset, stems.shape[1] - n))
    return stems[:, start:start + n]


def items_from_files(files: list[Path], seconds: float | None, limit: int | None) -> list[Any]:
    import torch

    from pnpkit.data import Item

    items = []
    for path in files[:limit] if limit is not None else files:
        stems, rate = load_stems(path)
        if seconds:  # None or 0 (what a TOML file can say): the whole piece
            stems = excerpt(stems, rate, seconds)
        items.append(Item(path.stem, torch.from_numpy(np.ascontiguousarray(stems)), "audio", rate,
                          channel_names=list(STEMS)))
    return items


def chorales(root: str | None = None, split: str = "test", seconds: float | None = 8.192,
             limit: int | None = None) -> list[Any]:
    """Pieces of a built dataset as pipeline items: the four stems (4, L), kind ``audio``.

    :param str root: the dataset folder (default ``$PNPKIT_AUDIO_DATA`` or ``data/chorales-8k``).
    :param str split: ``test`` (default), ``validation`` or ``train``.
    :param float seconds: cut each piece to this long an excerpt from its first note
        (None or 0: whole pieces).
    :param int limit: at most this many pieces.
    """
    return items_from_files(split_files(root or DEFAULT_ROOT, split), seconds, limit)


def chorales_excerpts(limit: int | None = None) -> list[Any]:
    """The rendered test-split excerpts shipped with the package (no build needed).

    :param int limit: at most this many excerpts.
    """
    files = sorted(EXCERPTS_DIR.glob("*.flac"))
    if not files:
        raise FileNotFoundError(f"no excerpts in {EXCERPTS_DIR}: the package was installed "
                                "without its data files")
    return items_from_files(files, None, limit)


def export_excerpts(root: str | Path, out: str | Path = EXCERPTS_DIR, count: int = 4,
                    seconds: float = 8.192) -> list[Path]:
    """Write the first ``count`` test pieces' excerpts as FLAC (what the package ships).

    ``out/excerpts.json`` records each excerpt's piece and the rendering choices from the
    dataset's manifest, so the shipped files can be rebuilt with the same command.
    """
    from .render import write_stems

    out = Path(out)
    manifest = read_manifest(root)
    written = []
    info = {}
    for path in split_files(root, "test")[:count]:
        stems, rate = load_stems(path)
        target = out / path.name
        write_stems(target, excerpt(stems, rate, seconds), rate)
        written.append(target)
        info[path.stem] = manifest["pieces"][path.stem]
    (out / "excerpts.json").write_text(json.dumps(
        {"dataset_settings": manifest["settings"], "seconds": seconds, "pieces": info}, indent=1))
    return written
