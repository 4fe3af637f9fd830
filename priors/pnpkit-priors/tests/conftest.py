"""Tiny diffusers models saved with ``save_pretrained``, for loading them back as priors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from pnpkit.plugins import reset_manager


def pytest_configure(config: pytest.Config) -> None:
    """The ``slow`` mark: tests of full-size networks (seconds each). ``make test`` runs them;
    ``-m "not slow"`` leaves them out."""
    config.addinivalue_line("markers", "slow: a full-size network (seconds); run by make test, "
                                       "left out by -m 'not slow'")


@pytest.fixture(autouse=True, scope="session")
def _all_plugins() -> Any:
    """Every installed plugin is visible to ``pnpkit.create``, whatever ran before.

    The models are tiny: one thread runs them fastest, and far faster than several threads
    on a CPU that other jobs share.
    """
    mp = pytest.MonkeyPatch()
    mp.delenv("PNPKIT_LOAD_PLUGINS", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    reset_manager()
    yield
    mp.undo()
    torch.set_num_threads(threads)
    reset_manager()


class Tiny:
    """Builders of tiny diffusers models and schedulers (the ``tiny`` fixture)."""

    @staticmethod
    def unet2d(channels: int = 1, size: int = 8, out_channels: int | None = None,
               **kw: Any) -> Any:
        from diffusers import UNet2DModel

        torch.manual_seed(0)
        return UNet2DModel(sample_size=size, in_channels=channels,
                           out_channels=out_channels or channels, block_out_channels=(8, 16),
                           layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, **kw)

    @staticmethod
    def unet1d(channels: int = 2, length: int = 16) -> Any:
        from diffusers import UNet1DModel

        torch.manual_seed(0)
        return UNet1DModel(sample_size=length, in_channels=channels, out_channels=channels,
                           block_out_channels=(8, 16, 32), norm_num_groups=4,
                           time_embedding_type="positional", use_timestep_embedding=True,
                           flip_sin_to_cos=False, freq_shift=1, extra_in_channels=0,
                           down_block_types=("DownResnetBlock1D",) * 3,
                           up_block_types=("UpResnetBlock1D",) * 2,
                           mid_block_type="MidResTemporalBlock1D",
                           out_block_type="OutConv1DBlock", act_fn="mish", layers_per_block=1)

    @staticmethod
    def vae(channels: int = 1, latent_channels: int = 2) -> Any:
        from diffusers import AutoencoderKL

        torch.manual_seed(0)
        return AutoencoderKL(in_channels=channels, out_channels=channels,
                             down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                             up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                             block_out_channels=(4, 8), layers_per_block=1,
                             latent_channels=latent_channels, norm_num_groups=4, sample_size=8)

    @staticmethod
    def ddpm(**kw: Any) -> Any:
        from diffusers import DDPMScheduler

        return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", **kw)

    @staticmethod
    def save(folder: Path, **parts: Any) -> Path:
        """``save_pretrained`` each part into ``folder/<name>``."""
        for name, part in parts.items():
            part.save_pretrained(folder / name)
        return folder


@pytest.fixture(scope="session")
def tiny() -> type[Tiny]:
    """The builders of tiny models."""
    return Tiny


@pytest.fixture(scope="session")
def grey_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 x 8 x 8 epsilon-prediction checkpoint: ``tiny-grey/{unet,scheduler}``."""
    folder = tmp_path_factory.mktemp("grey") / "tiny-grey"
    return Tiny.save(folder, unet=Tiny.unet2d(), scheduler=Tiny.ddpm())


@pytest.fixture
def make_ckpt(tmp_path: Path) -> Callable[..., Path]:
    """Save a ``unet/`` + ``scheduler/`` (+ extra parts) checkpoint under ``tmp_path``."""

    def make(name: str = "ckpt", unet: Any = None, scheduler: Any = None, **extra: Any) -> Path:
        return Tiny.save(tmp_path / name, unet=unet if unet is not None else Tiny.unet2d(),
                         scheduler=scheduler if scheduler is not None else Tiny.ddpm(), **extra)

    return make
