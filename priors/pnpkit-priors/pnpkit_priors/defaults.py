"""The project's own default priors, shipped in ``pnpkit_priors/weights/<preset>/``.

- ``grey32`` / ``rgb32``: small DDPMs (epsilon prediction, 1000 linear steps) trained on
  32 x 32 patches, with attention at their coarsest level; loaded by
  :class:`~pnpkit_priors.diffusion.DiffusersPrior` from ``unet/`` + ``scheduler/``.
- ``grey64`` / ``rgb64``: continuous-noise (EDM-preconditioned) denoisers for whole pictures:
  4-level attention-free UNets trained on 64 x 64 patches (dead leaves and flips/rotations
  mixed in), loaded by :class:`~pnpkit_priors.edm.EDMPrior` from ``config.json`` +
  ``model.safetensors``; a call on a whole 512 x 512 picture costs about a third of the 32
  presets' (no global attention; ``benchmarks/results/prior_pilots``).

They are trained by :mod:`pnpkit_priors.train` on scikit-image's bundled pictures (see
:mod:`pnpkit_priors.datasets` for the split) and described by the ``MODEL_CARD.md`` next
to their weights, which :mod:`pnpkit_priors.evaluate` writes.

All run on pictures of any size: their UNets are convolutional, so a picture is
reflect-padded to the next multiple of their down-sampling factor (4 for the 32 presets, 8
for the 64 ones), run and cropped back (``check_size = False`` by default for the 32 presets,
unlike a user's checkpoint loaded with ``diffusers``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .diffusion import DiffusersPrior

#: Where the packaged weights live: ``WEIGHTS_DIR / preset / ...``.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PRESETS = ("grey32", "rgb32", "grey64", "rgb64")
#: The presets stored as EDM folders (``config.json`` + ``model.safetensors``).
EDM_PRESETS = ("grey64", "rgb64")


def default_prior(preset: str, device: str = "cpu", dtype: str = "float32",
                  weights_dir: str | Path | None = None,
                  check_size: bool = False) -> Any:
    """Load a packaged prior: :class:`~pnpkit_priors.diffusion.DiffusersPrior` for the 32
    presets, :class:`~pnpkit_priors.edm.EDMPrior` for the 64 ones.

    :param str preset: ``"grey32"``, ``"rgb32"``, ``"grey64"`` or ``"rgb64"``.
    :param str device: where the network runs.
    :param str dtype: the signals' dtype.
    :param str weights_dir: the folder holding ``<preset>/`` (default: the package's ``weights/``).
    :param bool check_size: 32 presets: refuse signals of another size than 32 x 32 (default:
        run any size, reflect-padded to a multiple of 4 and cropped back); the 64 presets run
        any size and take no such setting.
    :raises FileNotFoundError: when the preset's weights are not installed.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    folder = Path(weights_dir or WEIGHTS_DIR) / preset
    if preset in EDM_PRESETS:
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"the default {preset} prior's weights are not installed: {folder} should hold "
                f"config.json and model.safetensors. Train them with `pnpkit train-prior --preset "
                f"{preset} --out DIR` and copy DIR/config.json and DIR/model.safetensors there, or "
                "load the folder with prior 'edm' and path = \"DIR\"")
        from .edm import EDMPrior

        return EDMPrior.from_pretrained(folder, device=device, dtype=dtype, name=f"default-{preset}")
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


def default_grey64(device: str = "cpu", dtype: str = "float32") -> Any:
    """The project's greyscale whole-picture prior: an EDM-preconditioned attention-free UNet
    (continuous noise levels 1e-4 to 80; the linear 1000-step DDPM grid for timestep solvers).

    Trained offline on 64 x 64 patches of scikit-image's pictures (and dead leaves);
    ``camera`` and ``astronaut`` are held out (test split), ``coffee`` is the validation split.
    See ``weights/grey64/MODEL_CARD.md``. Runs on pictures of any size.

    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    return default_prior("grey64", device=device, dtype=dtype)


def default_rgb64(device: str = "cpu", dtype: str = "float32") -> Any:
    """The project's colour whole-picture prior (as :func:`default_grey64`, three channels).

    See ``weights/rgb64/MODEL_CARD.md``.

    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    return default_prior("rgb64", device=device, dtype=dtype)
