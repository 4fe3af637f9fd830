"""Shared set-up of pnpkit-audio's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

#: Two chorales, rendered for real by the fixture below.
PIECES = ["bach/bwv10.7", "bach/bwv1.6"]


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, far faster than on a CPU other jobs share."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory):
    """A dataset of two real rendered chorales: one in the train split, one in the test split."""
    from pnpkit_audio.render import build_dataset

    root = tmp_path_factory.mktemp("chorales")
    # Split fractions chosen so the two pieces land in different splits (test_render checks it).
    manifest = build_dataset(root, sources=PIECES, test_fraction=0.5, validation_fraction=0.0,
                             progress=False)
    return root, manifest
