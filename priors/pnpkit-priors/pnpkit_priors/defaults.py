"""The project's own default priors: small DDPMs shipped in ``pnpkit_priors/weights/<preset>/``.

They are trained by :mod:`pnpkit_priors.train` on scikit-image's bundled pictures (see
:mod:`pnpkit_priors.datasets` for the split) and described by the ``MODEL_CARD.md`` next
to their weights, which :mod:`pnpkit_priors.evaluate` writes.

Trained on 32 x 32 patches, they run on pictures of any size: their UNets are convolutional
(attention only at the coarsest level, a quarter of the resolution), so a picture is
reflect-padded to the next multiple of 4 (their down-sampling factor), run and cropped back
(``check_size = False`` by default, unlike a user's checkpoint loaded with ``diffusers``).
"""

from __future__ import annotations

from pathlib import Path

from .diffusion import DiffusersPrior

#: Where the packaged weights live: ``WEIGHTS_DIR / preset / {unet, scheduler}``.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PRESETS = ("grey32", "rgb32")


def default_prior(preset: str, device: str = "cpu", dtype: str = "float32",
                  weights_dir: str | Path | None = None,
                  check_size: bool = False) -> DiffusersPrior:
    """Load a packaged prior through :class:`~pnpkit_priors.diffusion.DiffusersPrior`.

    :param str preset: ``"grey32"`` (1 x 32 x 32) or ``"rgb32"`` (3 x 32 x 32).
    :param str device: where the network runs.
    :param str dtype: the signals' dtype.
    :param str weights_dir: the folder holding ``<preset>/`` (default: the package's ``weights/``).
    :param bool check_size: refuse signals of another size than 32 x 32 (default: run any
        size, reflect-padded to a multiple of 4 and cropped back).
    :raises FileNotFoundError: when the preset's weights are not installed.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    folder = Path(weights_dir or WEIGHTS_DIR) / preset
    if not folder.is_dir():
        raise FileNotFoundError(
            f"the default {preset} prior's weights are not installed: {folder} does not exist "
            f"(it should hold unet/ and scheduler/). Train them with `pnpkit train-prior --preset "
            f"{preset} --out DIR` and copy DIR/unet and DIR/scheduler there, or load a checkpoint "
            "with prior 'diffusers' and path = \"DIR\"")
    return DiffusersPrior.from_pretrained(folder, device=device, dtype=dtype,
                                          name=f"default-{preset}", check_size=check_size)


def default_grey32(device: str = "cpu", dtype: str = "float32",
                   check_size: bool = False) -> DiffusersPrior:
    """The project's greyscale 32 x 32 DDPM prior (epsilon prediction, 1000 linear steps).

    Trained offline on patches of scikit-image's pictures; ``camera`` and ``astronaut`` are
    held out (test split), ``coffee`` is the validation split. See ``weights/grey32/MODEL_CARD.md``.
    Runs on pictures of any size (reflect-padded to a multiple of 4 and cropped back).

    :param bool check_size: refuse pictures of another size than 32 x 32.
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    return default_prior("grey32", device=device, dtype=dtype, check_size=check_size)


def default_rgb32(device: str = "cpu", dtype: str = "float32",
                   check_size: bool = False) -> DiffusersPrior:
    """The project's colour 32 x 32 DDPM prior (epsilon prediction, 1000 linear steps).

    Trained offline on patches of scikit-image's pictures; ``camera`` and ``astronaut`` are
    held out (test split), ``coffee`` is the validation split. See ``weights/rgb32/MODEL_CARD.md``.
    Runs on pictures of any size (reflect-padded to a multiple of 4 and cropped back).

    :param bool check_size: refuse pictures of another size than 32 x 32.
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    return default_prior("rgb32", device=device, dtype=dtype, check_size=check_size)
