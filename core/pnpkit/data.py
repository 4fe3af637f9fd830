"""Data items for pipelines: files (PNG/JPEG/WAV/FLAC), scikit-image samples, datasets.

An item is a signal (C, *spatial) in pnpkit's range [-1, 1] with an id, its kind
("image" or "audio") and, for audio, its sample rate.

A measured item (:class:`Measured`, from ``[data] measurement``) is the user's own ``y``
instead, loaded at its own size, with an optional reference.

Public API (plugins use it): :class:`Item` (what a ``register_datasets`` factory returns),
:func:`load_items` (the items a ``[data]`` table names), :func:`load_measurements` (the
measured items), :func:`save_signal` (PNG / WAV),
:func:`image_array` (the one image renderer: the PNGs and every figure go through it) and
:func:`is_image_like`.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


@dataclass
class Item:
    """One signal to restore."""

    id: str
    signal: Tensor
    kind: str = "image"
    sample_rate: int | None = None
    #: One name per channel (e.g. the stems of a separation item), for per-stem metrics.
    channel_names: list[str] | None = None
    #: One line per conversion made while loading (down-mix, resampling), said on stderr.
    notes: list[str] = field(default_factory=list)


def image_to_tensor(array: np.ndarray, size: int | None = None, channels: int | None = None) -> Tensor:
    """(H, W[, C]) uint8/float array -> (C, H, W) float32 in [-1, 1]; centre-crop and resize."""
    import skimage.color
    import skimage.transform
    import skimage.util

    if channels is not None and channels not in (1, 3):
        raise ValueError(f"[data] channels = {channels!r} cannot apply to an image; use "
                         f"channels = 1 (grey) or 3 (colour), or drop it to keep the file's")
    img = skimage.util.img_as_float32(array)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[-1] == 2:  # grey + alpha
        img = img[..., :1]
    if channels == 1 and img.ndim == 3:
        img = skimage.color.rgb2gray(img)
    if img.ndim == 2:
        img = img[..., None]
    if channels == 3 and img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    if size is not None:
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        if s != size:
            img = skimage.transform.resize(img, (size, size), anti_aliasing=s > size)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(img, -1, 0))).float() * 2 - 1


def load_file(path: Path, size: int | None = None, channels: int | None = None,
              sample_rate: int | None = None, seconds: float | None = None) -> Item:
    """Load one image or audio file as an :class:`Item`.

    Images: ``channels`` 1 (grey) or 3 (colour), else the file's. Audio: ``channels = 1``
    down-mixes to mono (a note says so), else the file's channels are kept; the file is
    resampled to ``sample_rate`` with torchaudio when it differs (a note says so).

    :raises ValueError: one line naming the file: unreadable, empty, non-finite values, or a
        ``channels`` that cannot apply.
    """
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return Item(path.stem, read_image(path, channels, size, measured=False), "image")
    if suffix in AUDIO_SUFFIXES:
        notes: list[str] = []
        wav, kind, rate = load_audio(path, sample_rate, seconds, channels, notes)
        return Item(path.stem, wav, kind, rate, notes=notes)
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of "
                     f"{', '.join(sorted(IMAGE_SUFFIXES | AUDIO_SUFFIXES))}")


def load_audio(path: Path, sample_rate: int | None = None, seconds: float | None = None,
               channels: int | None = None, notes: list[str] | None = None
               ) -> tuple[Tensor, str, int]:
    """(C, L) float32 audio, resampled with torchaudio when ``sample_rate`` differs.

    :param int channels: 1 down-mixes to mono; None or the file's count keeps it.
    :param list notes: where to append one line per conversion (down-mix, resampling).
    :raises ValueError: one line naming the file (unreadable, empty, non-finite, channels).
    """
    wav, rate = read_audio(path)
    said = notes if notes is not None else []
    if channels is not None and channels not in (1, wav.shape[0]):
        raise ValueError(f"{path}: has {wav.shape[0]} channel(s), [data] channels = {channels} "
                         f"cannot apply; use channels = 1 (down-mix) or {wav.shape[0]}, or drop it")
    if channels == 1 and wav.shape[0] > 1:
        said.append(f"{path.name}: {wav.shape[0]} channels down-mixed to mono")
        wav = wav.mean(0, keepdim=True)
    if sample_rate is not None and sample_rate != rate:
        said.append(f"{path.name}: {rate} Hz resampled to {sample_rate} Hz")
        wav = resample(wav, rate, int(sample_rate))
        rate = int(sample_rate)
    if seconds is not None:
        wav = wav[:, : int(round(seconds * rate))]
    return wav, "audio", int(rate)


def load_items(data: dict[str, Any], base_dir: Path, signal_rate: int | None = None) -> list[Item]:
    """The items a ``[data]`` table names, in a stable order.

    :param dict data: the ``[data]`` table.
    :param pathlib.Path base_dir: the folder relative paths are relative to.
    :param int signal_rate: audio: the rate the prior works at. Audio files are loaded at
        ``[data] sample_rate``, else at this rate, and a dataset's audio items at another rate
        are resampled to it; each resampling is one line in :attr:`Item.notes`.
    :raises ValueError: one line naming the file or item: unreadable, non-finite values, a
        dataset whose factory fails.
    """
    limit = data.get("limit")
    rate = data.get("sample_rate") or signal_rate
    if "sample" in data:
        names = data["sample"] if isinstance(data["sample"], list) else [data["sample"]]
        items = [sample_item(n, data.get("size"), data.get("channels")) for n in names]
    elif "files" in data:
        patterns = data["files"] if isinstance(data["files"], list) else [data["files"]]
        paths: list[Path] = []
        for pattern in patterns:
            full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
            found = sorted(glob.glob(full))
            if not found:
                raise FileNotFoundError(f"[data] files: nothing matches {pattern!r} "
                                        f"(looked in {base_dir})")
            paths.extend(Path(p) for p in found)
        items = [load_file(p, data.get("size"), data.get("channels"), rate, data.get("seconds"))
                 for p in paths]
    else:
        items = _dataset_items(data, signal_rate)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"item ids must be unique; duplicates: "
                         f"{sorted({i for i in ids if ids.count(i) > 1})}")
    return items[:limit] if limit is not None else items


def _dataset_items(data: dict[str, Any], signal_rate: int | None) -> list[Item]:
    from .config import check_setting_types
    from .plugins import get_manager

    name = data["dataset"]
    settings = {k: v for k, v in data.items() if k not in ("dataset", "limit")}
    component = get_manager().get("dataset", name)
    check_setting_types(component.factory, settings, f"[data] (dataset {name!r})")
    try:
        items = list(component.create(**settings))
    except TypeError as exc:
        if str(exc).startswith("unknown setting"):  # check_settings' own message: one line already
            raise
        raise ValueError(f"dataset {name!r} (plugin {component.plugin!r}) failed to load: "
                         f"TypeError: {exc}; check its settings (`pnpkit show dataset {name}`)") from None
    except (ValueError, LookupError, OSError):
        raise  # a one-line message of the dataset's own
    except Exception as exc:
        raise ValueError(f"dataset {name!r} (plugin {component.plugin!r}) failed to load: "
                         f"{type(exc).__name__}: {exc}; check its settings (`pnpkit show dataset "
                         f"{name}`)") from None
    for item in items:
        if not isinstance(item, Item):
            raise ValueError(f"dataset {name!r} (plugin {component.plugin!r}) gave a "
                             f"{type(item).__name__}, not a pnpkit.data.Item; fix the plugin")
        if not bool(torch.isfinite(item.signal).all()):
            raise ValueError(f"dataset {name!r}: item {item.id!r} holds non-finite values (NaN or "
                             "infinity); fix the dataset, or leave the item out")
        if (signal_rate and item.kind == "audio" and item.sample_rate
                and item.sample_rate != signal_rate):
            item.notes.append(f"{item.id}: {item.sample_rate} Hz resampled to {signal_rate} Hz "
                              "for the prior")
            item.signal = resample(item.signal, item.sample_rate, signal_rate)
            item.sample_rate = signal_rate
    return items


def sample_item(name: str, size: int | None = None, channels: int | None = None) -> Item:
    """A picture bundled with scikit-image (``camera``, ``astronaut``, ``coins``, ...)."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None or name.startswith("_"):
        raise ValueError(f"unknown sample {name!r}; use a picture bundled with scikit-image, "
                         "e.g. camera, astronaut, coins, moon, coffee, chelsea")
    return Item(name, image_to_tensor(loader(), size, channels), "image")


def save_signal(signal: Tensor, path: Path, kind: str, sample_rate: int | None = None) -> Path:
    """Write a (C, *spatial) signal in [-1, 1] as PNG (images) or WAV (audio)."""
    if kind == "audio":
        import soundfile

        path = path.with_suffix(".wav")
        arr = signal.detach().cpu().float().numpy()
        soundfile.write(str(path), np.clip(arr.T, -1, 1), int(sample_rate or 16000), subtype="FLOAT")
        return path
    from PIL import Image

    path = path.with_suffix(".png")
    img = image_array(signal)
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(path)
    return path


def image_array(signal: Tensor) -> np.ndarray:
    """A (C, H, W) image in [-1, 1] as the (H, W, C) ``uint8`` array it is saved and shown as.

    The one image renderer: :func:`save_signal`'s PNGs and every figure go through it, so a
    picture in a report is the PNG beside it. Values outside [-1, 1] are clipped.

    :param torch.Tensor signal: (C, H, W), any real dtype and device.
    :return: (H, W, C) ``numpy.uint8`` array, values rounded to the nearest of 0..255.

    >>> import torch
    >>> image_array(torch.tensor([[[-1.0, 0.0, 2.0]]])).tolist()
    [[[0], [128], [255]]]
    """
    arr = np.clip((signal.detach().cpu().float().numpy() + 1) / 2, 0, 1)
    return (np.moveaxis(arr, 0, -1) * 255 + 0.5).astype(np.uint8)


def is_image_like(t: Tensor) -> bool:
    """Whether a (C, H, W) tensor can be shown as a picture."""
    return t.dim() == 3 and t.shape[0] in (1, 3) and not t.is_complex()


@dataclass
class Measured:
    """A measured item: the user's ``y`` (C', *spatial'), restored at its own size.

    :param str id: the file's stem.
    :param torch.Tensor measurement: what the solver gets, at ``solve_rate`` for audio.
    :param str kind: ``"image"`` or ``"audio"``.
    :param pathlib.Path path: the measurement file.
    :param sample_rate: audio: the file's rate.
    :param solve_rate: audio: the signal's rate in the solve (the prior's).
    :param output_rate: audio: the rate the result is written at (the file's, unless the
        operator changes the rate: then the signal's).
    :param original: audio: the (down-mixed) measurement at the file's rate.
    :param reference: the optional reference (C, *spatial), at ``reference_rate`` for audio.
    :param notes: one line per conversion (down-mix, resampling), said on stderr.
    """

    id: str
    measurement: Tensor
    kind: str
    path: Path
    sample_rate: int | None = None
    solve_rate: int | None = None
    output_rate: int | None = None
    original: Tensor | None = None
    reference: Tensor | None = None
    reference_path: Path | None = None
    reference_rate: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def output_length(self) -> int:
        """Audio: the result's length at :attr:`output_rate` (the song's whole duration)."""
        if self.original is None or not self.sample_rate or not self.output_rate:
            return 0
        return int(round(self.original.shape[-1] * self.output_rate / self.sample_rate))


def resample(wav: Tensor, rate: int, target: int) -> Tensor:
    """``wav`` (..., L) from ``rate`` to ``target`` Hz (torchaudio), unchanged when equal."""
    if rate == target:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, rate, target)


def resolve_paths(spec: str | list[str], base_dir: Path, key: str) -> list[Path]:
    """The files a path, glob or list of them names (relative to ``base_dir``), sorted."""
    paths: set[Path] = set()
    for pattern in [spec] if isinstance(spec, str) else spec:
        full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
        found = [Path(p) for p in glob.glob(full) if Path(p).is_file()]
        if not found:
            raise FileNotFoundError(f"[data] {key}: nothing matches {pattern!r} (looked in "
                                    f"{base_dir}); check the path, relative to the config file")
        paths.update(found)
    return sorted(paths)


def _finite(signal: Tensor, path: Path) -> Tensor:
    if not bool(torch.isfinite(signal).all()):
        raise ValueError(f"{path}: holds non-finite values (NaN or infinity); replace them "
                         f"(e.g. with 0) before restoring it")
    return signal


def decode_image(path: Path) -> np.ndarray:
    """The pixels of an image file, checked: one line naming the file when it cannot be read,
    is empty or holds non-finite values (a float TIFF)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            array = np.array(im)  # a copy: torch wants a writable array
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path}: cannot be read as an image ({type(exc).__name__}); give a "
                         f"PNG, JPEG or TIFF file") from None
    if array.size == 0:
        raise ValueError(f"{path}: the image is empty (0 pixels); give a picture")
    if array.dtype.kind == "f":  # a float TIFF may hold NaN: refused before any resizing
        _finite(torch.from_numpy(array.astype(np.float32)), path)
    return array


def read_image(path: Path, channels: int | None = None, size: int | None = None,
               measured: bool = True) -> Tensor:
    """An image file as (C, H, W) in [-1, 1] at its own size (or centre-cropped and resized to
    ``size``); a clear error when unreadable, empty or non-finite.

    :param bool measured: a measurement (a grey one cannot be given ``channels = 3``); a
        reference picture of the simulated path is repeated to colour instead.
    """
    array = decode_image(path)
    grey = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 1)
    if measured and channels == 3 and grey:
        raise ValueError(f"{path}: a grey measurement cannot give colour (channels = 3); set "
                         f"channels = 1 or drop it")
    try:
        return _finite(image_to_tensor(array, size, channels), path)
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {exc}") from None


def read_audio(path: Path) -> tuple[Tensor, int]:
    """An audio file as (C, L) float32 and its rate; a clear error when unreadable."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise ValueError(f"{path}: cannot be read as audio ({type(exc).__name__}); give a WAV or "
                         f"FLAC file") from None
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the audio is empty (0 samples); give a recording")
    return _finite(torch.from_numpy(data.T.copy()), path), int(rate)


def _match(measured: list[Path], references: list[Path]) -> list[Path]:
    """References for ``measured``: by file stem when every stem has one, else in the same order."""
    by_stem = {p.stem: p for p in references}
    if all(p.stem in by_stem for p in measured):
        return [by_stem[p.stem] for p in measured]
    if len(references) == len(measured):
        return references
    raise ValueError(f"[data] reference: {len(references)} file(s) for {len(measured)} "
                     f"measurement(s), and not every measurement has a reference of the same "
                     f"file name; give one reference per measurement")


def load_measurements(data: dict[str, Any], base_dir: Path,
                      signal_rate: int | None = None) -> list[Measured]:
    """The measured items of a ``[data]`` table (``measurement``, ``reference``, ``channels``).

    Images are read at their own size. Audio is down-mixed to mono (a mixture) unless
    ``channels`` keeps the file's count, and resampled to ``signal_rate`` when it differs;
    each conversion is one line in :attr:`Measured.notes`.

    :raises ValueError: a file that cannot be read, holds non-finite values, or a
        ``channels`` that cannot apply.
    """
    paths = resolve_paths(data["measurement"], base_dir, "measurement")
    refs = (_match(paths, resolve_paths(data["reference"], base_dir, "reference"))
            if "reference" in data else [None] * len(paths))
    channels = data.get("channels")
    items = []
    for path, ref_path in zip(paths, refs, strict=True):
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            y = read_image(path, channels)
            ref = read_image(ref_path, y.shape[0] if channels is None else channels) if ref_path else None
            items.append(Measured(path.stem, y, "image", path, reference=ref, reference_path=ref_path))
        elif suffix in AUDIO_SUFFIXES:
            items.append(_measured_audio(path, ref_path, channels, signal_rate))
        else:
            raise ValueError(f"{path}: unsupported measurement type {suffix!r}; use one of "
                             f"{', '.join(sorted(IMAGE_SUFFIXES | AUDIO_SUFFIXES))}")
    limit = data.get("limit")
    return items[:limit] if limit is not None else items


def _measured_audio(path: Path, ref_path: Path | None, channels: int | None,
                    signal_rate: int | None) -> Measured:
    wav, rate = read_audio(path)
    notes = []
    if channels is not None and channels not in (1, wav.shape[0]):
        raise ValueError(f"{path}: has {wav.shape[0]} channel(s), [data] channels = {channels} "
                         f"cannot apply; use channels = 1 (down-mix) or {wav.shape[0]}, or drop it")
    if wav.shape[0] > 1 and channels != wav.shape[0]:
        notes.append(f"{path.name}: {wav.shape[0]} channels down-mixed to mono")
        wav = wav.mean(0, keepdim=True)
    target = signal_rate or rate
    if target != rate:
        notes.append(f"{path.name}: {rate} Hz resampled to {target} Hz for the prior; stems "
                     f"written at {rate} Hz")
    ref, ref_rate = read_audio(ref_path) if ref_path is not None else (None, None)
    # The operator may measure at another rate than the signal's: pnpkit.measured.plan
    # resamples again then (pnpkit.operators.measurement_rate).
    return Measured(path.stem, resample(wav, rate, target), "audio", path, sample_rate=rate,
                    solve_rate=target, output_rate=rate, original=wav, reference=ref,
                    reference_path=ref_path, reference_rate=ref_rate, notes=notes)
