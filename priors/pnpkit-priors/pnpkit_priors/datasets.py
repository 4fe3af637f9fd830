"""Offline training and held-out data for the project's own image priors.

Every image comes from scikit-image's bundled data (no download). The split is by whole
image, so no held-out pixel is ever seen in training:

- ``train``: textures, documents, astronomy, microscopy, animals, objects;
- ``validation``: ``coffee`` (used for the model cards' denoising figures);
- ``test``: ``camera`` and ``astronaut``, the held-out split every quality figure uses.

Images are turned into multi-scale pyramids (scales 1, 1/2, 1/4, 1/8) from which square
patches are cut, and mapped to [-1, 1] (pnpkit's signal range). A training sampler can augment
its patches (``augment="flip"``: a random left-right flip, what the 32-pixel presets trained
with; ``"dihedral"``: any of the 8 flips and 90-degree rotations) and mix in generated
dead-leaves images (:mod:`pnpkit_priors.deadleaves`) at a settable fraction. Only the
``train`` split's pictures can enter a sampler that mixes or augments beyond a flip, and
:data:`HELD_OUT` pictures never enter one of the ``train`` split.
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
#: The pictures no training sampler may read: the validation and test splits.
HELD_OUT = frozenset(SPLITS["validation"]) | frozenset(SPLITS["test"])
#: The augmentations a :class:`PatchSampler` knows.
AUGMENTATIONS = ("none", "flip", "dihedral")


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
    """Random square patches of one split's pictures (multi-scale), augmented, with dead leaves.

    ``sample(n, rng)`` is a pure function of the numpy generator ``rng`` (the trainer's exact
    resume relies on it). Each patch is, with probability ``dead_leaves``, a generated
    dead-leaves image (:func:`pnpkit_priors.deadleaves.dead_leaves`, radii from ``rmin`` to the
    patch size); otherwise a patch cut from a pyramid level, the level chosen in proportion to
    the square root of its area. Then ``augment`` applies: ``"flip"`` flips left-right with
    probability 1/2 (the 32-pixel presets' data, and the held-out sets'); ``"dihedral"`` applies
    one of the 8 flips and 90-degree rotations, uniformly; ``"none"`` nothing.

    :param str split: a key of :data:`SPLITS` (``"train"`` for training).
    :param int size: the side of the patches.
    :param int channels: 1 (grey) or 3 (colour).
    :param str augment: one of :data:`AUGMENTATIONS`.
    :param float dead_leaves: the fraction of dead-leaves patches, in [0, 1].
    :param float rmin: the dead leaves' smallest radius (pixels).
    """

    split: str
    size: int = 32
    channels: int = 1
    augment: str = "flip"
    dead_leaves: float = 0.0
    rmin: float = 1.0

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {sorted(SPLITS)}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {self.augment!r}; choose one of "
                             f"{', '.join(AUGMENTATIONS)}")
        if not 0.0 <= self.dead_leaves <= 1.0:
            raise ValueError(f"the dead-leaves fraction must lie in [0, 1], got {self.dead_leaves}")
        if self.size < 8:
            raise ValueError(f"patches must be at least 8 pixels wide, got size={self.size}")
        if self.split != "train" and (self.dead_leaves > 0 or self.augment == "dihedral"):
            raise ValueError(f"the {self.split} split is for evaluation: it takes no dead leaves "
                             "and no augmentation beyond augment='flip'")
        names = SPLITS[self.split]
        if self.split == "train" and HELD_OUT.intersection(names):
            raise ValueError(f"held-out pictures {sorted(HELD_OUT.intersection(names))} are in "
                             "the train split; remove them from SPLITS['train']")
        self.pictures = names if self.dead_leaves < 1.0 else ()
        self.levels = [lvl for name in self.pictures
                       for lvl in pyramid(load_image(name, self.channels), self.size)]
        if self.pictures and not self.levels:
            raise ValueError(f"no picture of the {self.split} split is {self.size} pixels wide; "
                             "choose a smaller size")
        # Sample a level in proportion to how many distinct patches it holds, so large
        # textures do not drown out small objects and vice versa (square-root weighting).
        areas = np.array([np.sqrt(lv.shape[0] * lv.shape[1]) for lv in self.levels])
        self.weights = areas / areas.sum() if len(areas) else areas

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` patches as float32 (n, channels, size, size) in [-1, 1].

        :param int n: how many.
        :param numpy.random.Generator rng: the generator (the batch is a pure function of it).
        """
        from .deadleaves import dead_leaves

        out = np.empty((n, self.channels, self.size, self.size), dtype=np.float32)
        if not self.dead_leaves:  # the 32-pixel presets' stream, draw for draw
            synthetic = np.zeros(n, dtype=bool)
            picks = rng.choice(len(self.levels), size=n, p=self.weights)
        else:
            synthetic = rng.random(n) < self.dead_leaves
            picks = (rng.choice(len(self.levels), size=n, p=self.weights) if self.levels
                     else np.zeros(n, dtype=np.int64))
        for i, k in enumerate(picks):
            if synthetic[i]:
                patch = dead_leaves(self.size, self.channels, rng, rmin=self.rmin)
            else:
                level = self.levels[k]
                r = rng.integers(0, level.shape[0] - self.size + 1)
                c = rng.integers(0, level.shape[1] - self.size + 1)
                patch = level[r:r + self.size, c:c + self.size]
            if self.augment == "flip":
                if rng.random() < 0.5:
                    patch = patch[:, ::-1]
            elif self.augment == "dihedral":
                g = int(rng.integers(0, 8))
                patch = np.rot90(patch[:, ::-1] if g >= 4 else patch, k=g % 4)
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
