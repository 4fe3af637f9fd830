"""deepinv denoisers (DRUNet, DiffUNet, TV, any ``deepinv.models`` denoiser) as pnpkit priors.

deepinv's denoisers work on images in [0, 1]; pnpkit's signals are in [-1, 1]. With
:math:`x_{01} = (x + 1)/2` the noise level halves too, so ``denoise(x, sigma)`` calls the
deepinv model on ``((x + 1)/2, sigma/2)`` and maps its output back with :math:`2\\hat x - 1`.

Learned denoisers need their weights as a local file (``weights = "path.pth"`` or
``.safetensors``): nothing is downloaded. deepinv is imported inside the factories.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pnpkit.priors import DenoiserPrior

from .loading import torch_dtype

STATE_DICT_KEYS = ("state_dict", "params_ema", "params", "model", "ema")

#: The two schedule buffers deepinv's DiffUNet computes when it is built and saves in its state
#: dict (its denoising mode maps noise levels to timesteps with them); guided-diffusion's
#: checkpoints (DPS's ``ffhq_10m.pt``, ADM's ImageNet models) do not hold them.
DIFFUNET_BUFFERS = ("sqrt_1m_alphas_cumprod", "sqrt_alphas_cumprod")


class DeepinvDenoiserPrior(DenoiserPrior):
    r"""Any deepinv denoiser ``model(x, sigma)`` (images in [0, 1]) as a pnpkit denoiser prior.

    .. math::

        \mathrm{denoise}(x, \sigma) = 2\, D\!\left(\tfrac{x + 1}{2},\; s\,\tfrac{\sigma}{2}\right) - 1

    where :math:`s` is ``sigma_scale`` (1 for a Gaussian denoiser; for a proximal denoiser such
    as TV, the regularisation weight per unit noise level). The input is cast to the model's
    dtype and the output back to the input's. Each call counts one evaluation in :attr:`nfe`.

    :param torch.nn.Module model: a deepinv denoiser (``deepinv.models.Denoiser``) or any
        callable ``model(x, sigma)`` on [0, 1] images.
    :param float sigma_scale: the factor applied to the [0, 1]-range noise level.
    :param str name: the prior's name in messages.
    """

    def __init__(self, model: Any, sigma_scale: float = 1.0, name: str = "deepinv-denoiser") -> None:
        self.model = model
        self.sigma_scale = float(sigma_scale)
        self.name = name

    def _param(self) -> Tensor | None:
        params = getattr(self.model, "parameters", None)
        return next(iter(params()), None) if callable(params) else None

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Denoise ``x = x0 + sigma n`` (pnpkit range) with the deepinv model.

        :param torch.Tensor x: noisy signals (B, C, H, W) in about [-1, 1].
        :param float, torch.Tensor sigma: the noise level (a number, or one per item, shape (B,)).
        :return: the estimate, like ``x``.
        """
        self.nfe += 1
        p = self._param()
        device, dtype = (p.device, p.dtype) if p is not None else (x.device, x.dtype)
        x01 = ((x + 1) / 2).to(device=device, dtype=dtype)
        if isinstance(sigma, Tensor):
            s01 = (sigma.detach().reshape(-1) / 2 * self.sigma_scale).to(device=device, dtype=dtype)
        else:
            s01 = float(sigma) / 2 * self.sigma_scale
        out = self.model(x01, s01)
        return (2 * out - 1).to(device=x.device, dtype=x.dtype)


def weights_file(weights: str | Path, what: str) -> Path:
    """The weights file, checked to exist (before a large network is built for it).

    :param str weights: the file's path.
    :param str what: the network's description, for messages.
    :raises FileNotFoundError: when the file does not exist.
    """
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what}: weights file {str(path)!r} does not exist")
    return path


def load_weights(model: torch.nn.Module, weights: str | Path, what: str,
                 own: tuple[str, ...] = ()) -> torch.nn.Module:
    """Load a local state dict (``.safetensors``, or ``.pth``/``.pt`` read with ``weights_only``).

    Checkpoints that wrap the state dict under ``"state_dict"``, ``"params_ema"``, ``"params"``,
    ``"model"`` or ``"ema"`` are unwrapped. The load is strict: every key of the network must be
    in the file and the file may hold no other, except the keys named in ``own``, which the
    network computes itself when it is built (a fixed schedule): a file without them keeps the
    network's own values.

    :param torch.nn.Module model: the freshly built network.
    :param str weights: the file.
    :param str what: the network's description, for messages.
    :param tuple own: state-dict keys the file may leave out (e.g. :data:`DIFFUNET_BUFFERS`).
    :raises FileNotFoundError: when the file does not exist.
    :raises ValueError: when its tensors do not fit the network.
    """
    from .loading import load_tensors

    path = weights_file(weights, what)
    state: Any = load_tensors(path)  # tensors only; a refused pickle or a corrupt file is one line
    while isinstance(state, dict) and len(state) == 1 and next(iter(state)) in STATE_DICT_KEYS:
        state = next(iter(state.values()))
    if isinstance(state, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if own and isinstance(state, dict):
        current = model.state_dict()
        state = {**{k: current[k] for k in own if k in current and k not in state}, **state}
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).splitlines()[:3]
        raise ValueError(f"{what}: the weights in {path} do not fit the network (check the "
                         f"channels and sizes settings): {' '.join(first)}") from None
    return model


def _need_weights(what: str, example: str) -> ValueError:
    return ValueError(f"{what} needs its trained weights as a local file: pass weights = "
                      f"\"path/to/{example}\" (.pth or .safetensors). pnpkit never downloads; "
                      "get the file from deepinv's pretrained weights on a machine with network "
                      "access")


def _finish(model: torch.nn.Module, device: str, dtype: str) -> torch.nn.Module:
    model.requires_grad_(False)
    return model.to(device=device, dtype=torch_dtype(dtype)).eval()


def deepinv_denoiser(model: str, weights: str | None = None, sigma_scale: float = 1.0,
                     options: dict[str, Any] | None = None, device: str = "cpu",
                     dtype: str = "float32") -> DeepinvDenoiserPrior:
    """Any denoiser of ``deepinv.models`` by class name, e.g. ``model = "DnCNN"``.

    A learned model (one whose class takes ``pretrained``) is built with ``pretrained=None``
    and loaded from ``weights``; without weights it is refused, since nothing is downloaded.

    :param str model: the class name in ``deepinv.models`` (``"DRUNet"``, ``"DnCNN"``, ``"BM3D"``, ...).
    :param str weights: a local ``.pth`` or ``.safetensors`` state dict.
    :param float sigma_scale: factor on the [0, 1]-range noise level passed to the model.
    :param dict options: keyword arguments of the model's constructor (e.g. ``{in_channels = 1}``).
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    import deepinv

    cls = getattr(deepinv.models, model, None)
    if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
        names = [n for n, c in vars(deepinv.models).items()
                 if isinstance(c, type) and issubclass(c, deepinv.models.Denoiser)]
        close = difflib.get_close_matches(model, names, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"deepinv.models has no denoiser {model!r}.{hint} "
                         f"Denoisers: {', '.join(sorted(names))}")
    kwargs = dict(options or {})
    learned = "pretrained" in inspect.signature(cls).parameters
    if learned:
        if weights is None:
            raise _need_weights(f"deepinv.models.{model}", f"{model.lower()}.pth")
        kwargs["pretrained"] = None
    if weights is not None:
        weights_file(weights, f"deepinv.models.{model}")
    net = cls(**kwargs)
    if weights is not None:
        if not learned and not any(True for _ in net.parameters()):
            raise ValueError(f"deepinv.models.{model} has no weights to load; drop weights =")
        load_weights(net, weights, f"deepinv.models.{model}")
    return DeepinvDenoiserPrior(_finish(net, device, dtype), sigma_scale=sigma_scale,
                                name=model.lower())


def drunet(weights: str | None = None, channels: int = 3,
           nc: tuple[int, int, int, int] = (64, 128, 256, 512), nb: int = 4,
           device: str = "cpu", dtype: str = "float32") -> DeepinvDenoiserPrior:
    """deepinv's DRUNet (the denoiser of DPIR), from a local weights file.

    :param str weights: ``.pth`` or ``.safetensors`` (e.g. deepinv's ``drunet_gray.pth`` for
        ``channels = 1``, ``drunet_deepinv_color_finetune_22k.pth`` for 3).
    :param int channels: image channels (1 or 3).
    :param tuple nc: channels of the four scales (the released weights use the default).
    :param int nb: residual blocks per scale.
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    from deepinv.models import DRUNet

    if weights is None:
        raise _need_weights("DRUNet", "drunet_gray.pth" if channels == 1 else "drunet_color.pth")
    weights_file(weights, "DRUNet")
    net = DRUNet(in_channels=channels, out_channels=channels, nc=tuple(nc), nb=nb,
                 pretrained=None, device="cpu")
    load_weights(net, weights, f"DRUNet(channels={channels})")
    return DeepinvDenoiserPrior(_finish(net, device, dtype), name="drunet")


def diffunet(weights: str | None = None, channels: int = 3, large_model: bool = False,
             num_channels: int | None = None, device: str = "cpu",
             dtype: str = "float32") -> DeepinvDenoiserPrior:
    """deepinv's DiffUNet (the guided-diffusion network of DiffPIR/DPS) used as a denoiser.

    It loads guided-diffusion's checkpoints as they are released, e.g. DPS's ``ffhq_10m.pt``
    (or deepinv's copy, ``diffusion_ffhq_10m.pt``) and ADM's ``256x256_diffusion_uncond.pt``
    with ``large_model = true``: such a file holds every weight but not the two schedule
    buffers deepinv's DiffUNet adds (:data:`DIFFUNET_BUFFERS`), which keep the network's own
    values; any other missing, extra or misshapen key is refused. As a diffusion prior (for
    DCDP, RED-Diff, ProjDiff), the same file loads through the ``adm`` prior.

    :param str weights: ``.pth``/``.pt`` (read with ``torch.load(weights_only=True)``) or
        ``.safetensors`` of the network.
    :param int channels: image channels (3: the output has 6, guided-diffusion's learned variance).
    :param bool large_model: the large ImageNet architecture instead of the FFHQ one.
    :param int num_channels: the base width (None: the released ones, 128 for FFHQ, 256 with
        ``large_model``); another width builds the same architecture narrower or wider, for a
        checkpoint trained so (guided-diffusion's ``--num_channels``).
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    from deepinv.models import DiffUNet

    if weights is None:
        raise _need_weights("DiffUNet", "diffusion_ffhq_10m.pt")
    weights_file(weights, "DiffUNet")
    if num_channels is None:
        net = DiffUNet(in_channels=channels, out_channels=channels, large_model=large_model,
                       pretrained=None)
    else:
        from .adm import ADMUNet, architecture

        # deepinv's two configurations at another width (a DiffUNet, the same forward passes)
        arch = architecture("imagenet256-uncond" if large_model else "ffhq256",
                            num_channels=num_channels, in_channels=channels,
                            learn_sigma=channels == 3)
        net = ADMUNet(arch)
    what = f"DiffUNet(channels={channels}, large_model={large_model}" + (
        f", num_channels={num_channels})" if num_channels is not None else ")")
    load_weights(net, weights, what, own=DIFFUNET_BUFFERS)
    return DeepinvDenoiserPrior(_finish(net, device, dtype), name="diffunet")


def tv(sigma_scale: float = 1.0, n_it_max: int = 100, crit: float = 1e-5, device: str = "cpu",
       dtype: str = "float32") -> DeepinvDenoiserPrior:
    """Total variation (deepinv's ``TVDenoiser``), a classical prior that needs no weights.

    ``denoise(x, sigma)`` solves :math:`\\min_u \\tfrac12\\|u - x_{01}\\|^2 + \\gamma\\,
    \\mathrm{TV}(u)` in the [0, 1] range with :math:`\\gamma = s\\,\\sigma/2`.

    :param float sigma_scale: :math:`s`, the TV weight per unit of [0, 1]-range noise level.
    :param int n_it_max: iterations of the primal-dual TV solver.
    :param float crit: its stopping tolerance.
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline.
    """
    from deepinv.models import TVDenoiser

    return DeepinvDenoiserPrior(TVDenoiser(n_it_max=n_it_max, crit=crit),
                                sigma_scale=sigma_scale, name="tv")
