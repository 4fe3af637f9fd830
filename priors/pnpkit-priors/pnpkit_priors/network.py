"""A diffusers UNet (2-D or 1-D) called on pnpkit signals."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

#: diffusers' halving layers, counted in a 1-D network (whose blocks down-sample in several ways).
_HALVING_1D = ("Downsample1D", "Downsample1d")


def _fmt(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"


def down_factor(model: torch.nn.Module) -> int:
    """The network's total down-sampling factor: its inputs' sizes must be multiples of it.

    A model's own ``total_factor`` when it has one (pnpkit-audio's network); for a
    ``UNet2DModel``, :math:`2^{n-1}` with :math:`n` the entries of ``block_out_channels``
    (every block but the last halves the size); for another network, 2 to the number of
    diffusers' halving layers in it.

    :param torch.nn.Module model: a diffusers UNet.
    """
    total = getattr(model, "total_factor", None)
    if total is not None:
        return int(total)
    if type(model).__name__ == "UNet2DModel":
        return 2 ** (len(model.config["block_out_channels"]) - 1)
    return 2 ** sum(type(m).__name__ in _HALVING_1D for m in model.modules())


def pad_to_multiple(x: Tensor, factor: int) -> tuple[Tensor, tuple[int, ...]]:
    """Pad ``x`` (B, C, *spatial) at the end of each spatial axis to the next multiple of ``factor``.

    By reflection, so that the padded border continues the picture instead of framing it
    (by replication where an axis is too short to reflect, shorter than the padding + 1).

    :param torch.Tensor x: a batch of signals, 1-D or 2-D.
    :param int factor: the multiple.
    :return: the padded signals and the original spatial shape, to crop back to.

    >>> x = torch.arange(5.0).view(1, 1, 5)
    >>> pad_to_multiple(x, 4)[0].tolist()
    [[[0.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]]]
    """
    spatial = tuple(int(s) for s in x.shape[2:])
    extra = [(-s) % factor for s in spatial]
    if not any(extra):
        return x, spatial
    mode = "reflect" if all(e < s for e, s in zip(extra, spatial, strict=True)) else "replicate"
    pads: list[int] = []
    for e in reversed(extra):  # F.pad lists the last axis first
        pads += [0, e]
    return F.pad(x, pads, mode=mode), spatial


def to_channels_last(model: torch.nn.Module) -> bool:
    """Store a 2-D network's weights channels-last (NHWC), in place; a network with no 4-D
    weight (a 1-D one) is left as it is.

    Its inputs must then be channels-last too (:func:`like_weights`). On this project's CPU a
    call of the grey64 prior on a 512 x 512 picture takes 0.77x the time in float32 (the same
    result to 3e-6) and 0.3x with bfloat16 autocast on top; networks whose time goes to
    attention (the 32 presets at 512) gain nothing.

    :param torch.nn.Module model: the network.
    :return: whether the weights were converted.
    """
    if not any(p.dim() == 4 for p in model.parameters()):
        return False
    model.to(memory_format=torch.channels_last)
    return True


def like_weights(x: Tensor, channels_last: bool) -> Tensor:
    """``x`` in the memory format of a network's weights: channels-last for a 4-D ``x`` when
    ``channels_last`` (see :func:`to_channels_last`), else ``x`` itself."""
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def state_mismatch(state: dict[str, Tensor],
                   want: dict[str, Tensor]) -> tuple[list[str], list[str], list[str]]:
    """How a checkpoint's tensors differ from a network's state dict: the keys ``want`` has and
    ``state`` lacks, those ``state`` has and ``want`` lacks, and those of both whose shapes
    differ, each in its dict's order (all empty: the checkpoint fits).

    >>> state_mismatch({"a": torch.zeros(2), "c": torch.zeros(1)}, {"a": torch.zeros(3), "b": torch.zeros(1)})
    (['b'], ['c'], ['a'])
    """
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    shapes = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    return missing, extra, shapes


class ModelFacts:
    """``device``, ``dtype`` and ``num_parameters`` of the network held as ``self.model``."""

    model: Any  #: the network (a torch module; Any: its config and call vary)

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the network's weights."""
        return next(self.model.parameters()).dtype

    @property
    def num_parameters(self) -> int:
        """The number of parameters of the network."""
        return sum(p.numel() for p in self.model.parameters())


class UNetNetwork(ModelFacts):
    r"""Call a diffusers ``UNet2DModel`` or ``UNet1DModel`` on pnpkit signals.

    The input is moved to the network's device and dtype and the output comes back in the
    input's, so a half-precision network serves float32 or float64 solvers alike. The shape of
    each signal is checked against the network's configuration before it is run: the number
    of channels always, the spatial size (``sample_size``) unless ``check_size`` is ``False``
    (convolutional networks often run on other sizes). Networks with learned variances
    (``out_channels = 2 * in_channels``) give their first half, the mean prediction.

    A signal whose size is not a multiple of the network's total down-sampling factor
    (:attr:`factor`, 4 for the project's image priors) is padded by reflection at its end to
    the next multiple, run, and cropped back (:func:`pad_to_multiple`); at a multiple it goes
    through unchanged. So with ``check_size = False`` a convolutional network runs at any size:
    ``eps``, Tweedie estimates and ``denoise`` of a 37 x 50 picture are 37 x 50.

    :param torch.nn.Module model: a diffusers ``UNet2DModel`` or ``UNet1DModel``.
    :param str name: the prior's name, used in error messages.
    :param bool check_size: whether signals must have the training size.
    :param int class_label: the class of a class-conditional network (required for one).
    :param str what: what the network's inputs are called in messages (``"signals"``, ``"latents"``).
    :param int dims: the number of spatial dimensions; default: 1 for ``UNet1DModel``, else 2.
        A 1-D network is called as ``model(x, t, return_dict=False)``, without class labels.
    :param bool channels_last: store a 2-D network's weights channels-last and call it on
        channels-last inputs (:func:`to_channels_last`; the output comes back in the standard
        layout). Converts ``model`` in place.
    """

    def __init__(self, model: torch.nn.Module, name: str, check_size: bool = True,
                 class_label: int | None = None, what: str = "signals",
                 dims: int | None = None, channels_last: bool = False) -> None:
        self.model = model
        self.name = name
        self.check_size = check_size
        self.what = what
        config = model.config
        if dims is None:
            dims = 1 if type(model).__name__ == "UNet1DModel" else 2
        self.is_1d = dims == 1
        size = config.get("sample_size")
        if size is None or isinstance(size, int):
            size = (size,) * dims
        self.shape: tuple[int | None, ...] = (int(config["in_channels"]), *size)
        self.out_channels = int(config.get("out_channels") or config["in_channels"])
        conditional = not self.is_1d and (config.get("num_class_embeds") is not None
                                          or config.get("class_embed_type") is not None)
        if conditional and class_label is None:
            raise ValueError(f"prior {name!r} is class-conditional "
                             f"({config.get('num_class_embeds')} classes): pass class_label = N")
        self.class_label = class_label if conditional else None
        #: Inputs are padded to multiples of this (the total down-sampling factor).
        self.factor = down_factor(model)
        #: Whether the network runs channels-last (2-D networks only).
        self.channels_last = not self.is_1d and channels_last and to_channels_last(model)

    @property
    def fixed_shape(self) -> tuple[int, ...] | None:
        """The training size when signals are checked against it (``check_size``), else ``None``."""
        spatial = self.shape[1:]
        if not self.check_size or any(s is None for s in spatial):
            return None
        return tuple(int(s) for s in spatial if s is not None)

    def check(self, x: Tensor) -> None:
        """Raise ``ValueError`` when ``x`` (B, C, *spatial) does not fit the network.

        :param torch.Tensor x: a batch of signals.
        """
        got = tuple(int(s) for s in x.shape[1:])
        want = self.shape
        if len(got) != len(want) or got[0] != want[0]:
            # [data] channels converts pictures only: 1 = grey, 3 = colour.
            hint = (f"give it {'grey' if want[0] == 1 else 'colour'} pictures ([data] channels = "
                    f"{want[0]})" if self.what == "signals" and len(want) == 3 and want[0] in (1, 3)
                    else f"give it {self.what} of its own kind and channel count ({want[0]})")
        elif self.check_size and any(w is not None and w != g
                                     for w, g in zip(want[1:], got[1:], strict=True)):
            hint = (f"resize the data (e.g. [data] size = {want[1]}), set [prior] check_size = "
                    "false to run a convolutional network at any size (padded to a multiple of "
                    f"{self.factor} and cropped back), or [prior] tile = {want[1]} to run it on "
                    "tiles of its own size")
        else:
            return
        raise ValueError(f"prior {self.name!r} was trained on {_fmt(want)} {self.what} but got "
                         f"{_fmt(got)}; {hint}")

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        """The raw network output for ``x`` at timesteps ``t`` (shape (B,)).

        :param torch.Tensor x: the network input, (B, C, *spatial).
        :param torch.Tensor t: the timestep input of each item, shape (B,).
        :return: the output, shaped and typed like ``x``.
        """
        self.check(x)
        device, dtype = self.device, self.dtype
        padded, spatial = pad_to_multiple(x, self.factor)
        inp = like_weights(padded.to(device=device, dtype=dtype), self.channels_last)
        t = t.to(device)
        if self.is_1d:
            out = self.model(inp, t, return_dict=False)[0]
        else:
            labels = None
            if self.class_label is not None:
                labels = torch.full((x.shape[0],), int(self.class_label), device=device,
                                    dtype=torch.long)
            out = self.model(inp, t, class_labels=labels, return_dict=False)[0]
        channels = x.shape[1]
        if out.shape[1] == 2 * channels:
            out = out[:, :channels]
        if padded is not x:
            out = out[(..., *(slice(0, s) for s in spatial))]
        return out.to(device=x.device, dtype=x.dtype).contiguous()
