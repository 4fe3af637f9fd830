"""Data items for pipelines: files (PNG/JPEG/WAV/FLAC), scikit-image samples, datasets.

An item is a signal (C, *spatial) in pnpkit's range [-1, 1] with an id, its kind
("image" or "audio") and, for audio, its sample rate.

Public API (plugins use it): :class:`Item` (what a ``register_datasets`` factory returns),
:func:`load_items` (the items a ``[data]`` table names), :func:`save_signal` (PNG / WAV),
:func:`image_array` (the one image renderer: the PNGs and every figure go through it) and
:func:`is_image_like`.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
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


def image_to_tensor(array: np.ndarray, size: int | None = None, channels: int | None = None) -> Tensor:
    """(H, W[, C]) uint8/float array -> (C, H, W) float32 in [-1, 1]; centre-crop and resize."""
    import skimage.color
    import skimage.transform
    import skimage.util

    img = skimage.util.img_as_float32(array)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
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
    """Load one image or audio file as an :class:`Item`."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image

        with Image.open(path) as im:
            return Item(path.stem, image_to_tensor(np.asarray(im), size, channels), "image")
    if suffix in AUDIO_SUFFIXES:
        return Item(path.stem, *load_audio(path, sample_rate, seconds))
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of "
                     f"{', '.join(sorted(IMAGE_SUFFIXES | AUDIO_SUFFIXES))}")


def load_audio(path: Path, sample_rate: int | None = None,
               seconds: float | None = None) -> tuple[Tensor, str, int]:
    """(C, L) float32 audio, resampled with torchaudio when ``sample_rate`` differs."""
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    wav = torch.from_numpy(data.T.copy())
    if sample_rate is not None and sample_rate != rate:
        import torchaudio.functional as AF

        wav = AF.resample(wav, rate, sample_rate)
        rate = sample_rate
    if seconds is not None:
        wav = wav[:, : int(round(seconds * rate))]
    return wav, "audio", int(rate)


def load_items(data: dict[str, Any], base_dir: Path) -> list[Item]:
    """The items a ``[data]`` table names, in a stable order."""
    limit = data.get("limit")
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
        items = [load_file(p, data.get("size"), data.get("channels"), data.get("sample_rate"),
                           data.get("seconds")) for p in paths]
    else:
        from .plugins import get_manager

        settings = {k: v for k, v in data.items() if k not in ("dataset", "limit")}
        items = list(get_manager().create("dataset", data["dataset"], **settings))
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"item ids must be unique; duplicates: "
                         f"{sorted({i for i in ids if ids.count(i) > 1})}")
    return items[:limit] if limit is not None else items


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
