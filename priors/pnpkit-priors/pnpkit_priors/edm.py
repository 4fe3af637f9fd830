r"""Continuous-noise priors in EDM's parametrisation (Karras et al. 2022, "Elucidating the Design
Space of Diffusion-Based Generative Models", Table 1), around any backbone.

:class:`EDMPrecond` turns a backbone ``F(x, c_noise) -> tensor`` (a diffusers ``UNet2DModel``,
whose timestep input takes a float ``c_noise``, or pnpkit-audio's 1-D network) into a
denoiser valid at every noise level,

.. math:: D(x, \sigma) = c_\text{skip}(\sigma)\, x
          + c_\text{out}(\sigma)\, F\big(c_\text{in}(\sigma)\, x,\; c_\text{noise}(\sigma)\big),

.. math:: c_\text{skip} = \frac{\sigma_d^2}{\sigma^2 + \sigma_d^2}, \quad
          c_\text{out} = \frac{\sigma\,\sigma_d}{\sqrt{\sigma^2 + \sigma_d^2}}, \quad
          c_\text{in} = \frac{1}{\sqrt{\sigma^2 + \sigma_d^2}}, \quad
          c_\text{noise} = \tfrac14 \ln \sigma,

with :math:`\sigma_d` the data's standard deviation (``sigma_data``). :class:`EDMPrior` is
that denoiser as a :class:`pnpkit.priors.ContinuousDiffusionPrior`, so every pnpkit solver
runs on it (``denoise`` at any level, ``eps``/``x0``/``ddim`` on the DDPM grid).

A checkpoint is a folder with two files, written by :func:`save_edm` (and by the trainer,
:func:`pnpkit_priors.trainer.train_ddpm` with ``parametrisation = "edm"``):

- ``config.json``: ``{"_class_name": "EDMPrecond", "backbone_class": ..., "backbone_config":
  {...}, "sigma_data": ..., "sigma_min": ..., "sigma_max": ..., "c_noise_scale": ...}``, read
  as data only: the backbone class must be one of :data:`BACKBONES`, no code is named in it;
- ``model.safetensors``: the module's state dict (``backbone.*`` keys).

It loads with :meth:`EDMPrior.from_pretrained` or, from a configuration, ``[prior] name =
"edm"``, ``path = "folder"``.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pnpkit.priors import ContinuousDiffusionPrior, torch_dtype

from .loading import check_safetensors, listing, load_tensors, read_json
from .network import ModelFacts, down_factor, like_weights, pad_to_multiple, state_mismatch, to_channels_last

__all__ = ["BACKBONES", "EDMPrecond", "EDMPrior", "edm_prior", "load_edm", "register_backbone",
           "save_edm"]

CONFIG, WEIGHTS = "config.json", "model.safetensors"
LAYOUT = ("a folder with config.json (the EDMPrecond settings and its backbone's class and "
          "config) and model.safetensors, as pnpkit_priors.edm.save_edm and the trainer "
          "(parametrisation = \"edm\") write it")

#: The backbone classes a checkpoint may name: ``name -> "module:attr"`` (imported on use).
#: A package with a network of its own adds it with :func:`register_backbone`.
BACKBONES: dict[str, str] = {
    "UNet2DModel": "diffusers:UNet2DModel",
    "UNet1DModel": "diffusers:UNet1DModel",
    "AudioUNet1DModel": "pnpkit_audio.network:AudioUNet1DModel",
}


def register_backbone(name: str, target: str | type) -> None:
    """Let checkpoints name the backbone class ``name`` (a ``"module:attr"`` string or the class).

    The class must be a diffusers ``ModelMixin`` + ``ConfigMixin`` (built with ``from_config``)
    called as ``model(x, c_noise)``.

    :param str name: the ``backbone_class`` value in ``config.json``.
    :param target: where the class is.
    """
    BACKBONES[name] = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"


def backbone_class(name: Any, where: str = CONFIG) -> type:
    """The class of :data:`BACKBONES` called ``name``.

    :raises ValueError: one line for a name outside :data:`BACKBONES` or a package not installed.
    """
    if not isinstance(name, str) or name not in BACKBONES:
        raise ValueError(f"{where}: unknown backbone_class {name!r}; an EDM checkpoint's backbone "
                         f"is one of {', '.join(sorted(BACKBONES))} (register others with "
                         "pnpkit_priors.edm.register_backbone)")
    module, _, attr = BACKBONES[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
    except ImportError:
        raise ValueError(f"{where}: backbone_class {name!r} lives in {module!r}, which is not "
                         f"installed; install the package that provides it") from None


def _sample(out: Any) -> Tensor:
    """A backbone's output as a tensor (diffusers' ``.sample``, a tuple's first item, a tensor)."""
    if isinstance(out, Tensor):
        return out
    if hasattr(out, "sample"):
        return out.sample  # type: ignore[no-any-return]
    if isinstance(out, (tuple, list)):
        return out[0]  # type: ignore[no-any-return]
    raise TypeError(f"the backbone returned a {type(out).__name__}, not a tensor")


class EDMPrecond(torch.nn.Module):
    r"""EDM's preconditioning of a backbone: ``D(x, sigma)`` for (B, C, *spatial) signals.

    :param torch.nn.Module backbone: called as ``backbone(x, c_noise)`` with ``c_noise`` a (B,)
        float tensor; returns a tensor shaped like ``x`` (or diffusers' output with ``.sample``).
    :param float sigma_data: the data's standard deviation :math:`\sigma_d` (0.5 suits images
        in [-1, 1]; measure it for other data, :func:`pnpkit_priors.trainer.estimate_sigma_data`).
    :param float sigma_min: the smallest level the denoiser is meant for.
    :param float sigma_max: the largest.
    :param float c_noise_scale: ``c_noise = c_noise_scale * ln(sigma)`` (Karras et al.: 1/4).
    """

    def __init__(self, backbone: torch.nn.Module, sigma_data: float = 0.5,
                 sigma_min: float = 1e-4, sigma_max: float = 80.0,
                 c_noise_scale: float = 0.25) -> None:
        super().__init__()
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.backbone = backbone
        self.sigma_data = float(sigma_data)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.c_noise_scale = float(c_noise_scale)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in, c_noise)`` at levels ``sigma`` (any shape, >= 0).

        At ``sigma = 0``: ``c_skip = 1`` and ``c_out = 0`` (so ``D(x, 0) = x``), ``c_noise`` is
        taken at the smallest positive float instead of ``-inf``.
        """
        sd2 = self.sigma_data ** 2
        s2 = sigma * sigma
        c_skip = sd2 / (s2 + sd2)
        c_out = sigma * self.sigma_data / (s2 + sd2).sqrt()
        c_in = 1.0 / (s2 + sd2).sqrt()
        tiny = torch.finfo(sigma.dtype).tiny if sigma.is_floating_point() else 1e-38
        c_noise = self.c_noise_scale * sigma.clamp_min(tiny).log()
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """``D(x, sigma)``: ``sigma`` a number or one level per item ((B,)).

        :param torch.Tensor x: noisy signals ``x0 + sigma n``, (B, C, *spatial).
        :param sigma: their noise levels.
        :return: the estimate of ``x0``, like ``x``.
        """
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        if s.numel() == 1:
            s = s.expand(x.shape[0])
        if s.numel() != x.shape[0]:
            raise ValueError(f"sigma must be a number or one level per item ({x.shape[0]}), got "
                             f"{s.numel()} levels")
        c_skip, c_out, c_in, c_noise = self.coefficients(s)
        view = (-1,) + (1,) * (x.dim() - 1)
        f = _sample(self.backbone(c_in.view(view) * x, c_noise))
        return c_skip.view(view) * x + c_out.view(view) * f.to(x.dtype)

    def edm_config(self) -> dict[str, Any]:
        """What ``config.json`` holds: the settings and the backbone's class and configuration."""
        config = getattr(self.backbone, "config", None)
        if config is None:
            raise TypeError(f"backbone {type(self.backbone).__name__} has no diffusers config: "
                            "save_edm needs a ModelMixin + ConfigMixin backbone")
        name = type(self.backbone).__name__
        if name not in BACKBONES:
            register_backbone(name, type(self.backbone))
        backbone_config = {k: v for k, v in dict(config).items() if not k.startswith("_")}
        return json.loads(json.dumps({
            "_class_name": "EDMPrecond", "backbone_class": name, "backbone_config": backbone_config,
            "sigma_data": self.sigma_data, "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max, "c_noise_scale": self.c_noise_scale}))


def save_edm(model: EDMPrecond, folder: str | Path) -> Path:
    """Write ``model`` into ``folder``: ``config.json`` and ``model.safetensors``.

    :param EDMPrecond model: the preconditioned network.
    :param str folder: created if missing; existing files are replaced (atomically).
    :return: the folder.
    """
    import os

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, folder / WEIGHTS)
    tmp = folder / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(model.edm_config(), indent=1))
    os.replace(tmp, folder / CONFIG)
    return folder


def _number(config: Mapping[str, Any], key: str, where: Path, default: float | None = None) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {key} must be a number, got {value!r}; use the config.json "
                         "saved with these weights")
    return float(value)


def load_edm(folder: str | Path, device: str | torch.device = "cpu",
             dtype: str | torch.dtype = "float32") -> EDMPrecond:
    """Load an :class:`EDMPrecond` saved by :func:`save_edm`, offline, as tensors only.

    :param str folder: the checkpoint folder (``config.json`` + ``model.safetensors``).
    :param str device: where the network goes.
    :param str dtype: the dtype of its weights.
    :raises FileNotFoundError: one line for a missing folder or file, naming what is there.
    :raises ValueError: one line for a config that is not an EDM one, an unknown backbone, or
        weights that do not fit the config.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"EDM prior folder {str(root)!r} does not exist; expected {LAYOUT}")
    if not root.is_dir():
        raise FileNotFoundError(f"{str(root)!r} is a file; give the checkpoint's folder, {LAYOUT}")
    for name in (CONFIG, WEIGHTS):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root} holds no {name} (found: {listing(root)}); expected "
                                    f"{LAYOUT}")
    where = root / CONFIG
    config = read_json(where)
    if config.get("_class_name") != "EDMPrecond":
        raise ValueError(f"{where} is not an EDM checkpoint's (_class_name is "
                         f"{config.get('_class_name')!r}, expected 'EDMPrecond'); a diffusers "
                         "checkpoint (unet/ + scheduler/) loads with [prior] name = \"diffusers\"")
    cls = backbone_class(config.get("backbone_class"), str(where))
    backbone_config = config.get("backbone_config")
    if not isinstance(backbone_config, dict):
        raise ValueError(f"{where}: backbone_config must be a JSON object, got "
                         f"{type(backbone_config).__name__}; use the config.json saved with these "
                         "weights")
    settings = {k: _number(config, k, where, d) for k, d in
                (("sigma_data", None), ("sigma_min", None), ("sigma_max", None),
                 ("c_noise_scale", 0.25))}
    try:
        backbone = cls.from_config(backbone_config) if hasattr(cls, "from_config") else cls(**backbone_config)
        model = EDMPrecond(backbone, **settings)
    except (TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{where}: cannot build {config['backbone_class']} from backbone_config "
                         f"({first}); use the config.json saved with these weights") from None
    check_safetensors(root / WEIGHTS)
    state = load_tensors(root / WEIGHTS)
    want = model.state_dict()
    missing, extra, wrong = state_mismatch(state, want)
    missing, extra = sorted(missing), sorted(extra)
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: {list(state[k].shape)} in the "
                         f"file, {list(want[k].shape)} for the config)")
        raise ValueError(f"{root / WEIGHTS}: the weights do not fit {where}: "
                         f"{'; '.join(parts)}; give the config.json saved with these weights")
    model.load_state_dict(state)
    model.requires_grad_(False)
    return model.to(device=torch.device(device), dtype=torch_dtype(dtype)).eval()


class EDMPrior(ModelFacts, ContinuousDiffusionPrior):
    """An :class:`EDMPrecond` network as a pnpkit prior (a
    :class:`~pnpkit.priors.ContinuousDiffusionPrior`): ``denoise(x, sigma)`` runs ``D`` at
    ``sigma`` itself within ``[sigma_min, sigma_max]`` (the range saved with the network),
    ``eps``/``x0``/``ddim`` on the linear 1000-step DDPM grid.

    Signals are moved to the network's device and dtype and the output comes back in theirs;
    a size that is not a multiple of the backbone's down-sampling is reflect-padded at its end
    and cropped back (:func:`~pnpkit_priors.network.pad_to_multiple`), so the prior runs at any
    size (:attr:`fixed_shape` is ``None``). The channel count must be the backbone's.

    :param EDMPrecond model: the network.
    :param str name: the prior's name in messages.
    :param float clip: Tweedie estimates are clipped to ``[-clip, clip]`` where asked.
    :param str below_floor: the rule below ``sigma_min`` (``"score"`` or ``"floor"``).
    :param bool channels_last: run a 2-D backbone channels-last
        (:func:`~pnpkit_priors.network.to_channels_last`: converts it in place; faster on CPUs,
        the same result to float rounding). Off here, on for loaded checkpoints
        (:meth:`from_pretrained`, the ``edm`` prior and the default priors).
    """

    def __init__(self, model: EDMPrecond, name: str = "edm", clip: float | None = 1.0,
                 below_floor: str = "score", channels_last: bool = False) -> None:
        super().__init__(model.sigma_min, model.sigma_max, clip=clip, below_floor=below_floor)
        self.model = model
        self.name = name
        backbone = model.backbone
        self.channels = int(backbone.config["in_channels"]) if hasattr(backbone, "config") else None
        self.factor = down_factor(backbone)
        self.channels_last = channels_last and to_channels_last(backbone)

    @property
    def sigma_data(self) -> float:
        """The data's standard deviation the network was preconditioned with."""
        return self.model.sigma_data

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, backbone="
                f"{type(self.model.backbone).__name__}, sigma=[{self.sigma_min:g}, "
                f"{self.sigma_max:g}], parameters={self.num_parameters}, dtype={self.dtype})")

    def check(self, x: Tensor) -> None:
        """Raise ``ValueError`` (one line) when ``x``'s channels are not the network's."""
        if self.channels is not None and (x.dim() < 3 or x.shape[1] != self.channels):
            raise ValueError(f"prior {self.name!r} takes (B, {self.channels}, ...) signals, got "
                             f"{tuple(x.shape)}; give it signals of its own channel count")

    def denoiser(self, x: Tensor, sigma: Tensor) -> Tensor:
        """``D(x, sigma)`` of the network (``sigma`` (B,) within the range), padded as needed."""
        self.check(x)
        padded, spatial = pad_to_multiple(x, self.factor)
        inp = like_weights(padded.to(device=self.device, dtype=self.dtype), self.channels_last)
        out = self.model(inp, sigma.to(device=self.device, dtype=self.dtype))
        if padded is not x:
            out = out[(..., *(slice(0, s) for s in spatial))]
        return out.to(device=x.device, dtype=x.dtype).contiguous()

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        dtype: str = "float32", *, model_dtype: str | None = None,
                        clip: float | None = 1.0, below_floor: str = "score",
                        name: str | None = None, channels_last: bool = True) -> EDMPrior:
        """Load a folder written by :func:`save_edm` (or the trainer's ``parametrisation = "edm"``).

        :param str path: the folder.
        :param str device: where the network runs.
        :param str dtype: the signals' dtype; the network runs in it unless ``model_dtype``.
        :param str model_dtype: the network's dtype (``"float16"``, ``"bfloat16"``, ...).
        :param float clip: Tweedie estimates are clipped to ``[-clip, clip]`` where asked.
        :param str below_floor: the rule below ``sigma_min``.
        :param str name: the prior's name (default: the folder's name).
        :param bool channels_last: run a 2-D backbone channels-last (the default; see the class).
        """
        model = load_edm(path, device, torch_dtype(model_dtype, torch_dtype(dtype)))
        return cls(model, name=name or Path(path).expanduser().resolve().name, clip=clip,
                   below_floor=below_floor, channels_last=channels_last)


def edm_prior(path: str, model_dtype: str | None = None, clip: float = 1.0,
              below_floor: str = "score", device: str = "cpu",
              dtype: str = "float32", channels_last: bool = True) -> EDMPrior:
    """A continuous-noise (EDM-preconditioned) diffusion prior from a folder of
    ``config.json`` + ``model.safetensors`` (see :mod:`pnpkit_priors.edm`).

    :param str path: the checkpoint folder.
    :param str model_dtype: the network's dtype (default: the signals' dtype).
    :param float clip: range of clipped Tweedie estimates.
    :param str below_floor: ``denoise`` below the network's ``sigma_min``: ``"score"`` (the
        score held at sigma_min; D(x, 0) = x) or ``"floor"`` (D at sigma_min).
    :param bool channels_last: run a 2-D backbone with channels-last weights and inputs (faster
        on CPUs, the same result to float rounding); ``false``: the standard layout.
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    return EDMPrior.from_pretrained(path, device=device, dtype=dtype, model_dtype=model_dtype,
                                    clip=clip, below_floor=below_floor,
                                    channels_last=channels_last)
