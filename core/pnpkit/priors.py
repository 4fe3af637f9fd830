"""The two families of priors a solver can use.

Signals are tensors shaped (batch, channels, *spatial) in pnpkit's range [-1, 1]: images
(B, C, H, W) and audio (B, C, L) alike.

- :class:`DenoiserPrior`: ``denoise(x, sigma)`` returns an estimate of the clean signal from
  ``x = x0 + sigma * n`` (deepinv's denoiser contract, in pnpkit's range).
- :class:`DiffusionPrior`: a noise-prediction network with its variance-preserving schedule
  ``alphas_cumprod``; it gives ``eps(x_t, t)``, the Tweedie estimate ``x0(x_t, t)``, forward
  noising ``noise(x, t)``, deterministic DDIM from any ``t`` to 0, and (being a denoiser too)
  ``denoise(x, sigma)`` at the (fractional) timestep whose noise level is ``sigma``.
- :class:`ContinuousDiffusionPrior`: a diffusion prior given by a denoiser ``D(x, sigma)``
  valid at every level of a range (EDM's form), behind the same interface: ``denoise`` runs
  ``D`` at ``sigma`` itself, ``eps``/``x0`` at any timestep of a DDPM grid.

Every prior counts its network evaluations in :attr:`Prior.nfe`, and says in
:attr:`Prior.fixed_shape` whether its network runs at one size only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class Prior:
    """Base class: counts network function evaluations (``nfe``)."""

    nfe: int = 0
    #: ``"bf16"`` or ``"fp16"``: the network runs under ``torch.autocast`` in that precision,
    #: its output cast back to the input's dtype, so the solver's arithmetic stays in float32
    #: (the configuration's top-level ``precision``); ``None``: in its weights' dtype.
    #: :class:`DiffusionPrior` honours it in every network call (:meth:`run_network`); other
    #: priors run their networks inside :meth:`autocast`.
    precision: str | None = None

    def reset_nfe(self) -> None:
        self.nfe = 0

    def autocast(self, x: Tensor) -> Any:
        """The context a network call on ``x`` runs in: autocast at :attr:`precision`, or nothing.

        >>> p = Prior(); p.precision = "bf16"
        >>> with p.autocast(torch.zeros(1)):
        ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        torch.bfloat16
        """
        import contextlib

        if self.precision is None:
            return contextlib.nullcontext()
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (or absent for "
                             f"the weights' dtype), got {self.precision!r}")
        return torch.autocast(x.device.type, dtype=PRECISIONS[self.precision])

    def at_precision(self, fn: Callable[..., Tensor], x: Tensor, *args: Any) -> Tensor:
        """``fn(x, *args)`` under :meth:`autocast`, its output in ``x``'s dtype: a network call
        at the prior's :attr:`precision` (``None``: ``fn(x, *args)`` itself, untouched).

        >>> p = Prior(); p.precision = "bf16"
        >>> p.at_precision(lambda x, w: x @ w, torch.ones(2, 2), torch.ones(2, 2)).dtype
        torch.float32
        """
        if self.precision is None:
            return fn(x, *args)
        with self.autocast(x):
            out = fn(x, *args)
        return out.to(x.dtype)

    @property
    def fixed_shape(self) -> tuple[int, ...] | None:
        """The spatial shape the prior's network must run at, or ``None`` when it runs at any size.

        ``None`` by default. A prior that runs at one size only says which (a network checked
        against its training size, ``(32, 32)``); a signal of another size then goes through it
        in windows or tiles of that shape (:mod:`pnpkit.tiling`). pnpkit-priors' image priors
        reflect-pad to the next multiple of their down-sampling and crop back, so they run at
        any size; pnpkit-audio's prior gives the window a song is separated in, ``(65536,)``.

        >>> Prior().fixed_shape is None
        True
        """
        return None

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        raise NotImplementedError


class DenoiserPrior(Prior):
    """A prior given by a Gaussian denoiser ``denoise(x, sigma)``."""


class FunctionDenoiser(DenoiserPrior):
    """Wrap any ``fn(x, sigma) -> x_hat`` as a denoiser prior."""

    def __init__(self, fn: Callable[[Tensor, Any], Tensor]) -> None:
        self.fn = fn

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        self.nfe += 1
        return self.fn(x, sigma)


#: The precisions a network may run in under autocast (the configuration's ``precision``).
PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: The dtypes a configuration may name (``dtype = "float16"``).
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}


def torch_dtype(name: str | torch.dtype | None, default: torch.dtype = torch.float32) -> torch.dtype:
    """Turn ``"float32"``, ``"float16"``, ... (or a ``torch.dtype``) into a ``torch.dtype``.

    The one dtype parser of the house: configurations, the pipeline, the priors and the
    operators all read dtypes with it. A name may carry the ``"torch."`` prefix that
    ``str(torch.float32)`` writes.

    :param str name: the dtype's name, a ``torch.dtype``, or ``None`` for ``default``.
    :param torch.dtype default: returned when ``name`` is ``None``.
    :raises ValueError: for an unknown name (the message lists the known ones).

    >>> torch_dtype("float16"), torch_dtype("torch.float64")
    (torch.float16, torch.float64)
    """
    if name is None:
        return default
    if isinstance(name, torch.dtype):
        return name
    key = str(name).removeprefix("torch.")
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[key]


def linear_alphas_cumprod(steps: int = 1000, beta_start: float = 1e-4,
                          beta_end: float = 0.02) -> Tensor:
    """``abar_t`` of the papers' linear beta schedule (float64)."""
    betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


class DiffusionPrior(Prior):
    """A variance-preserving diffusion model: ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z``.

    Subclasses implement :meth:`network` (the raw model output at integer timesteps); the
    schedule maths lives here so every solver sees the same conventions.

    :param torch.Tensor alphas_cumprod: ``abar_t`` for t = 0 .. T-1.
    :param str prediction_type: what the network predicts: ``"epsilon"``, ``"v_prediction"``
        or ``"sample"``.
    :param float clip: Tweedie estimates are clipped to [-clip, clip] where asked (None: never).
    :param str below_floor: what :meth:`denoise` does at levels below the schedule's smallest,
        ``sigma(0)``: ``"score"`` (default) holds the score at its floor value, the Gaussian-
        posterior-exact extrapolation, ``D(x, 0) = x``; ``"floor"`` returns the network's
        estimate at the floor itself, ``D(x, sigma) = D(x, sigma(0))`` (it removes noise of
        the floor's level from a signal that holds less: on the project's DDPM music prior it
        separates better, see its model card).
    """

    #: The rules :meth:`denoise` knows for levels below ``sigma(0)``.
    BELOW_FLOOR = ("score", "floor")

    def __init__(self, alphas_cumprod: Tensor, prediction_type: str = "epsilon",
                 clip: float | None = 1.0, below_floor: str = "score") -> None:
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction_type must be 'epsilon', 'v_prediction' or 'sample', "
                             f"got {prediction_type!r}")
        self.alphas_cumprod = alphas_cumprod.to(torch.float64)
        self.prediction_type = prediction_type
        self.clip = clip
        self.set_below_floor(below_floor)

    def set_below_floor(self, rule: str) -> None:
        """Choose :meth:`denoise`'s rule below the schedule's floor (``"score"`` or ``"floor"``)."""
        if rule not in self.BELOW_FLOOR:
            raise ValueError(f"below_floor must be one of {', '.join(map(repr, self.BELOW_FLOOR))}, "
                             f"got {rule!r}")
        self.below_floor = rule

    # -- to implement ------------------------------------------------------------------------
    def network(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Raw network output for ``x_t`` at integer timesteps ``t`` (shape (B,))."""
        raise NotImplementedError

    def run_network(self, x_t: Tensor, t: Tensor) -> Tensor:
        """:meth:`network` under :meth:`autocast` (the prior's :attr:`precision`), its output in
        ``x_t``'s dtype: where every network call of a diffusion prior goes."""
        return self.at_precision(self.network, x_t, t)

    # -- schedule --------------------------------------------------------------------------------
    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def abar(self, t: int | float | Tensor, like: Tensor) -> Tensor:
        """``abar_t`` broadcastable against ``like`` (t a number or a (B,) tensor).

        A fractional timestep (a float that is not a whole number) lies between two steps of
        the schedule: its VE level ``sqrt((1 - abar) / abar)`` is interpolated linearly in
        ``log`` between theirs, the interpolation :meth:`t_of_sigma` inverts.
        """
        tt = torch.as_tensor(t, dtype=torch.float64) if isinstance(t, float) else torch.as_tensor(t)
        if tt.is_floating_point() and bool((tt != tt.round()).any()):
            return self._fractional_abar(tt, like)
        index = self._timesteps(tt, like)
        a = self.alphas_cumprod.to(like.device)[index].to(like.dtype)
        return a.view(-1, *([1] * (like.dim() - 1)))

    def _log_levels(self) -> Tensor:
        """``log sqrt((1 - abar_t) / abar_t)`` for every integer t (float64, increasing)."""
        a = self.alphas_cumprod
        return 0.5 * torch.log((1 - a) / a)

    def _fractional_abar(self, t: Tensor, like: Tensor) -> Tensor:
        t = t.detach().to("cpu", torch.float64).reshape(-1)
        if t.numel() == 1:
            t = t.expand(like.shape[0])
        last = self.num_timesteps - 1
        if float(t.min()) < 0 or float(t.max()) > last:
            raise ValueError(f"timestep out of range [0, {last}]: {t.tolist()}")
        logs = self._log_levels()
        i = t.floor().long().clamp(max=max(last - 1, 0))
        f = t - i
        log_sigma = logs[i] * (1 - f) + logs[(i + 1).clamp(max=last)] * f
        a = 1.0 / (1.0 + torch.exp(2 * log_sigma))
        return a.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def t_of_sigma(self, sigma: float) -> float:
        """The fractional timestep whose VE-equivalent level is ``sigma``, in [0, T - 1].

        Log-linear between the two neighbouring steps (so ``abar(t_of_sigma(s))`` is
        ``1 / (1 + s^2)``); levels below the schedule's smallest give 0, above its largest T - 1.

        >>> from pnpkit.testing import GaussianDiffusionPrior
        >>> p = GaussianDiffusionPrior()
        >>> round(p.t_of_sigma(float(p.sigma(300))), 6), round(p.t_of_sigma(0.5 * float(p.sigma(0))), 6)
        (300.0, 0.0)
        """
        logs = self._log_levels()
        s = math.log(sigma) if sigma > 0 else -math.inf
        if s <= float(logs[0]):
            return 0.0
        if s >= float(logs[-1]):
            return float(self.num_timesteps - 1)
        i = int(torch.searchsorted(logs, torch.tensor(s, dtype=torch.float64))) - 1
        lo, hi = float(logs[i]), float(logs[i + 1])
        t = i + (s - lo) / (hi - lo)
        return float(round(t)) if abs(t - round(t)) < 1e-9 else t  # a step's own level: the step

    def sigma(self, t: int | Tensor) -> Tensor:
        """Noise-to-signal ratio ``sqrt((1 - abar_t) / abar_t)`` (the VE-equivalent noise level)."""
        a = self.alphas_cumprod[torch.as_tensor(t)]
        return ((1 - a) / a).sqrt()

    def sigma_to_t(self, sigma: float) -> int:
        """The timestep whose VE-equivalent noise level is closest to ``sigma``."""
        levels = ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()
        return int((levels - float(sigma)).abs().argmin())

    def _timesteps(self, t: int | Tensor, like: Tensor) -> Tensor:
        t = torch.as_tensor(t, device=like.device, dtype=torch.long)
        if t.dim() == 0:
            t = t.expand(like.shape[0])
        if int(t.min()) < 0 or int(t.max()) >= self.num_timesteps:
            raise ValueError(f"timestep out of range [0, {self.num_timesteps - 1}]: {t.tolist()}")
        return t

    # -- the network, in every parametrisation ----------------------------------------------------
    def eps(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        """Predicted noise ``eps_theta(x_t, t)``; counts one network evaluation in :attr:`nfe`.

        A diffusion prior counts for its subclasses, here (so in ``x0`` and ``ddim``) and in
        ``denoise`` (one evaluation): a subclass implements :meth:`network` and does not count
        there, or every evaluation counts twice (``PriorContract`` catches it).
        """
        tt = self._timesteps(t, x_t)
        self.nfe += 1
        out = self.run_network(x_t, tt)
        if self.prediction_type == "epsilon":
            return out
        return self._eps_from_output(out, x_t, self.abar(tt, x_t))

    def _eps_from_output(self, out: Tensor, x_t: Tensor, a: Tensor) -> Tensor:
        """The noise estimate from the network's output ``out`` at ``x_t`` of level ``abar = a``."""
        if self.prediction_type == "epsilon":
            return out
        if self.prediction_type == "v_prediction":
            return a.sqrt() * out + (1 - a).sqrt() * x_t
        return (x_t - a.sqrt() * out) / (1 - a).sqrt()

    def x0_from_eps(self, x_t: Tensor, t: int | Tensor, eps: Tensor, clip: bool = False) -> Tensor:
        a = self.abar(t, x_t)
        x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        return x0.clamp(-self.clip, self.clip) if clip and self.clip is not None else x0

    def x0(self, x_t: Tensor, t: int | Tensor, clip: bool = False) -> Tensor:
        """Tweedie estimate ``(x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``."""
        return self.x0_from_eps(x_t, t, self.eps(x_t, t), clip)

    def noise(self, x0: Tensor, t: int | Tensor, generator: torch.Generator | None = None,
              noise: Tensor | None = None) -> Tensor:
        """Forward diffusion to ``t``: ``sqrt(abar_t) x0 + sqrt(1 - abar_t) z``."""
        if noise is None:
            noise = randn_like(x0, generator)
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    @torch.no_grad()
    def ddim(self, x_t: Tensor, t: int, steps: int = 20, eta: float = 0.0, clip: bool = True,
             generator: torch.Generator | None = None,
             timesteps: list[int] | None = None) -> Tensor:
        """Run DDIM from timestep ``t`` back to a clean sample in ``min(steps, t)`` network calls.

        .. math:: x_s = \\sqrt{\\bar\\alpha_s}\\,\\hat x_0 + \\sqrt{1-\\bar\\alpha_s-\\sigma^2}\\,
                  \\hat\\epsilon + \\sigma z

        ``eta = 0`` is deterministic. The last step lands on ``abar = 1`` (the clean estimate).
        With ``clip``, ``x0`` is clipped to ``[-clip, clip]`` and ``eps`` recomputed from the
        clipped ``x0``, ``(x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)``, as diffusers'
        ``DDIMScheduler.step(..., use_clipped_model_output=True)`` and the DDIM of the
        guided-diffusion code do; without ``clip`` the network's ``eps`` is used as it is.

        :param int t: the timestep of ``x_t``.
        :param int steps: the number of network calls (at most ``t``); the grid is ``t`` then
            evenly down, rounded, the last call above 0 (``t, ..., t/steps`` for ``t >= steps``).
        :param list timesteps: an explicit descending grid of timesteps instead (its first is
            ``x_t``'s; ``steps`` is then ignored), e.g. one that ends with a call at 0.
        """
        if timesteps is not None:
            ts = [int(s) for s in timesteps]
            if not ts or any(b >= a for a, b in zip(ts, ts[1:], strict=False)) or ts[-1] < 0:
                raise ValueError(f"ddim: timesteps must be a non-empty, strictly decreasing list "
                                 f"of timesteps >= 0, got {ts}")
        else:
            n = max(1, min(int(steps), int(t)))
            ts = torch.linspace(float(t), 0.0, n + 1)[:-1].round().long().tolist()
        clipped = clip and self.clip is not None
        x = x_t
        for i, ti in enumerate(ts):
            eps = self.eps(x, ti)
            x0 = self.x0_from_eps(x, ti, eps, clip)
            if i + 1 == len(ts):
                return x0
            a_t, a_s = self.abar(ti, x), self.abar(ts[i + 1], x)
            if clipped:  # the noise direction that goes with the clipped x0
                eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
            sig = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()
            x = a_s.sqrt() * x0 + (1 - a_s - sig**2).clamp_min(0).sqrt() * eps
            if eta > 0:
                x = x + sig * randn_like(x, generator)
        return x

    @staticmethod
    def _levels_per_item(sigma: float | Tensor, x: Tensor) -> Tensor:
        """``sigma`` (a number or one level per item of ``x``) as (B,) float64 on the CPU."""
        levels = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu().reshape(-1)
        if levels.numel() == 1:
            levels = levels.expand(x.shape[0])
        if levels.numel() != x.shape[0]:
            raise ValueError(f"denoise: sigma must be a number or one level per item ({x.shape[0]}), "
                             f"got {levels.numel()} levels")
        return levels

    @torch.no_grad()
    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """:meth:`tweedie_denoise` without gradients (what solvers call)."""
        return self.tweedie_denoise(x, sigma)

    def tweedie_denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Denoise ``x = x0 + sigma n`` by Tweedie at the (fractional) timestep of level ``sigma``,
        differentiable in ``x`` (guidance terms such as DPS's differentiate through it).

        Within the schedule's levels, ``sigma(0) <= sigma <= sigma(T - 1)``, the network runs at
        the fractional timestep :meth:`t_of_sigma` (diffusers' UNets and the ADM network take
        float timesteps; :meth:`network` receives a float (B,) tensor there) on
        ``sqrt(abar) x`` with ``abar = 1 / (1 + sigma^2)``, and ``D = x - sigma eps``. So the
        levels between two steps are not snapped to the nearest one.

        Below the floor ``sigma(0)`` (about 0.01 on the linear schedule), with
        :attr:`below_floor` ``"score"`` (the default) the score is held at its value at the
        floor: ``D(x, sigma) = x - sigma^2 / sigma(0) * eps(sqrt(abar_0) x, 0)``, which is
        Tweedie's ``x + sigma^2 grad log p`` with the floor's score; it equals the network's
        estimate at ``sigma(0)`` and goes to ``x`` as ``sigma -> 0`` (``D(x, 0) = x``). With
        ``"floor"`` the estimate at the floor is returned, ``D(x, sigma) = D(x, sigma(0))``.
        Above the top level the network runs at ``T - 1``. ``sigma`` may be one level per item
        (a (B,) tensor): each item gets its own timestep, in the same single network evaluation,
        counted.
        """
        levels = self._levels_per_item(sigma, x)
        last = self.num_timesteps - 1
        floor = float(self.sigma(0))
        rule = getattr(self, "below_floor", "score")
        ts: list[float] = []
        abars: list[float] = []
        held: list[float | None] = []  # below the floor, "score": D = x - held * eps
        for s in levels.tolist():
            s = floor if s < floor and rule == "floor" else s
            if s < floor:
                ts.append(0.0)
                abars.append(float(self.alphas_cumprod[0]))
                held.append(s * s / floor)
                continue
            t = self.t_of_sigma(s)
            ts.append(t)
            abars.append(1.0 / (1.0 + s * s) if t < last else float(self.alphas_cumprod[last]))
            held.append(None)
        if all(t == round(t) for t in ts):
            tt = torch.tensor([round(t) for t in ts], dtype=torch.long, device=x.device)
        else:
            kind = torch.float64 if x.dtype == torch.float64 else torch.float32
            tt = torch.tensor(ts, dtype=kind, device=x.device)
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        a_t = torch.tensor(abars, dtype=x.dtype, device=x.device).view(shape)
        x_t = a_t.sqrt() * x
        self.nfe += 1
        eps = self._eps_from_output(self.run_network(x_t, tt), x_t, a_t)
        out = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if any(h is not None for h in held):
            below = torch.tensor([h is not None for h in held], device=x.device).view(shape)
            factor = torch.tensor([h or 0.0 for h in held], dtype=x.dtype, device=x.device).view(shape)
            out = torch.where(below, x - factor * eps, out)
        return out


class ContinuousDiffusionPrior(DiffusionPrior):
    r"""A diffusion prior given by a denoiser ``D(x, sigma)`` valid at every level in
    ``[sigma_min, sigma_max]`` (the variance-exploding form of Karras et al. 2022, "EDM", and
    of MSDM): ``D(x0 + sigma n, sigma)`` estimates ``x0``.

    It is a :class:`DiffusionPrior`, so every solver written for one runs on it unchanged:

    - the timestep-based interface (``eps``, ``x0``, ``noise``, ``ddim``) lives on the grid
      :attr:`alphas_cumprod`, by default the papers' linear 1000-step DDPM schedule (so a
      solver preset such as ``t_end = 100`` keeps its meaning). At any timestep ``t``, integer
      or fractional (:meth:`DiffusionPrior.abar`), with ``abar = abar_t``:

      .. math:: \sigma_t = \sqrt{(1 - \bar\alpha_t) / \bar\alpha_t}, \qquad
                x_\text{ve} = x_t / \sqrt{\bar\alpha_t}, \qquad
                \epsilon = (x_\text{ve} - D(x_\text{ve}, \sigma_t)) / \sigma_t

      and so ``x0(x_t, t) = D(x_ve, sigma_t)``;
    - :meth:`tweedie_denoise` / ``denoise(x, sigma)`` evaluate ``D`` directly at each item's
      ``sigma``, one network evaluation, nothing snapped to the grid and no floor inside
      ``[sigma_min, sigma_max]``.

    Outside the range:

    - **below** ``sigma_min``, :attr:`below_floor` ``"score"`` (the default) holds the score at
      its value at ``sigma_min``: ``D(x, s) = x + (s / sigma_min)^2 (D(x, sigma_min) - x)``,
      Tweedie's ``x + s^2 grad log p`` with the score of ``sigma_min``, which equals
      ``D(x, sigma_min)`` at ``sigma_min`` and goes to ``x`` as ``s -> 0`` (``D(x, 0) = x``);
      ``"floor"`` returns ``D(x, sigma_min)`` itself;
    - **above** ``sigma_max`` the level is clamped: the network runs at ``sigma_max`` on the
      signal as given, ``D(x, s) = D(x, sigma_max)`` (and ``eps`` divides by the true
      ``sigma_t``). On the default grid ``sigma_t`` reaches about 157 at ``t = 999``.

    Subclasses implement :meth:`denoiser` (the raw network, called with a (B,) tensor of
    levels within the range, counting nothing), or pass ``denoiser = fn`` (any
    ``fn(x, sigma) -> x_hat``, e.g. a closed-form one in tests). Every evaluation counts once
    in :attr:`nfe` (in ``eps`` and ``tweedie_denoise``) and runs at :attr:`precision` under
    autocast, its output cast back to the input's dtype (:meth:`run_denoiser`).

    :param float sigma_min: the smallest level ``D`` is valid at (> 0).
    :param float sigma_max: the largest (> ``sigma_min``).
    :param callable denoiser: ``fn(x, sigma) -> x_hat``, ``sigma`` a (B,) tensor; ``None``:
        a subclass implements :meth:`denoiser`.
    :param torch.Tensor alphas_cumprod: the timestep grid (default
        :func:`linear_alphas_cumprod`, 1000 linear steps from 1e-4 to 0.02).
    :param float clip: Tweedie estimates are clipped to [-clip, clip] where asked (None: never).
    :param str below_floor: the rule below ``sigma_min``, ``"score"`` or ``"floor"``.

    >>> p = ContinuousDiffusionPrior(1e-4, 80.0, denoiser=lambda x, s: x / (1 + s.view(-1, 1) ** 2))
    >>> x = torch.ones(2, 3)
    >>> p.denoise(x, torch.tensor([1.0, 3.0]))[:, 0].tolist(), p.nfe
    ([0.5, 0.10000000149011612], 1)
    """

    def __init__(self, sigma_min: float, sigma_max: float,
                 denoiser: Callable[[Tensor, Tensor], Tensor] | None = None,
                 alphas_cumprod: Tensor | None = None, clip: float | None = 1.0,
                 below_floor: str = "score") -> None:
        if not (math.isfinite(sigma_min) and math.isfinite(sigma_max) and 0 < sigma_min < sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max (finite), got sigma_min={sigma_min}, "
                             f"sigma_max={sigma_max}")
        grid = linear_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod
        super().__init__(grid, prediction_type="epsilon", clip=clip, below_floor=below_floor)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self._denoiser = denoiser

    # -- to implement ------------------------------------------------------------------------
    def denoiser(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The raw ``D(x, sigma)``: ``sigma`` a (B,) tensor in ``[sigma_min, sigma_max]`` (in
        ``x``'s dtype and device); counts nothing (the callers count)."""
        if self._denoiser is None:
            raise NotImplementedError(f"{type(self).__name__} implements no denoiser: subclass "
                                      "ContinuousDiffusionPrior and define denoiser(x, sigma), "
                                      "or pass denoiser=fn")
        return self._denoiser(x, sigma)

    def run_denoiser(self, x: Tensor, sigma: Tensor) -> Tensor:
        """:meth:`denoiser` under :meth:`autocast` (the prior's :attr:`precision`), its output in
        ``x``'s dtype: where every network call of a continuous prior goes."""
        return self.at_precision(self.denoiser, x, sigma)

    # -- D at any level, with the rules outside the range ------------------------------------
    def _per_item(self, sigma: float | Tensor, x: Tensor) -> Tensor:
        levels = self._levels_per_item(sigma, x)
        if bool((levels < 0).any()) or not bool(torch.isfinite(levels).all()):
            raise ValueError(f"denoise: sigma must be finite and >= 0, got {levels.tolist()}")
        return levels

    def _denoise_levels(self, x: Tensor, levels: Tensor) -> Tensor:
        """``D(x, levels)`` for (B,) float64 ``levels`` >= 0: one network evaluation (uncounted)."""
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        run = levels.clamp(self.sigma_min, self.sigma_max)
        out = self.run_denoiser(x, run.to(device=x.device, dtype=x.dtype))
        below = levels < self.sigma_min
        if getattr(self, "below_floor", "score") == "score" and bool(below.any()):
            factor = torch.where(below, (levels / self.sigma_min) ** 2, torch.ones_like(levels))
            f = factor.to(device=x.device, dtype=x.dtype).view(shape)
            out = x + f * (out - x)
        return out

    def _abar64(self, t: int | float | Tensor, x: Tensor) -> Tensor:
        """``abar_t`` per item, (B,) float64 on the CPU (levels computed without round-off; a
        Python float stays a float64, not torch's default float32)."""
        like = torch.empty(x.shape[0], dtype=torch.float64)
        if isinstance(t, Tensor):
            t = t.detach().cpu()
        return self.abar(t, like).reshape(-1)

    def network(self, x_t: Tensor, t: Tensor) -> Tensor:
        """``eps`` at timesteps ``t`` (integer or fractional, (B,)): the denoiser on the VE signal.

        What wrappers that call :meth:`DiffusionPrior.run_network` receive (tiling); counts nothing.
        """
        return self._eps(x_t, t)

    def _eps(self, x_t: Tensor, t: int | float | Tensor) -> Tensor:
        a = self._abar64(t, x_t)
        levels = ((1 - a) / a).sqrt()
        shape = (x_t.shape[0],) + (1,) * (x_t.dim() - 1)
        root = a.sqrt().to(device=x_t.device, dtype=x_t.dtype).view(shape)
        x_ve = x_t / root
        d = self._denoise_levels(x_ve, levels)
        return (x_ve - d) / levels.to(device=x_t.device, dtype=x_t.dtype).view(shape)

    def run_network(self, x_t: Tensor, t: Tensor) -> Tensor:
        """:meth:`network` (its denoiser call runs at :attr:`precision`, :meth:`run_denoiser`)."""
        return self.network(x_t, t)

    def eps(self, x_t: Tensor, t: int | float | Tensor) -> Tensor:
        """Predicted noise at timestep ``t`` (integer or fractional, a number or (B,)); counts
        one network evaluation."""
        self.nfe += 1
        return self._eps(x_t, t)

    def x0(self, x_t: Tensor, t: int | float | Tensor, clip: bool = False) -> Tensor:
        """Tweedie estimate at timestep ``t``: ``D(x_t / sqrt(abar_t), sigma_t)`` itself (one
        network evaluation, counted), the value ``x0_from_eps(x_t, t, eps(x_t, t))`` has without
        the round-off of ``eps`` amplified by ``1 / sqrt(abar_t)`` at large ``t``."""
        a = self._abar64(t, x_t)
        shape = (x_t.shape[0],) + (1,) * (x_t.dim() - 1)
        self.nfe += 1
        out = self._denoise_levels(x_t / a.sqrt().to(device=x_t.device, dtype=x_t.dtype).view(shape),
                                   ((1 - a) / a).sqrt())
        return out.clamp(-self.clip, self.clip) if clip and self.clip is not None else out

    def tweedie_denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """``D(x, sigma)`` at each item's own level (a number or a (B,) tensor), in one network
        evaluation, counted; differentiable in ``x``. Inside ``[sigma_min, sigma_max]`` the
        denoiser runs at ``sigma`` itself; below and above, the rules of the class docstring."""
        levels = self._per_item(sigma, x)
        self.nfe += 1
        return self._denoise_levels(x, levels)


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> list[float]:
    """``n`` noise levels from ``sigma_max`` down to ``sigma_min``, spaced as Karras et al. (EDM).

    .. math::

        \\sigma_i = \\Big(\\sigma_{\\max}^{1/\\rho} + \\tfrac{i}{n-1}\\big(\\sigma_{\\min}^{1/\\rho}
        - \\sigma_{\\max}^{1/\\rho}\\big)\\Big)^{\\rho}, \\quad i = 0, \\dots, n-1

    (``[sigma_max]`` when ``n == 1``). Samplers that end on a clean estimate append 0 themselves.

    >>> [round(s, 4) for s in karras_sigmas(3, 1e-4, 1.0)]
    [1.0, 0.0412, 0.0001]
    """
    if n == 1:
        return [sigma_max]
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return [(hi + i / (n - 1) * (lo - hi)) ** rho for i in range(n)]


def randn_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise shaped like ``x``, drawn on the generator's device, then moved."""
    dev = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)
