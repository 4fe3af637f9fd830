"""A small 1-D UNet for multi-stem audio, as a diffusers model.

:class:`AudioUNet1DModel` predicts the noise of a (B, C, L) signal at diffusion timestep ``t``:
residual blocks (GroupNorm, SiLU, ``Conv1d`` with kernel 9) that each receive the sinusoidal
time embedding through their own linear layer, strided-convolution down-sampling by a factor
per level (4 per level, 256x over four levels by default), transposed-convolution
up-sampling, skip connections between the two paths and an attention-free bottleneck.

It is a ``diffusers.ModelMixin`` with a registered configuration: ``save_pretrained(folder)``
writes ``config.json`` and ``diffusion_pytorch_model.safetensors``, and
``AudioUNet1DModel.from_pretrained(folder)`` loads them back offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.utils import BaseOutput
from torch import Tensor, nn
from torch.nn import functional as F

#: The network trained for the project's prior: 4 stems, 256x down-sampling, about 2 M parameters.
DEFAULT_CONFIG: dict[str, Any] = dict(
    in_channels=4, out_channels=4, channels=(16, 32, 64, 128, 128), down_factors=(4, 4, 4, 4),
    layers_per_block=1, mid_layers=2, kernel_size=9, norm_num_groups=8, sample_size=16384,
)
#: A bigger network (``pnpkit train-audio-prior --network large``): widths doubled in the first
#: three levels, 192 below; 5.4 M parameters, 21.6 MB of float32 safetensors (under 25 MB).
LARGE_CONFIG: dict[str, Any] = dict(DEFAULT_CONFIG, channels=(32, 64, 128, 192, 192))
#: The networks ``--network`` names.
NETWORKS: dict[str, dict[str, Any]] = {"default": DEFAULT_CONFIG, "large": LARGE_CONFIG}
#: ``time_scale`` of a backbone of EDM's preconditioning: its timestep input is
#: ``c_noise = ln(sigma) / 4``, about -2.3 .. 1.1 for sigma in [1e-4, 80]; times 250 it spans
#: about -580 .. 270, the range of the DDPM timesteps (0 .. 999) the sinusoidal embedding's
#: frequencies were chosen for.
EDM_TIME_SCALE = 250.0


@dataclass
class AudioUNet1DOutput(BaseOutput):
    """The output of :class:`AudioUNet1DModel`.

    :param torch.Tensor sample: the prediction, shaped like the input (B, C, L).
    """

    sample: Tensor


def _resampling_kernel(factor: int) -> tuple[int, int]:
    """Kernel and padding of a (transposed) convolution of stride ``factor`` that maps a length
    ``L`` to exactly ``L / factor`` (or ``L * factor``) with overlapping windows."""
    kernel = 2 * factor - factor % 2
    return kernel, (kernel - factor) // 2


class ResBlock1D(nn.Module):
    r"""A residual block with a time embedding.

    .. math:: h = W_2 * \mathrm{SiLU}(\mathrm{GN}(W_1 * \mathrm{SiLU}(\mathrm{GN}(x)) + P\,e(t)))
              \qquad y = h + S x

    with :math:`W_1, W_2` convolutions of odd kernel size (length kept), :math:`P` a linear map
    of the time embedding :math:`e(t)` broadcast along the length and :math:`S` a 1x1
    convolution when the channel count changes (the identity otherwise).

    :param int in_channels: input channels.
    :param int out_channels: output channels.
    :param int temb_channels: size of the time embedding.
    :param int kernel_size: odd convolution kernel size.
    :param int groups: GroupNorm groups (must divide both channel counts).
    :param float dropout: dropout before the second convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int,
                 kernel_size: int = 9, groups: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, padding=pad)
        self.time = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, padding=pad)
        self.skip = (nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels
                     else nn.Identity())

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        """Apply the block.

        :param torch.Tensor x: features (B, C_in, L).
        :param torch.Tensor temb: the time embedding (B, E), already passed through SiLU.
        :return: features (B, C_out, L).
        """
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class AudioUNet1DModel(ModelMixin, ConfigMixin):
    r"""A 1-D UNet noise predictor :math:`\epsilon_\theta(x_t, t)` for (B, C, L) signals.

    The encoder runs ``layers_per_block`` residual blocks at each resolution and then
    down-samples by ``down_factors[i]`` with a strided convolution (changing the width from
    ``channels[i]`` to ``channels[i + 1]``); the bottleneck runs ``mid_layers`` residual blocks
    at ``channels[-1]``; the decoder mirrors the encoder, up-sampling with a transposed
    convolution and concatenating the encoder's features of the same resolution (the skip
    connection) before its residual blocks. The timestep enters as a sinusoidal embedding, a
    two-layer MLP, and a per-block linear projection added inside every residual block, as
    in DDPM (Ho et al., 2020). There is no attention (too slow on a CPU at these lengths):
    with the default configuration the convolutions alone see 11,948 samples (1.5 s at
    8 kHz) around each output, and GroupNorm's statistics span the whole segment.

    The signal length must be a multiple of the product of ``down_factors``.

    :param int in_channels: input channels (4 stems stacked as channels for the multi-source prior).
    :param int out_channels: output channels (the noise of each input channel).
    :param tuple channels: the width at each resolution, ``len(down_factors) + 1`` values,
        the last being the bottleneck's.
    :param tuple down_factors: the down-sampling factor of each level.
    :param int layers_per_block: residual blocks per resolution (encoder and decoder alike).
    :param int mid_layers: residual blocks in the bottleneck.
    :param int kernel_size: odd kernel size of the convolutions.
    :param int norm_num_groups: GroupNorm groups; must divide every width.
    :param int time_embedding_dim: width of the time embedding (default ``4 * channels[0]``).
    :param float dropout: dropout inside the residual blocks.
    :param int sample_size: the length it was trained on (information only: any valid length runs).
    :param float time_scale: the timestep is multiplied by this before its sinusoidal embedding
        (1 for DDPM timesteps; :data:`EDM_TIME_SCALE` for EDM's ``c_noise = ln(sigma) / 4``).

    |sep|

    :Example:

    >>> import torch
    >>> from pnpkit_audio.network import AudioUNet1DModel
    >>> net = AudioUNet1DModel(channels=(8, 16, 16), down_factors=(4, 4))
    >>> net(torch.zeros(2, 4, 64), torch.tensor([10, 500])).sample.shape
    torch.Size([2, 4, 64])
    """

    @register_to_config
    def __init__(self, in_channels: int = 4, out_channels: int = 4,
                 channels: Sequence[int] = DEFAULT_CONFIG["channels"],
                 down_factors: Sequence[int] = DEFAULT_CONFIG["down_factors"],
                 layers_per_block: int = 1, mid_layers: int = 2, kernel_size: int = 9,
                 norm_num_groups: int = 8, time_embedding_dim: int | None = None,
                 dropout: float = 0.0, sample_size: int | None = None,
                 time_scale: float = 1.0) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        down_factors = tuple(int(f) for f in down_factors)
        if len(channels) != len(down_factors) + 1:
            raise ValueError(f"channels needs one width per resolution, len(down_factors) + 1 = "
                             f"{len(down_factors) + 1} values, got {len(channels)}: {channels}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (the length is kept), got {kernel_size}")
        if any(f < 1 for f in down_factors):
            raise ValueError(f"down_factors must be positive integers, got {down_factors}")
        bad = [c for c in channels if c % norm_num_groups]
        if bad:
            raise ValueError(f"every width must be a multiple of norm_num_groups = "
                             f"{norm_num_groups}; {bad} are not")
        temb = int(time_embedding_dim or 4 * channels[0])
        self._freq_dim = channels[0]
        self.time_mlp = nn.Sequential(nn.Linear(channels[0], temb), nn.SiLU(),
                                      nn.Linear(temb, temb))

        def block(cin: int, cout: int) -> ResBlock1D:
            return ResBlock1D(cin, cout, temb, kernel_size, norm_num_groups, dropout)

        self.conv_in = nn.Conv1d(in_channels, channels[0], kernel_size, padding=kernel_size // 2)
        self.down_blocks = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        for i, factor in enumerate(down_factors):
            self.down_blocks.append(nn.ModuleList(block(channels[i], channels[i])
                                                  for _ in range(layers_per_block)))
            k, p = _resampling_kernel(factor)
            self.downsamplers.append(nn.Conv1d(channels[i], channels[i + 1], k, stride=factor,
                                               padding=p))
        self.mid_blocks = nn.ModuleList(block(channels[-1], channels[-1])
                                        for _ in range(mid_layers))
        self.upsamplers = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i, factor in reversed(list(enumerate(down_factors))):
            k, p = _resampling_kernel(factor)
            self.upsamplers.append(nn.ConvTranspose1d(channels[i + 1], channels[i], k,
                                                      stride=factor, padding=p))
            self.up_blocks.append(nn.ModuleList(
                block(2 * channels[i] if j == 0 else channels[i], channels[i])
                for j in range(max(1, layers_per_block))))
        self.norm_out = nn.GroupNorm(norm_num_groups, channels[0])
        self.conv_out = nn.Conv1d(channels[0], out_channels, kernel_size, padding=kernel_size // 2)

    @property
    def total_factor(self) -> int:
        """The product of the down-sampling factors: signal lengths must be multiples of it."""
        return math.prod(self.config.down_factors)

    def check_input(self, sample: Tensor) -> None:
        """Raise ``ValueError`` unless ``sample`` is a (B, in_channels, L) batch of a valid length.

        :param torch.Tensor sample: the network input.
        """
        c = self.config.in_channels
        if sample.dim() != 3 or sample.shape[1] != c:
            raise ValueError(f"{type(self).__name__} takes (B, {c}, L) signals, got "
                             f"{tuple(sample.shape)}")
        n, f = int(sample.shape[-1]), self.total_factor
        if n == 0 or n % f:
            lower, upper = (n // f) * f, (n // f + 1) * f
            near = f"{lower} or {upper}" if lower else f"{upper}"
            raise ValueError(
                f"signal length {n} is not a multiple of {f}, the network's total down-sampling "
                f"factor ({' x '.join(map(str, self.config.down_factors))}); lengths that work: "
                f"{f}, {2 * f}, {3 * f}, ... (the nearest: {near}); pad or crop the signal")

    def forward(self, sample: Tensor, timestep: Tensor | float | int,
                return_dict: bool = True) -> AudioUNet1DOutput | tuple[Tensor]:
        """Predict the noise of ``sample`` at ``timestep``.

        :param torch.Tensor sample: noisy signals (B, in_channels, L), L a multiple of
            :attr:`total_factor`.
        :param torch.Tensor timestep: one timestep for the batch (a number or 0-d tensor) or one
            per item (shape (B,)).
        :param bool return_dict: return an :class:`AudioUNet1DOutput` (else a 1-tuple).
        :return: the prediction, (B, out_channels, L).
        """
        self.check_input(sample)
        t = torch.as_tensor(timestep, device=sample.device)
        if t.dim() == 0:
            t = t.expand(sample.shape[0])
        if t.shape != (sample.shape[0],):
            raise ValueError(f"timestep must be a number or have shape ({sample.shape[0]},), got "
                             f"{tuple(t.shape)}")
        t = t.float()
        if self.config.time_scale != 1.0:
            t = t * float(self.config.time_scale)
        freqs = get_timestep_embedding(t, self._freq_dim, flip_sin_to_cos=True,
                                       downscale_freq_shift=0)
        temb = F.silu(self.time_mlp(freqs.to(sample.dtype)))

        h = self.conv_in(sample)
        skips = []
        for blocks, down in zip(self.down_blocks, self.downsamplers, strict=True):
            for blk in blocks:
                h = blk(h, temb)
            skips.append(h)
            h = down(h)
        for blk in self.mid_blocks:
            h = blk(h, temb)
        for up, blocks in zip(self.upsamplers, self.up_blocks, strict=True):
            h = torch.cat([up(h), skips.pop()], dim=1)
            for blk in blocks:
                h = blk(h, temb)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return AudioUNet1DOutput(sample=out) if return_dict else (out,)
