r"""OpenAI guided-diffusion (ADM) checkpoints as pnpkit diffusion priors.

DPS, DiffPIR and the DCDP paper run on two checkpoints of this family: the FFHQ 256 model that
DPS released (``ffhq_10m.pt``) and ADM's ImageNet 256 unconditional model
(``256x256_diffusion_uncond.pt``). Both are plain state dicts of guided-diffusion's
``UNetModel`` trained with a learned variance: the network outputs :math:`2C` channels, the
noise prediction :math:`\epsilon` in the first :math:`C` and the variance interpolation in the
rest, which pnpkit's solvers do not use (they are dropped). The schedule is the linear one of
DDPM, :math:`\beta_t` from :math:`10^{-4}` to :math:`2\cdot10^{-2}` over 1000 steps.

The network is deepinv's :class:`~deepinv.models.DiffUNet`, guided-diffusion's architecture
whose parameters carry guided-diffusion's names, so those state dicts load as they are.
deepinv builds two fixed configurations (FFHQ's and ImageNet's); :class:`ADMUNet` is a
``DiffUNet`` built from any guided-diffusion architecture flags, out of deepinv's own blocks,
so presets, explicit settings and reduced widths (the tests') all make the same network.

The presets (:data:`PRESETS`) hold guided-diffusion's model flags for each released
checkpoint; explicit settings (the same flags, by the same names) override them or, without a
preset, guided-diffusion's defaults (:data:`FLAG_DEFAULTS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from deepinv.models import DiffUNet
from deepinv.models import diffunet as blocks
from torch import Tensor, nn

from pnpkit.priors import DiffusionPrior, linear_alphas_cumprod

from .diffusion import MemoryCheck
from .network import ModelFacts, pad_to_multiple, state_mismatch

#: guided-diffusion's number of ImageNet classes (``class_cond = True``).
NUM_CLASSES = 1000


@dataclass(frozen=True)
class ADMArchitecture:
    """guided-diffusion's model and diffusion flags (``script_util.py``'s names and meanings).

    :param int image_size: the training size; it places ``attention_resolutions`` and picks
        the default ``channel_mult``.
    :param int num_channels: base width (128 for FFHQ 256, 256 for ImageNet 256).
    :param int num_res_blocks: residual blocks per resolution.
    :param tuple attention_resolutions: the feature-map sizes with self-attention (``(16,)``,
        or ``(32, 16, 8)``), as guided-diffusion's ``"32,16,8"``.
    :param tuple channel_mult: width multipliers per level (``()``: guided-diffusion's
        default for ``image_size``).
    :param int num_heads: attention heads, where ``num_head_channels`` is -1.
    :param int num_head_channels: channels per head (-1: ``num_heads`` heads).
    :param int num_heads_upsample: heads of the decoder's attention (-1: ``num_heads``).
    :param bool use_scale_shift_norm: FiLM-like conditioning of the residual blocks.
    :param bool resblock_updown: residual blocks that resample (instead of plain layers).
    :param bool use_new_attention_order: split q, k, v before the heads.
    :param bool class_cond: class-conditional (1000 ImageNet classes).
    :param bool learn_sigma: the network outputs twice the channels (epsilon and variance).
    :param int in_channels: image channels.
    :param int diffusion_steps: the schedule's length.
    :param str noise_schedule: ``"linear"`` (DDPM's, rescaled to ``diffusion_steps``) or
        ``"cosine"`` (improved DDPM's).
    """

    image_size: int = 64
    num_channels: int = 128
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16, 8)
    channel_mult: tuple[float, ...] = ()
    num_heads: int = 4
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = True
    resblock_updown: bool = False
    use_new_attention_order: bool = False
    class_cond: bool = False
    learn_sigma: bool = False
    in_channels: int = 3
    diffusion_steps: int = 1000
    noise_schedule: str = "linear"

    @property
    def mult(self) -> tuple[float, ...]:
        """The width multipliers: ``channel_mult``, or guided-diffusion's default for the size."""
        if self.channel_mult:
            return tuple(self.channel_mult)
        defaults = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4),
                    64: (1, 2, 3, 4), 32: (1, 2, 2, 2)}
        if self.image_size not in defaults:
            raise ValueError(f"adm: no default channel_mult for image_size {self.image_size}; "
                             f"use one of {', '.join(map(str, defaults))} or give channel_mult "
                             "(e.g. channel_mult = [1, 2, 2, 4])")
        return defaults[self.image_size]

    @property
    def factor(self) -> int:
        """The network's total down-sampling: every level but the last halves the size."""
        return 2 ** (len(self.mult) - 1)

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)

    def alphas_cumprod(self) -> Tensor:
        r"""``abar_t`` of the schedule (float64), as guided-diffusion computes its betas."""
        steps = int(self.diffusion_steps)
        if self.noise_schedule == "linear":
            scale = 1000 / steps
            return linear_alphas_cumprod(steps, scale * 1e-4, scale * 0.02)
        if self.noise_schedule == "cosine":
            def abar(s: float) -> float:
                return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

            betas = [min(1 - abar((i + 1) / steps) / abar(i / steps), 0.999) for i in range(steps)]
            return torch.cumprod(1 - torch.tensor(betas, dtype=torch.float64), dim=0)
        raise ValueError(f"adm: noise_schedule must be 'linear' or 'cosine', got "
                         f"{self.noise_schedule!r}")

    def describe(self) -> str:
        """The flags that differ from guided-diffusion's defaults, for messages."""
        base = ADMArchitecture()
        parts = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                 if getattr(self, f.name) != getattr(base, f.name)]
        return ", ".join(parts)


#: guided-diffusion's defaults (``model_and_diffusion_defaults``), under explicit settings.
FLAG_DEFAULTS = ADMArchitecture()

#: The released checkpoints' flags.
PRESETS: dict[str, ADMArchitecture] = {
    # DPS's FFHQ 256 model (ffhq_10m.pt): its configs/model_config.yaml.
    "ffhq256": ADMArchitecture(image_size=256, num_channels=128, num_res_blocks=1,
                               attention_resolutions=(16,), num_heads=4, num_head_channels=64,
                               resblock_updown=True, learn_sigma=True),
    # ADM's ImageNet 256 unconditional model (256x256_diffusion_uncond.pt): its README's flags.
    "imagenet256-uncond": ADMArchitecture(image_size=256, num_channels=256, num_res_blocks=2,
                                          attention_resolutions=(32, 16, 8), num_head_channels=64,
                                          resblock_updown=True, learn_sigma=True),
    # ADM's class-conditional ImageNet 256 model (256x256_diffusion.pt): class_label needed.
    "imagenet256": ADMArchitecture(image_size=256, num_channels=256, num_res_blocks=2,
                                   attention_resolutions=(32, 16, 8), num_head_channels=64,
                                   resblock_updown=True, learn_sigma=True, class_cond=True),
}


def _resolutions(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        return tuple(int(v) for v in value.split(",") if v.strip())
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def architecture(preset: str | None = None, **flags: Any) -> ADMArchitecture:
    """A preset's flags with ``flags`` over them (guided-diffusion's defaults without a preset).

    :param str preset: ``"ffhq256"``, ``"imagenet256-uncond"`` or ``"imagenet256"``.
    :param flags: :class:`ADMArchitecture` fields; ``None`` values are ignored.
    :raises ValueError: for an unknown preset or flag.

    >>> architecture("ffhq256").num_channels, architecture("ffhq256", num_channels=32).num_channels
    (128, 32)
    >>> architecture(attention_resolutions="32,16,8").attention_resolutions
    (32, 16, 8)
    """
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"adm: unknown preset {preset!r}; presets: {', '.join(PRESETS)} (or no "
                         "preset and the architecture's flags, e.g. num_channels = 128)")
    base = PRESETS[preset] if preset is not None else FLAG_DEFAULTS
    names = {f.name for f in fields(ADMArchitecture)}
    given = {k: v for k, v in flags.items() if v is not None}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValueError(f"adm: unknown architecture flag(s) {', '.join(unknown)}; flags: "
                         f"{', '.join(sorted(names))}")
    if "attention_resolutions" in given:
        given["attention_resolutions"] = _resolutions(given["attention_resolutions"])
    if "channel_mult" in given:
        value = given["channel_mult"]
        given["channel_mult"] = (tuple(float(v) for v in value.split(",") if v.strip())
                                 if isinstance(value, str) else tuple(float(v) for v in value))
    return replace(base, **given)


class ADMUNet(DiffUNet):
    """guided-diffusion's ``UNetModel`` of ``arch``: a deepinv ``DiffUNet`` of any width.

    Its forward passes (``forward_diffusion(x, t, y)``, ``forward``) are deepinv's, its blocks
    deepinv's ``ResBlock``/``AttentionBlock``/``TimestepEmbedSequential``, assembled as
    guided-diffusion assembles them for ``arch``, with guided-diffusion's parameter names.
    With the flags of :data:`PRESETS` ``["ffhq256"]`` and ``["imagenet256-uncond"]`` it has
    exactly the parameters of ``DiffUNet(large_model=False)`` and ``DiffUNet(large_model=True)``.
    Unlike deepinv's, its schedule buffers are not saved in its state dict, so it matches
    guided-diffusion's checkpoints key for key.

    :param ADMArchitecture arch: the architecture's flags.
    """

    def __init__(self, arch: ADMArchitecture) -> None:
        nn.Module.__init__(self)
        mult = arch.mult
        ch0 = arch.num_channels
        heads_up = arch.num_heads if arch.num_heads_upsample == -1 else arch.num_heads_upsample
        # the feature-map sizes with attention, as down-sampling factors
        attn_ds = {arch.image_size // r for r in arch.attention_resolutions}
        self.arch = arch
        self.img_size = arch.image_size
        self.in_channels = arch.in_channels
        self.model_channels = ch0
        self.out_channels = arch.out_channels
        self.num_res_blocks = arch.num_res_blocks
        self.attention_resolutions = tuple(sorted(attn_ds))
        self.channel_mult = mult
        self.num_classes = NUM_CLASSES if arch.class_cond else None
        self.dtype = torch.float32
        emb = 4 * ch0
        self.time_embed = nn.Sequential(nn.Linear(ch0, emb), nn.SiLU(), nn.Linear(emb, emb))
        if self.num_classes is not None:
            self.label_emb = nn.Embedding(self.num_classes, emb)

        def res(cin: int, cout: int | None = None, **kw: Any) -> Any:
            return blocks.ResBlock(cin, emb, 0.0, out_channels=cout, dims=2,
                            use_scale_shift_norm=arch.use_scale_shift_norm, **kw)

        def attn(channels: int, heads: int) -> Any:
            return blocks.AttentionBlock(channels, num_heads=heads,
                                  num_head_channels=arch.num_head_channels,
                                  use_new_attention_order=arch.use_new_attention_order)

        def resample(channels: int, down: bool) -> Any:
            if arch.resblock_updown:
                return res(channels, channels, down=down, up=not down)
            return (blocks.Downsample(channels, True, dims=2) if down
                    else blocks.Upsample(channels, True, dims=2))

        first = int(mult[0] * ch0)
        self.input_blocks = nn.ModuleList(
            [blocks.TimestepEmbedSequential(nn.Conv2d(arch.in_channels, first, 3, padding=1))])
        skips, ch, ds = [first], first, 1
        for level, m in enumerate(mult):
            for _ in range(arch.num_res_blocks):
                layers = [res(ch, int(m * ch0))]
                ch = int(m * ch0)
                if ds in attn_ds:
                    layers.append(attn(ch, arch.num_heads))
                self.input_blocks.append(blocks.TimestepEmbedSequential(*layers))
                skips.append(ch)
            if level < len(mult) - 1:
                self.input_blocks.append(blocks.TimestepEmbedSequential(resample(ch, down=True)))
                skips.append(ch)
                ds *= 2
        self.middle_block = blocks.TimestepEmbedSequential(res(ch), attn(ch, arch.num_heads), res(ch))
        self.output_blocks = nn.ModuleList()
        for level, m in reversed(list(enumerate(mult))):
            for i in range(arch.num_res_blocks + 1):
                layers = [res(ch + skips.pop(), int(m * ch0))]
                ch = int(m * ch0)
                if ds in attn_ds:
                    layers.append(attn(ch, heads_up))
                if level and i == arch.num_res_blocks:
                    layers.append(resample(ch, down=False))
                    ds //= 2
                self.output_blocks.append(blocks.TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(blocks.normalization(ch), nn.SiLU(),
                                 blocks.zero_module(nn.Conv2d(first, arch.out_channels, 3, padding=1)))
        # deepinv's denoising mode reads these; not part of guided-diffusion's checkpoints
        low, high = self.get_alpha_prod()[-2:]
        self.register_buffer("sqrt_1m_alphas_cumprod", low, persistent=False)
        self.register_buffer("sqrt_alphas_cumprod", high, persistent=False)



# -- checkpoints --------------------------------------------------------------------------------

#: Containers a training script may wrap a state dict in.
_WRAPPERS = ("state_dict", "model", "ema", "params_ema", "module")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The state dict in a ``.pt``/``.pth`` file (``torch.load(weights_only=True)``) or ``.safetensors``.

    A dict under ``"state_dict"``, ``"model"`` or ``"ema"`` is unwrapped and a ``"module."``
    prefix (a ``DataParallel`` save) is dropped.

    :param str path: the checkpoint file.
    :raises FileNotFoundError: for a missing file or a folder.
    :raises ValueError: for a file that holds no state dict.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a folder" if file.is_dir() else "does not exist"
        raise FileNotFoundError(f"adm checkpoint {str(file)!r} {what}; give the checkpoint file, "
                                "e.g. path = \"models/ffhq_10m.pt\" (.pt or .safetensors)")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(file))
    else:
        try:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as exc:  # pickled objects other than tensors, or not a torch file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"adm: {file} does not load as a state dict of tensors "
                             f"(torch.load(weights_only=True): {first}); save the network's "
                             "state_dict() alone, or convert it to .safetensors") from None
    for key in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"adm: {file} holds no state dict of tensors; expected guided-diffusion's "
                         "checkpoint (the UNetModel's state_dict(), as ffhq_10m.pt)")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return dict(state)


def infer_flags(state: dict[str, Tensor]) -> dict[str, Any]:
    """What a guided-diffusion state dict says of its architecture: width, channels, classes.

    >>> infer_flags({"input_blocks.0.0.weight": torch.zeros(128, 3, 3, 3),
    ...              "out.2.weight": torch.zeros(6, 128, 3, 3)})
    {'num_channels': 128, 'in_channels': 3, 'learn_sigma': True, 'class_cond': False}
    """
    out: dict[str, Any] = {}
    first = state.get("input_blocks.0.0.weight")
    last = state.get("out.2.weight")
    if first is not None and first.dim() == 4:
        out["in_channels"] = int(first.shape[1])
    time = state.get("time_embed.0.weight")
    if time is not None and time.dim() == 2:
        out = {"num_channels": int(time.shape[1]), **out}
    elif first is not None and first.dim() == 4:
        out = {"num_channels": int(first.shape[0]), **out}
    if last is not None and first is not None:
        out["learn_sigma"] = int(last.shape[0]) == 2 * int(first.shape[1])
    out["class_cond"] = "label_emb.weight" in state
    return out


def check_state(state: dict[str, Tensor], net: torch.nn.Module, source: str,
                arch: ADMArchitecture, preset: str | None) -> None:
    """Raise one line when ``state`` is not the state dict of ``net`` (keys and shapes).

    :param dict state: the checkpoint's tensors.
    :param torch.nn.Module net: the network built for ``arch``.
    :param str source: the checkpoint's path, for the message.
    :param ADMArchitecture arch: the flags the network was built with.
    :param str preset: the preset asked for (or None).
    :raises ValueError: naming the first mismatches and the flags the checkpoint implies.
    """
    want = net.state_dict()
    missing, extra, shapes = state_mismatch(state, want)
    if not (missing or extra or shapes):
        return
    found = infer_flags(state)
    differ = {k: v for k, v in found.items() if getattr(arch, k) != v}
    if differ:
        fix = ("the checkpoint has " + ", ".join(f"{k} = {str(v).lower()}" for k, v in differ.items())
               + f" but {'the preset ' + repr(preset) + ' says' if preset else 'the settings say'} "
               + ", ".join(f"{k} = {str(getattr(arch, k)).lower()}" for k in differ)
               + "; set those in [prior]" + (" or pick the matching preset" if preset else ""))
    else:
        fix = ("check num_res_blocks, attention_resolutions, channel_mult and num_head_channels "
               f"against the checkpoint's training flags (presets: {', '.join(PRESETS)})")
    detail = []
    if missing:
        detail.append(f"{len(missing)} missing ({missing[0]}, ...)")
    if extra:
        detail.append(f"{len(extra)} unexpected ({extra[0]}, ...)")
    if shapes:
        k = shapes[0]
        detail.append(f"{len(shapes)} of another shape ({k}: {tuple(state[k].shape)} in the file, "
                      f"{tuple(want[k].shape)} in the network)")
    raise ValueError(f"adm: {source} does not fit the architecture ({arch.describe()}): "
                     f"{'; '.join(detail)} parameters; {fix}")


# -- the prior -----------------------------------------------------------------------------------


class ADMPrior(ModelFacts, DiffusionPrior):
    r"""A guided-diffusion (ADM) network and its schedule as a pnpkit diffusion prior.

    ``network(x_t, t)`` is :math:`\epsilon_\theta(x_t, t)`: the first :math:`C` of the
    :math:`2C` output channels of a learned-variance model (the variance channels are dropped).
    The network runs in float32 on its device; signals of another dtype are cast to it and
    the outputs back. A signal whose size is not a multiple of the network's down-sampling
    (32 for the 256 models) is reflect-padded and cropped back.

    :param torch.nn.Module model: an :class:`ADMUNet` with its weights.
    :param ADMArchitecture arch: its flags (the schedule comes from them).
    :param str name: the prior's name in messages.
    :param float clip: Tweedie estimates are clipped to ``[-clip, clip]`` where solvers ask.
    :param bool check_size: whether signals must be ``image_size`` square.
    :param int class_label: the class of a class-conditional model (0 to 999).
    """

    def __init__(self, model: torch.nn.Module, arch: ADMArchitecture, name: str = "adm",
                 clip: float | None = 1.0, check_size: bool = True,
                 class_label: int | None = None) -> None:
        super().__init__(arch.alphas_cumprod(), prediction_type="epsilon", clip=clip)
        self.model = model
        self.arch = arch
        self.name = name
        self.check_size = check_size
        if arch.class_cond and class_label is None:
            raise ValueError(f"prior {name!r} is class-conditional ({NUM_CLASSES} ImageNet "
                             "classes): pass class_label = N (0 to 999)")
        if class_label is not None and not arch.class_cond:
            raise ValueError(f"prior {name!r} is not class-conditional: remove class_label (or "
                             "use a class-conditional checkpoint with class_cond = true)")
        if class_label is not None and not 0 <= int(class_label) < NUM_CLASSES:
            raise ValueError(f"class_label must be 0 to {NUM_CLASSES - 1}, got {class_label}")
        self.class_label = None if class_label is None else int(class_label)
        self.memory = MemoryCheck(model, name, self._meta_call)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The (C, H, W) shape of the training images."""
        return (self.arch.in_channels, self.arch.image_size, self.arch.image_size)

    @property
    def fixed_shape(self) -> tuple[int, ...] | None:
        """``(image_size, image_size)`` when sizes are checked, else ``None`` (any size)."""
        return (self.arch.image_size,) * 2 if self.check_size else None

    def __repr__(self) -> str:
        return (f"ADMPrior(name={self.name!r}, shape={self.shape}, parameters="
                f"{self.num_parameters}, class_label={self.class_label}, device={self.device})")

    def check(self, x: Tensor) -> None:
        """Raise ``ValueError`` when ``x`` (B, C, H, W) does not fit the network."""
        got = tuple(int(s) for s in x.shape[1:])
        want = self.shape
        if len(got) != 3 or got[0] != want[0]:
            hint = f"give it {want[0]}-channel images (e.g. [data] channels = {want[0]})"
        elif self.check_size and got[1:] != want[1:]:
            hint = (f"resize the data (e.g. [data] size = {want[1]}), set [prior] check_size = "
                    f"false to run the network at any size (padded to a multiple of "
                    f"{self.arch.factor} and cropped back), or [prior] tile = {want[1]} to run it "
                    "on tiles of its own size")
        else:
            return
        raise ValueError(f"prior {self.name!r} was trained on ({', '.join(map(str, want))}) images "
                         f"but got ({', '.join(map(str, got))}); {hint}")

    def _labels(self, n: int, device: torch.device) -> Tensor | None:
        if self.class_label is None:
            return None
        return torch.full((n,), self.class_label, device=device, dtype=torch.long)

    def _meta_call(self, shape: tuple[int, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The network's call on ``shape`` as :class:`MemoryCheck` replays it (on meta tensors)."""
        padded = [s + (-s) % self.arch.factor for s in shape[2:]]
        x = torch.empty(*shape[:2], *padded, device="meta", dtype=self.dtype)
        t = torch.zeros(shape[0], dtype=torch.long, device="meta")
        return (x, t), {"y": self._labels(shape[0], torch.device("meta")), "type_t": "timestep"}

    def check_memory(self, shape: tuple[int, ...], grad: bool | None = None) -> None:
        """Raise ``MemoryError`` (one line) when one network call on ``shape`` cannot fit.

        :param tuple shape: the signals' (B, C, H, W).
        :param bool grad: whether the call keeps its activations for a backward pass
            (default: whether gradients are enabled now).
        """
        self.memory.check(tuple(shape), torch.is_grad_enabled() if grad is None else grad,
                          self.precision, tile=self.arch.image_size)

    def network(self, x_t: Tensor, t: Tensor) -> Tensor:
        """:math:`\\epsilon_\\theta(x_t, t)` (the variance channels dropped).

        :param torch.Tensor x_t: noisy images (B, C, H, W).
        :param torch.Tensor t: integer timesteps, shape (B,).
        :return: the noise prediction, like ``x_t``.
        """
        self.check(x_t)
        self.check_memory(tuple(x_t.shape))
        device = self.device
        padded, spatial = pad_to_multiple(x_t, self.arch.factor)
        inp = padded.to(device=device, dtype=self.dtype)
        out = self.model.forward_diffusion(inp, t.to(device), y=self._labels(x_t.shape[0], device))
        out = out[:, : x_t.shape[1]]
        if padded is not x_t:
            out = out[..., : spatial[0], : spatial[1]]
        return out.to(device=x_t.device, dtype=x_t.dtype)


def load_adm(path: str | Path, preset: str | None = None, *, device: str | torch.device = "cpu",
             check_size: bool = True, class_label: int | None = None, clip: float | None = 1.0,
             name: str | None = None, **flags: Any) -> ADMPrior:
    """Build the architecture, load a guided-diffusion checkpoint into it, wrap it as a prior.

    :param str path: the ``.pt`` (or ``.safetensors``) state dict.
    :param str preset: the checkpoint's preset (:data:`PRESETS`), or None for explicit flags.
    :param str device: where the network runs.
    :param bool check_size: whether signals must be ``image_size`` square.
    :param int class_label: the class of a class-conditional model.
    :param float clip: range of clipped Tweedie estimates.
    :param str name: the prior's name in messages (default ``"adm"``).
    :param flags: :class:`ADMArchitecture` flags over the preset's.
    """
    arch = architecture(preset, **flags)
    state = read_state_dict(path)
    net = ADMUNet(arch)
    check_state(state, net, str(path), arch, preset)
    net.load_state_dict(state, strict=True)
    net.requires_grad_(False)
    net = net.to(device=device, dtype=torch.float32).eval()
    return ADMPrior(net, arch, name=name or "adm", clip=clip, check_size=check_size,
                    class_label=class_label)


def adm_prior(path: str, preset: str | None = None, check_size: bool = True,
              class_label: int | None = None, clip: float = 1.0, image_size: int | None = None,
              num_channels: int | None = None, num_res_blocks: int | None = None,
              attention_resolutions: list[int] | str | None = None,
              channel_mult: list[float] | str | None = None, num_heads: int | None = None,
              num_head_channels: int | None = None, num_heads_upsample: int | None = None,
              use_scale_shift_norm: bool | None = None, resblock_updown: bool | None = None,
              use_new_attention_order: bool | None = None, class_cond: bool | None = None,
              learn_sigma: bool | None = None, in_channels: int | None = None,
              diffusion_steps: int | None = None, noise_schedule: str | None = None,
              device: str = "cpu", dtype: str = "float32") -> ADMPrior:
    """A guided-diffusion (ADM) checkpoint: DPS's ``ffhq_10m.pt``, ADM's ImageNet 256 models, ...

    The network is deepinv's DiffUNet architecture with guided-diffusion's parameter names;
    its epsilon is the first half of a learned-variance output; the schedule is
    guided-diffusion's (linear, 1e-4 to 2e-2 over 1000 steps, for the presets).

    :param str path: the checkpoint file: a ``.pt`` state dict (read with
        ``torch.load(weights_only=True)``) or ``.safetensors``.
    :param str preset: ``"ffhq256"`` (DPS's FFHQ 256), ``"imagenet256-uncond"`` (ADM's
        unconditional ImageNet 256) or ``"imagenet256"`` (ADM's class-conditional one); the
        flags below override it, or give them all without a preset.
    :param bool check_size: whether images must be ``image_size`` square (false: any size,
        reflect-padded to a multiple of 32 and cropped back).
    :param int class_label: the ImageNet class of a class-conditional model (0 to 999).
    :param float clip: range of clipped Tweedie estimates.
    :param int image_size: guided-diffusion's ``--image_size``.
    :param int num_channels: ``--num_channels`` (base width).
    :param int num_res_blocks: ``--num_res_blocks``.
    :param list attention_resolutions: ``--attention_resolutions`` (``"32,16,8"`` or a list).
    :param list channel_mult: ``--channel_mult`` (default: guided-diffusion's for the size).
    :param int num_heads: ``--num_heads``.
    :param int num_head_channels: ``--num_head_channels``.
    :param int num_heads_upsample: ``--num_heads_upsample``.
    :param bool use_scale_shift_norm: ``--use_scale_shift_norm``.
    :param bool resblock_updown: ``--resblock_updown``.
    :param bool use_new_attention_order: ``--use_new_attention_order``.
    :param bool class_cond: ``--class_cond`` (1000 classes).
    :param bool learn_sigma: ``--learn_sigma`` (a 2C-channel output).
    :param int in_channels: image channels (3).
    :param int diffusion_steps: ``--diffusion_steps``.
    :param str noise_schedule: ``--noise_schedule`` (``"linear"`` or ``"cosine"``).
    :param str device: set by the pipeline.
    :param str dtype: set by the pipeline (the network itself runs in float32).
    """
    flags = {k: v for k, v in locals().items()
             if k not in ("path", "preset", "check_size", "class_label", "clip", "device", "dtype")}
    return load_adm(path, preset, device=device, check_size=check_size, class_label=class_label,
                    clip=clip, **flags)
