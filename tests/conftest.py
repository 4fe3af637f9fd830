"""Shared fixtures: fake installed distributions and a toy plugin for pipeline tests."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pnpkit.plugins import PluginManager, reset_manager

TOY_PLUGIN = '''
"""A toy plugin: a masking operator, closed-form priors and a generated dataset."""
import pnpkit


class ToyMask:
    """Keeps a seeded half of the samples (linear, exact projection)."""

    linear = True

    def __init__(self, shape, sigma_y=0.0, keep=0.5, seed=0, device="cpu", dtype="float32"):
        import torch
        from pnpkit.operators import GaussianNoise

        g = torch.Generator().manual_seed(seed)
        self.mask = (torch.rand(shape, generator=g) < keep).to(getattr(torch, dtype))
        self.noise_model = GaussianNoise(sigma_y)

    def A(self, x, **kw):
        return x * self.mask

    A_adjoint = A
    A_dagger = A

    def project(self, x, y):
        return x * (1 - self.mask) + y * self.mask


def toy_images(count=3, size=16, channels=1, delay=0.0):
    import time
    import torch
    from pnpkit.data import Item

    items = []
    for i in range(count):
        g = torch.Generator().manual_seed(100 + i)
        low = torch.rand(1, channels, 4, 4, generator=g) * 2 - 1
        img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear",
                                              align_corners=True)[0]
        items.append(Item(f"img{i}", img, "image"))
    time.sleep(delay)
    return items


def toy_audio(count=2, length=2048, channels=2):
    import torch
    from pnpkit.data import Item

    t = torch.arange(length) / 8000
    return [Item(f"clip{i}", torch.stack([0.5 * torch.sin(2 * 3.14159 * (220 * (c + 1) + 50 * i) * t)
                                          for c in range(channels)]), "audio", 8000)
            for i in range(count)]


def gauss(scale=0.5):
    from pnpkit.testing import GaussianDiffusionPrior
    return GaussianDiffusionPrior(scale=scale)


def tikhonov(lam=1.0):
    from pnpkit.testing import TikhonovPrior
    return TikhonovPrior(lam=lam)


@pnpkit.hookimpl
def register_operators(register):
    register("toy-mask", ToyMask, description="seeded random mask")


@pnpkit.hookimpl
def register_priors(register):
    register("toy-gauss", gauss)
    register("toy-tikhonov", tikhonov)


@pnpkit.hookimpl
def register_datasets(register):
    register("toy-images", toy_images)
    register("toy-audio", toy_audio)
'''


def write_distribution(site: Path, dist: str, module: str, source: str, entry_name: str | None = None,
                       requires: list[str] | None = None, version: str = "1.0") -> Path:
    """Create an installed distribution (module + dist-info with a pnpkit entry point) in ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    meta = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires or []]
    (info / "METADATA").write_text("\n".join(meta) + "\n")
    (info / "entry_points.txt").write_text(f"[pnpkit]\n{entry_name or dist} = {module}\n")
    return site


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Make fake installed distributions importable (sys.path) and discoverable (metadata)."""
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    site.mkdir()

    def make(dist: str, module: str, source: str, **kw: object) -> Path:
        write_distribution(site, dist, module, source, **kw)  # type: ignore[arg-type]
        return site

    yield make
    for name in list(sys.modules):
        if (site / f"{name}.py").exists():
            del sys.modules[name]
    reset_manager()


@pytest.fixture
def toy_site(fake_site: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The toy plugin installed as a fake distribution, and a fresh manager that sees it."""
    site = fake_site("pnpkit-toy", "pnpkit_toy_plugin", TOY_PLUGIN, entry_name="toy")
    monkeypatch.setenv("PNPKIT_LOAD_PLUGINS", "toy")
    reset_manager(PluginManager())
    return site


@pytest.fixture
def all_plugins(monkeypatch: pytest.MonkeyPatch):
    """Every installed pnpkit plugin (not only the toy one), with a fresh plugin manager."""
    monkeypatch.delenv("PNPKIT_LOAD_PLUGINS", raising=False)
    reset_manager()
    yield
    reset_manager()


@pytest.fixture
def two_threads():
    """torch on 2 threads for the test (the CI machine's cores), restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)
