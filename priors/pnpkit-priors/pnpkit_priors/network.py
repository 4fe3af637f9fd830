"""A diffusers UNet (2-D or 1-D) called on pnpkit signals."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _fmt(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"


class UNetNetwork:
    r"""Call a diffusers ``UNet2DModel`` or ``UNet1DModel`` on pnpkit signals.

    The input is moved to the network's device and dtype and the output comes back in the
    input's, so a half-precision network serves float32 or float64 solvers alike. The shape of
    each signal is checked against the network's configuration before it is run: the number
    of channels always, the spatial size (``sample_size``) unless ``check_size`` is ``False``
    (convolutional networks often run on other sizes). Networks with learned variances
    (``out_channels = 2 * in_channels``) give their first half, the mean prediction.

    :param torch.nn.Module model: a diffusers ``UNet2DModel`` or ``UNet1DModel``.
    :param str name: the prior's name, used in error messages.
    :param bool check_size: whether signals must have the training size.
    :param int class_label: the class of a class-conditional network (required for one).
    :param str what: what the network's inputs are called in messages (``"signals"``, ``"latents"``).
    :param int dims: the number of spatial dimensions; default: 1 for ``UNet1DModel``, else 2.
        A 1-D network is called as ``model(x, t, return_dict=False)``, without class labels.
    """

    def __init__(self, model: torch.nn.Module, name: str, check_size: bool = True,
                 class_label: int | None = None, what: str = "signals",
                 dims: int | None = None) -> None:
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

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def check(self, x: Tensor) -> None:
        """Raise ``ValueError`` when ``x`` (B, C, *spatial) does not fit the network.

        :param torch.Tensor x: a batch of signals.
        """
        got = tuple(int(s) for s in x.shape[1:])
        want = self.shape
        if len(got) != len(want) or got[0] != want[0]:
            hint = ("give it signals of its own kind and channel count (e.g. [data] channels = "
                    f"{want[0]})")
        elif self.check_size and any(w is not None and w != g
                                     for w, g in zip(want[1:], got[1:], strict=True)):
            hint = (f"resize the data (e.g. [data] size = {want[1]}), or pass check_size = false "
                    "to run the convolutional network on other sizes")
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
        inp = x.to(device=device, dtype=dtype)
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
        return out.to(device=x.device, dtype=x.dtype)
