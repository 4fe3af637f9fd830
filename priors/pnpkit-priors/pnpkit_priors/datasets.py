"""Offline training and held-out data for the project's own image priors.

Every image comes from scikit-image's bundled data (no download). The split is by whole
image, so no held-out pixel is ever seen in training:

- ``train``: textures, documents, astronomy, microscopy, animals, objects;
- ``validation``: ``coffee`` (used for the model cards' denoising figures);
- ``test``: ``camera`` and ``astronaut``, the held-out split every quality figure uses.

Images are turned into multi-scale pyramids (scales 1, 1/2, 1/4, 1/8) from which square
patches are cut, and mapped to [-1, 1] (pnpkit's signal range).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "brick", "grass", "gravel", "coins", "moon", "page", "text", "clock", "chelsea",
        "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle",
        "colorwheel",
    ),
    "validation": ("coffee",),
    "test": ("camera", "astronaut"),
}
SCALES = (1.0, 0.5, 0.25, 0.125)


def load_image(name: str, channels: int) -> np.ndarray:
    """Load a bundled scikit-image picture as float32 (H, W, channels) in [0, 1]."""
    import skimage.color
    import skimage.data
    import skimage.util

    image = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":
        image = image[0]
    image = skimage.util.img_as_float32(image)
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if channels == 1:
        if image.ndim == 3:
            image = skimage.color.rgb2gray(image)
        return image[..., None].astype(np.float32)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return image.astype(np.float32)


def pyramid(image: np.ndarray, size: int, scales: Sequence[float] = SCALES) -> list[np.ndarray]:
    """Anti-aliased rescalings of ``image`` that are still at least ``size`` pixels wide."""
    import skimage.transform

    levels = []
    for scale in scales:
        level = skimage.transform.rescale(image, scale, anti_aliasing=True, channel_axis=-1)
        if min(level.shape[:2]) >= size:
            levels.append(level.astype(np.float32))
    return levels


@dataclass
class PatchSampler:
    """Random square patches (with flips) from the pyramids of one split's images."""

    split: str
    size: int = 32
    channels: int = 1

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {sorted(SPLITS)}")
        self.levels = [lvl for name in SPLITS[self.split]
                       for lvl in pyramid(load_image(name, self.channels), self.size)]
        # Sample a level in proportion to how many distinct patches it holds, so large
        # textures do not drown out small objects and vice versa (square-root weighting).
        areas = np.array([np.sqrt(lv.shape[0] * lv.shape[1]) for lv in self.levels])
        self.weights = areas / areas.sum()

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` patches as float32 (n, channels, size, size) in [-1, 1]."""
        out = np.empty((n, self.channels, self.size, self.size), dtype=np.float32)
        picks = rng.choice(len(self.levels), size=n, p=self.weights)
        for i, k in enumerate(picks):
            level = self.levels[k]
            r = rng.integers(0, level.shape[0] - self.size + 1)
            c = rng.integers(0, level.shape[1] - self.size + 1)
            patch = level[r:r + self.size, c:c + self.size]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            out[i] = np.moveaxis(patch, -1, 0)
        return out * 2.0 - 1.0


def heldout_patches(split: str, size: int, channels: int, count: int, seed: int = 0) -> np.ndarray:
    """A fixed, seeded set of ``count`` patches of a split (the figures' evaluation set).

    Patches whose standard deviation is tiny (flat sky, background) are skipped: restoring
    a constant patch says nothing about a prior.
    """
    sampler = PatchSampler(split, size=size, channels=channels)
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    while len(kept) < count:
        batch = sampler.sample(4 * count, rng)
        kept.extend(p for p in batch if p.std() > 0.08)
    return np.stack(kept[:count])
