"""MSDM's released checkpoints (Mariani et al., ICLR 2024): what they hold and why pnpkit refuses them.

MSDM's Slakh2100 models (``ckpts/glorious-star-335/epoch=729-valid_loss=0.014.ckpt``,
``ckpts/avid-darkness-164/epoch=419-valid_loss=0.014.ckpt``) are PyTorch Lightning 1.7.7
checkpoints written by ``ModelCheckpoint(save_weights_only=True)``: a pickled dict with
``epoch``, ``global_step``, ``pytorch-lightning_version``, ``state_dict`` (the network under
``model.unet.*`` and again, the same tensors, under ``model.diffusion.net.*``), ``loops``,
``hparams_name``, ``hyper_parameters`` and ``datamodule_hyper_parameters``. The model's
hyper-parameters hold the training's sigma distribution *as an object*: Hydra instantiates the
config's ``diffusion_sigma_distribution`` (``_target_: audio_diffusion_pytorch.LogNormalDistribution``)
before the Lightning module's ``save_hyperparameters()`` records it, so the pickle names the
class ``audio_diffusion_pytorch.diffusion.LogNormalDistribution`` (and the data module's, the
repository's own ``main.data.MultiSourceDataset`` objects). ``torch.load(weights_only=True)``
refuses any such global, and pnpkit reads checkpoints no other way.

Even with its tensors, the network is audio-diffusion-pytorch 0.0.43's ``UNet1d`` (patching
by 16, 256 channels, multipliers 1-2-4-4-4-4-4, factors 4-4-4-2-2-2, attention in the last
three levels and the bottleneck, learned time embedding of ``log(sigma) / 4``), a library
that is not among pnpkit's dependencies; pnpkit has no network of that architecture to load
it into. :func:`describe_checkpoint` says which of these stops a given file, in one line.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MSDM_PREFIXES", "MSDMCheckpointError", "describe_checkpoint"]

#: The state-dict prefixes of MSDM's Lightning module (``Model.model`` = ``AudioDiffusionModel``).
MSDM_PREFIXES = ("model.unet.", "model.diffusion.net.")
WHERE = "see pnpkit-audio's README, 'MSDM's released checkpoint'"
NO_NETWORK = ("its network is audio-diffusion-pytorch 0.0.43's UNet1d, an architecture pnpkit "
              "does not have, so no pnpkit prior can use these weights")


class MSDMCheckpointError(ValueError):
    """A file pnpkit cannot turn into a prior: the message says why, in one line."""


def _unsafe_globals(path: Path) -> list[str] | None:
    """The globals of a ``torch.save`` zip file that ``weights_only`` refuses (None: not one)."""
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip-format torch file
        return None


def describe_checkpoint(path: str | Path) -> MSDMCheckpointError | None:
    """The one-line error for a single-file checkpoint given where a prior folder is expected.

    The file is never unpickled beyond what ``torch.load(weights_only=True)`` allows: its
    pickle's globals are listed statically
    (:func:`torch.serialization.get_unsafe_globals_in_checkpoint`) and only a file with none
    of them is loaded, with ``weights_only=True``, to look at its keys.

    :param str path: the file.
    :return: the error to raise for MSDM's checkpoint (its pickled classes, or its tensors
        under ``model.unet.*``) or any pickle naming classes; None for other files (the
        folder checks then say that a file is not a folder).
    :raises FileNotFoundError: when there is no such file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    unsafe = _unsafe_globals(path)
    if unsafe:
        msdm = any(g.startswith(("audio_diffusion_pytorch.", "main.")) for g in unsafe)
        what = ("MSDM's Lightning checkpoint pickles its training objects" if msdm
                else "the pickle names classes")
        return MSDMCheckpointError(
            f"{path}: torch.load(weights_only=True) refuses it: {what} "
            f"({', '.join(sorted(unsafe))}) and pnpkit unpickles no classes"
            + (f"; and {NO_NETWORK}" if msdm else "") + f" ({WHERE})")
    if unsafe is None:  # not a torch.save zip file
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    keys = [k for k in state if isinstance(k, str)] if isinstance(state, dict) else []
    if any(k.startswith(MSDM_PREFIXES) for k in keys):
        n = sum(1 for k in keys if k.startswith(MSDM_PREFIXES[0]))
        return MSDMCheckpointError(f"{path}: holds MSDM's network ({n} tensors under "
                                   f"{MSDM_PREFIXES[0]}*), but {NO_NETWORK} ({WHERE})")
    return None
