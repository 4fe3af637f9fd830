"""DCDP: HQS in the mu -> 0 limit, with diffusion purification as the prior step."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from pnpkit import operators as ops
from pnpkit.priors import linear_alphas_cumprod
from pnpkit.solvers import IterativeSolver, SolveContext, check_choice


def linear_schedule(t_start: int, t_end: int, k: int) -> list[int]:
    """``k`` integers decaying linearly from ``t_start`` to ``t_end``, each at least 1.

    As the authors' ``Purification_Schedule``: ``t_end + round((t_start - t_end) j / (k - 1))``
    for ``j = k - 1, ..., 0`` (halves rounded up), a 0 raised to 1.

    >>> linear_schedule(400, 0, 10)
    [400, 356, 311, 267, 222, 178, 133, 89, 44, 1]
    """
    if k == 1:
        return [max(1, t_start)]
    span = t_start - t_end
    return [max(1, t_end + math.floor(span * j / (k - 1) + 0.5 + 1e-6)) for j in range(k - 1, -1, -1)]


def linear_levels(start: float, end: float, k: int) -> list[float]:
    """``k`` noise levels decaying linearly from ``start`` to ``end`` (a consistency model's).

    >>> [round(s, 6) for s in linear_levels(20.0, 0.002, 3)]
    [20.0, 10.001, 0.002]
    """
    if k == 1:
        return [float(start)]
    return [float(start + (end - start) * i / (k - 1)) for i in range(k)]


def ddim_grid(strength: int, steps: int) -> list[int]:
    """The timesteps of the authors' DDIM purification of strength ``T`` (noised at ``T - 1``).

    ``n = min(steps, T')`` timesteps evenly spaced over ``[0, T' - 1]``, rounded, largest first,
    the last call at 0 (guided-diffusion's ``space_timesteps``), with ``T' = max(T, 2)``: the
    authors' code raises a strength of 1 to 2 after noising, so that round noises at 0 and
    denoises from 1.

    >>> ddim_grid(400, 20)[:3], ddim_grid(400, 20)[-2:], len(ddim_grid(400, 20))
    ([399, 378, 357], [21, 0], 20)
    >>> ddim_grid(1, 20), ddim_grid(5, 20)
    ([1, 0], [4, 3, 2, 1, 0])
    """
    top = max(int(strength), 2)
    n = min(int(steps), top)
    if n == 1:
        return [top - 1]
    stride = (top - 1) / (n - 1)
    return sorted({round(i * stride) for i in range(n)}, reverse=True)


# Measurement entries of each task in the paper's setting (256 x 256 RGB): presets rescale
# the learning rate by M / M_paper so the step on 1/2 ||A x - y||^2 matches the paper's at
# any image size (the authors' loss is a mean over the M measurement entries). Their box
# inpainting measures y = m * x over the whole image, so its mean runs over all 3 x 256^2
# entries; their phase retrieval pads 256 to 384.
_PAPER_ENTRIES = {
    "sr4": 3 * 64 * 64,
    "box-inpainting": 3 * 256 * 256,
    "gaussian-deblur": 3 * 256 * 256,
    "motion-deblur": 3 * 256 * 256,
    "phase-retrieval": 3 * 384 * 384,
}


@dataclass(kw_only=True)
class DCDP(IterativeSolver):
    """Decoupled data consistency with diffusion purification (Li et al., arXiv:2403.06054).

    Each outer iteration ``k`` runs a data-consistency step and a purification:

    .. math::

        x &\\leftarrow \\text{$\\tau$ steps of SGD (momentum) or Adam on }
              \\tfrac1M \\|y - A x\\|^2 \\text{ from the purified } x \\\\
        x_{T_k} &= \\sqrt{\\bar\\alpha_{T_k - 1}}\\, x + \\sqrt{1 - \\bar\\alpha_{T_k - 1}}\\, z \\\\
        x &\\leftarrow \\begin{cases} \\mathrm{DDIM}(x_{T_k}, T_k - 1 \\to 0) & \\text{version 1} \\\\
              \\mathrm{clip}(\\hat x_0(x_{T_k}, T_k - 1)) & \\text{version 2 (Tweedie)} \\\\
              f_\\theta(x + \\sigma_k z, \\sigma_k) & \\text{consistency model} \\end{cases}

    with ``T_k`` decaying linearly from ``t_start`` to ``t_end`` (or constant, or a custom
    list), as the authors' code runs it: the strength ``T`` noises to timestep ``T - 1``
    (so ``T0 = 1000`` is the schedule's last step); version 1 is deterministic DDIM on
    ``min(ddim_steps, T)`` timesteps evenly spaced from ``T - 1`` down to 0 (the last call
    at 0, :func:`ddim_grid`), ``eps`` recomputed from the clipped ``x0``; a strength of 1
    (the noiseless schedules' last round) noises at 0 and denoises from timestep 1, as theirs
    does. The consistency model takes levels ``sigma_k`` in its own range (about
    [0.002, 80]), decaying linearly from ``sigma_start`` to ``sigma_end``.

    The data loss is a mean over each image's measurement entries, summed over the batch,
    so every image of a batch takes the step it takes alone; early stopping is per image.

    It is half-quadratic splitting in the limit mu -> 0: :meth:`step` is one round of the
    paper's algorithm, :meth:`data_step` (the data-consistency box) then :meth:`purify`
    (the purification box); both iterates are logged, stages ``"data"`` and ``"iterate"``,
    as the core's HQS does. :meth:`setup` resolves what a round needs (the strengths T_k on
    the prior's schedule, the learning rate for this measurement size) into the state.

    Latent diffusion (a prior with ``encode`` / ``decode``): ``latent="latent"`` is the
    paper's approach I (data consistency on z through the decoder, then z <- E(D(z))),
    ``latent="pixel"`` approach II (data consistency on x = D(z) in pixel space, then
    z <- E(x)); purification then acts on z.

    :param str preset: the authors' settings for ``sr4``, ``box-inpainting``,
        ``gaussian-deblur``, ``motion-deblur`` or ``phase-retrieval``; explicit settings win.
    :param int iterations: outer iterations K.
    :param int tau: data-consistency gradient steps per iteration.
    :param float lr: learning rate on the mean squared residual (the authors' loss).
    :param int lr_reference_entries: if set, ``lr`` is multiplied by M / this (M = measurement
        entries), keeping the paper's step size at other signal sizes (presets set it).
    :param str optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``; a fresh one each round.
    :param int t_start: T0, the first purification strength.
    :param int t_end: the last purification strength (>= 1 is used; > 0 for noisy data).
    :param str schedule: ``"linear"``, ``"constant"`` or ``"custom"`` (uses ``timesteps``).
    :param str purification: ``"ddim"`` (version 1), ``"tweedie"`` (version 2) or
        ``"consistency"`` (one call of a consistency-model prior's ``f(x, sigma)``).
    :param int ddim_steps: DDIM steps of version 1 (``min(ddim_steps, T_k)`` are used).
    :param float sigma_start: the consistency model's first purification level (its own
        units, e.g. up to 80); default: the DDPM level of ``t_start`` clamped to its range.
    :param float sigma_end: its last level; default: the DDPM level of ``t_end`` (at least 1)
        clamped to its range.
    :param bool early_stop: stop each image's data step once its mean squared residual
        reaches the measurement noise variance (the discrepancy principle, for noisy
        measurements).
    :param str latent: ``"none"``, ``"latent"`` (approach I) or ``"pixel"`` (approach II).

    >>> from pnpkit.testing import GaussianDiffusionPrior, toy_problem
    >>> op, _, x, y = toy_problem(n=64, m=40)
    >>> res = DCDP(iterations=3, tau=5, lr=10.0, t_start=100).solve(y.float(), op, GaussianDiffusionPrior())
    >>> [h["stage"] for h in res.history][:3]
    ['data', 'iterate', 'data']
    """

    name = "dcdp"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "sr4": dict(iterations=10, tau=100, lr=1e3, t_start=400, t_end=0),
        "box-inpainting": dict(iterations=20, tau=50, lr=1e3, t_start=700, t_end=0),
        "gaussian-deblur": dict(iterations=10, tau=100, lr=1e5, t_start=400, t_end=0),
        "motion-deblur": dict(iterations=10, tau=100, lr=1e5, t_start=400, t_end=0),
        "phase-retrieval": dict(iterations=200, tau=100, lr=500.0, t_start=1000, t_end=20),
        # Noisy measurements (no source gives the paper's values): chosen on the validation
        # patches by benchmarks/sweeps/dcdp_noisy_lr.toml at sigma_y = 0.05: the noiseless
        # lr was the best of 1 ... 1/30 of it for V1 and V2 on all three tasks; the schedule
        # ends at t_end = 100 and each data step stops at the noise's residual.
        "sr4-noisy": dict(iterations=10, tau=100, lr=1e3, t_start=400, t_end=100, early_stop=True),
        "box-inpainting-noisy": dict(iterations=20, tau=50, lr=1e3, t_start=700, t_end=100,
                                     early_stop=True),
        "gaussian-deblur-noisy": dict(iterations=10, tau=100, lr=1e5, t_start=400, t_end=100,
                                      early_stop=True),
    }
    BASE: ClassVar[dict[str, Any]] = dict(iterations=10, tau=100, lr=1e3, t_start=400, t_end=0,
                                          early_stop=False)

    preset: str | None = None
    iterations: int | None = None  # type: ignore[assignment]
    init: str = "zeros"
    tau: int | None = None
    lr: float | None = None
    lr_reference_entries: int | None = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    t_start: int | None = None
    t_end: int | None = None
    schedule: str = "linear"
    timesteps: list[int] = field(default_factory=list)
    purification: str = "ddim"
    ddim_steps: int = 20
    sigma_start: float | None = None
    sigma_end: float | None = None
    early_stop: bool | None = None
    latent: str = "none"

    def __post_init__(self) -> None:
        self.apply_preset()
        if self.preset and self.lr_reference_entries is None:
            self.lr_reference_entries = _PAPER_ENTRIES[self.preset.removesuffix("-noisy")]
        check_choice(self.name, "optimizer", self.optimizer, ("sgd", "adam"))
        check_choice(self.name, "schedule", self.schedule, ("linear", "constant", "custom"))
        check_choice(self.name, "purification", self.purification, ("ddim", "tweedie", "consistency"))
        check_choice(self.name, "latent", self.latent, ("none", "latent", "pixel"))
        if self.schedule == "custom" and len(self.timesteps) != self.iterations:
            raise ValueError(f"dcdp: schedule 'custom' needs {self.iterations} timesteps "
                             f"(one per iteration), got {len(self.timesteps)}")
        super().__post_init__()

    # -- schedule ----------------------------------------------------------------------------
    def strengths(self, num_timesteps: int | None = None) -> list[int]:
        """The purification strengths T_0, ..., T_{K-1} (strength T noises to timestep T - 1).

        :param int num_timesteps: the prior's schedule length; strengths are then capped at
            it (the papers' T0 = 1000 on a 1000-step schedule noises to its last step, 999).
        """
        if self.schedule == "custom":
            ts = [max(1, int(t)) for t in self.timesteps]
        elif self.schedule == "constant":
            ts = [max(1, int(self.t_start))] * int(self.iterations)
        else:
            ts = linear_schedule(int(self.t_start), int(self.t_end), int(self.iterations))
        return ts if num_timesteps is None else [min(t, num_timesteps) for t in ts]

    def consistency_levels(self, prior: Any) -> list[float]:
        """The consistency model's purification levels sigma_0, ..., sigma_{K-1}, in its range.

        Linear from ``sigma_start`` to ``sigma_end`` (``"constant"``: ``sigma_start`` every
        round); an unset start or end, and every level of a ``"custom"`` schedule, is the VE
        level of the strength's timestep on the linear DDPM schedule. The ends are clamped to
        the prior's ``[sigma_min, sigma_max]`` (then interpolated), so the noise added is the
        noise the model is told of.
        """
        abar = linear_alphas_cumprod()

        def ddpm_level(strength: int) -> float:
            a = abar[min(max(int(strength), 1), abar.numel()) - 1]
            return float(((1 - a) / a).sqrt())

        lo = float(getattr(prior, "sigma_min", 0.0))
        hi = float(getattr(prior, "sigma_max", math.inf))

        def clamp(s: float) -> float:
            return min(max(s, lo), hi)

        k = int(self.iterations)
        start = clamp(ddpm_level(int(self.t_start)) if self.sigma_start is None else float(self.sigma_start))
        end = clamp(ddpm_level(max(1, int(self.t_end))) if self.sigma_end is None else float(self.sigma_end))
        if self.schedule == "custom":
            return [clamp(ddpm_level(t)) for t in self.timesteps]
        if self.schedule == "constant":
            return [start] * k
        return linear_levels(start, end, k)

    # -- the algorithm -------------------------------------------------------------------------
    def setup(self, ctx: SolveContext, x: Tensor) -> dict[str, Any]:
        """The start, and what every round needs: the strengths T_k (or the consistency
        model's levels), the learning rate on the mean squared residual, the early-stop
        target (None: run all tau steps)."""
        lr = float(self.lr)
        if self.lr_reference_entries:
            lr *= ctx.y[0].numel() / self.lr_reference_entries
        strengths: list[Any] = (self.consistency_levels(ctx.prior)
                                if self.purification == "consistency" else
                                self.strengths(int(getattr(ctx.prior, "num_timesteps", 1000))))
        state: dict[str, Any] = {
            "x": x, "z": x,
            "timesteps": strengths,
            "lr": lr,
            "target": ops.noise_sigma(ctx.operator) ** 2 if self.early_stop else None,
        }
        if self.latent != "none":
            with torch.no_grad():
                state["z"] = ctx.prior.encode(x)
        return state

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        """Round k: data consistency from the purified estimate, then purification at T_k."""
        prior, t, lr, target = ctx.prior, state["timesteps"][k], state["lr"], state["target"]
        if self.latent == "none":
            x = self.data_step(ctx, state["z"], lr, target)
            ctx.log(k, x, stage="data")
            z = self.purify(ctx, x, t)
            return {**state, "x": z, "z": z}
        if self.latent == "latent":  # approach I: consistency on z through the decoder
            z = self.data_step(ctx, state["z"], lr, target, decode=prior.decode)
            with torch.no_grad():
                x = prior.decode(z)
                z = prior.encode(x)
        else:  # approach II: consistency on x = D(z) in pixel space, then encode
            with torch.no_grad():
                x0 = prior.decode(state["z"])
            x = self.data_step(ctx, x0, lr, target)
            with torch.no_grad():
                z = prior.encode(x)
        ctx.log(k, x, stage="data")
        z = self.purify(ctx, z, t)
        with torch.no_grad():
            return {**state, "x": prior.decode(z), "z": z}

    def data_step(self, ctx: SolveContext, z: Tensor, lr: float, target: float | None,
                  decode: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """Tau optimiser steps on each image's mean squared residual ``mean((y - A x)^2)``, from ``z``.

        The per-image means are summed over the batch, so each image gets the gradient it
        gets alone (SGD's momentum and Adam's moments are per entry). A fresh optimiser each
        round; ``x = decode(z)`` when given (latent approach I); an image stops (is not moved
        again this round) once its loss reaches ``target``, the others go on.
        """
        v = z.detach().clone().requires_grad_(True)
        opt = (torch.optim.SGD([v], lr=lr, momentum=self.momentum) if self.optimizer == "sgd"
               else torch.optim.Adam([v], lr=lr))
        stopped = torch.zeros(v.shape[0], dtype=torch.bool, device=v.device)
        with torch.enable_grad():
            for _ in range(int(self.tau)):
                signal = decode(v) if decode is not None else v
                r = ctx.y - ctx.operator.A(signal)
                loss = (r.abs() if r.is_complex() else r).pow(2).flatten(1).mean(1)  # per image
                if target is not None:
                    stopped = stopped | (loss.detach() <= target)
                    if bool(stopped.all()):
                        break
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                kept = v.detach()[stopped].clone() if bool(stopped.any()) else None
                opt.step()
                if kept is not None:
                    with torch.no_grad():
                        v[stopped] = kept
        return v.detach()

    def purify(self, ctx: SolveContext, x: Tensor, t: Any) -> Tensor:
        """Diffusion purification of strength ``t``: noise to ``t - 1``, then back to a clean
        estimate (for a consistency model, ``t`` is its level sigma)."""
        prior = ctx.prior
        with torch.no_grad():
            if self.purification == "consistency":
                sigma = float(t)
                return prior.f(x + sigma * ctx.randn_like(x), sigma)
            strength = int(t)
            x_t = prior.noise(x, strength - 1, generator=ctx.generator)
            if self.purification == "tweedie":
                return prior.x0(x_t, max(strength, 2) - 1, clip=True)
            grid = ddim_grid(strength, self.ddim_steps)
            return prior.ddim(x_t, grid[0], timesteps=grid)

    def initial_point(self, ctx: SolveContext) -> Tensor:
        if self.init == "zeros" and self.latent == "none":
            # Only the signal's shape is needed; A^T y (or A^+ y) gives it.
            with torch.no_grad():
                ref = (ctx.operator.A_adjoint(ctx.y) if ops.is_linear(ctx.operator)
                       else ops.pseudo_inverse(ctx.operator, ctx.y))
            return torch.zeros_like(ref)
        return super().initial_point(ctx)
