"""Held-out patch datasets of the project's own priors, as pnpkit data items."""

from __future__ import annotations

from typing import Any

PRESET_CHANNELS = {"grey32": 1, "rgb32": 3}
PATCH_SIZE = 32
#: Patches are drawn from a fixed pool of this many (the model cards' evaluation set), so
#: ``count = 3`` gives the first 3 items of ``count = 8``.
POOL = 64


def heldout_items(split: str, preset: str, count: int = 8, seed: int = 0) -> list[Any]:
    """Fixed, seeded 32 x 32 patches of a split as :class:`pnpkit.data.Item` images in [-1, 1].

    The patches are the first ``count`` of the :data:`POOL` patches that
    :func:`pnpkit_priors.datasets.heldout_patches` draws with ``seed`` (flat patches skipped):
    the model cards' evaluation set, the same for every ``count`` up to :data:`POOL`.

    :param str split: ``"test"`` (camera, astronaut) or ``"validation"`` (coffee).
    :param str preset: ``"grey32"`` (1 channel) or ``"rgb32"`` (3 channels).
    :param int count: how many patches.
    :param int seed: the patches' seed.
    :return: items with ids ``<split>-<preset>-000``, ``...-001``, ...
    """
    import torch

    from pnpkit.data import Item

    from .datasets import heldout_patches

    if preset not in PRESET_CHANNELS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_CHANNELS)}")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    patches = heldout_patches(split, PATCH_SIZE, PRESET_CHANNELS[preset], max(count, POOL),
                              seed)[:count]
    return [Item(f"{split}-{preset}-{i:03d}", torch.from_numpy(p.copy()), "image")
            for i, p in enumerate(patches)]


def heldout_grey32(count: int = 8, seed: int = 0) -> list[Any]:
    """Greyscale 1 x 32 x 32 patches of the test split (camera, astronaut), never trained on.

    :param int count: how many patches.
    :param int seed: the patches' seed.
    """
    return heldout_items("test", "grey32", count, seed)


def heldout_rgb32(count: int = 8, seed: int = 0) -> list[Any]:
    """Colour 3 x 32 x 32 patches of the test split (camera, astronaut), never trained on.

    :param int count: how many patches.
    :param int seed: the patches' seed.
    """
    return heldout_items("test", "rgb32", count, seed)


def validation_grey32(count: int = 8, seed: int = 0) -> list[Any]:
    """Greyscale 1 x 32 x 32 patches of the validation split (coffee), for tuning.

    :param int count: how many patches.
    :param int seed: the patches' seed.
    """
    return heldout_items("validation", "grey32", count, seed)


def validation_rgb32(count: int = 8, seed: int = 0) -> list[Any]:
    """Colour 3 x 32 x 32 patches of the validation split (coffee), for tuning.

    :param int count: how many patches.
    :param int seed: the patches' seed.
    """
    return heldout_items("validation", "rgb32", count, seed)
