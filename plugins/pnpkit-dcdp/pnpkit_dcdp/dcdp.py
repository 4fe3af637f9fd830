"""DCDP: HQS in the mu -> 0 limit, with diffusion purification as the prior step."""

from __future__ import annotations

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

    >>> linear_schedule(400, 0, 10)
    [400, 356, 311, 267, 222, 178, 133, 89, 44, 1]
    """
    if k == 1:
        return [max(1, t_start)]
    return [max(1, round(t_start + (t_end - t_start) * i / (k - 1))) for i in range(k)]


# Measurement entries of each task in the paper's setting (256 x 256 RGB): presets rescale
# the learning rate by M / M_paper so the step on 1/2 ||A x - y||^2 matches the paper's at
# any image size (the authors' loss is a mean over the M measurement entries).
_PAPER_ENTRIES = {
    "sr4": 3 * 64 * 64,
    "box-inpainting": 3 * (256 * 256 - 100 * 100),
    "gaussian-deblur": 3 * 256 * 256,
    "motion-deblur": 3 * 256 * 256,
    "phase-retrieval": 3 * 512 * 512,
}


@dataclass(kw_only=True)
class DCDP(IterativeSolver):
    """Decoupled data consistency with diffusion purification (Li et al., arXiv:2403.06054).

    Each outer iteration ``k`` runs a data-consistency step and a purification:

    .. math::

        x &\\leftarrow \\text{$\\tau$ steps of SGD (momentum) or Adam on }
              \\tfrac1M \\|y - A x\\|^2 \\text{ from the purified } x \\\\
        x_{T_k} &= \\sqrt{\\bar\\alpha_{T_k}}\\, x + \\sqrt{1 - \\bar\\alpha_{T_k}}\\, z \\\\
        x &\\leftarrow \\begin{cases} \\mathrm{DDIM}(x_{T_k}, T_k \\to 0) & \\text{version 1} \\\\
              \\mathrm{clip}(\\hat x_0(x_{T_k}, T_k)) & \\text{version 2 (Tweedie)} \\\\
              f_\\theta(x + \\sigma(T_k) z, \\sigma(T_k)) & \\text{consistency model} \\end{cases}

    with ``T_k`` decaying linearly from ``t_start`` to ``t_end`` (or constant, or a custom
    list). It is half-quadratic splitting in the limit mu -> 0: :meth:`step` is one round of
    the paper's algorithm, :meth:`data_step` (the data-consistency box) then :meth:`purify`
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
    :param bool early_stop: stop each data step once the mean squared residual reaches the
        measurement noise variance (the discrepancy principle, for noisy measurements).
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
    }
    BASE: ClassVar[dict[str, Any]] = dict(iterations=10, tau=100, lr=1e3, t_start=400, t_end=0)

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
    early_stop: bool = False
    latent: str = "none"

    def __post_init__(self) -> None:
        self.apply_preset()
        if self.preset and self.lr_reference_entries is None:
            self.lr_reference_entries = _PAPER_ENTRIES[self.preset]
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
        """The purification strengths T_0, ..., T_{K-1}.

        :param int num_timesteps: the prior's schedule length; strengths are then capped at
            its last index (the papers write T0 = 1000 for a 1000-step schedule ending at 999).
        """
        if self.schedule == "custom":
            ts = [max(1, int(t)) for t in self.timesteps]
        elif self.schedule == "constant":
            ts = [max(1, int(self.t_start))] * int(self.iterations)
        else:
            ts = linear_schedule(int(self.t_start), int(self.t_end), int(self.iterations))
        return ts if num_timesteps is None else [min(t, num_timesteps - 1) for t in ts]

    # -- the algorithm -------------------------------------------------------------------------
    def setup(self, ctx: SolveContext, x: Tensor) -> dict[str, Any]:
        """The start, and what every round needs: the strengths T_k, the learning rate on the
        mean squared residual, the early-stop target (None: run all tau steps)."""
        lr = float(self.lr)
        if self.lr_reference_entries:
            lr *= ctx.y[0].numel() / self.lr_reference_entries
        state: dict[str, Any] = {
            "x": x, "z": x,
            "timesteps": self.strengths(int(getattr(ctx.prior, "num_timesteps", 1000))),
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
        """Tau optimiser steps on the mean squared residual ``mean((y - A x)^2)``, from ``z``.

        A fresh optimiser each round; ``x = decode(z)`` when given (latent approach I); stops
        early once the loss reaches ``target``.
        """
        v = z.detach().clone().requires_grad_(True)
        opt = (torch.optim.SGD([v], lr=lr, momentum=self.momentum) if self.optimizer == "sgd"
               else torch.optim.Adam([v], lr=lr))
        with torch.enable_grad():
            for _ in range(int(self.tau)):
                signal = decode(v) if decode is not None else v
                r = ctx.y - ctx.operator.A(signal)
                loss = (r.abs() if r.is_complex() else r).pow(2).mean()
                if target is not None and float(loss.detach()) <= target:
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return v.detach()

    def purify(self, ctx: SolveContext, x: Tensor, t: int) -> Tensor:
        """Diffusion purification of strength ``t``: noise to ``t``, then back to a clean estimate."""
        prior = ctx.prior
        with torch.no_grad():
            if self.purification == "consistency":
                a = linear_alphas_cumprod()[t]
                sigma = float(((1 - a) / a).sqrt())
                return prior.f(x + sigma * ctx.randn_like(x), sigma)
            x_t = prior.noise(x, t, generator=ctx.generator)
            if self.purification == "tweedie":
                return prior.x0(x_t, t, clip=True)
            return prior.ddim(x_t, t, steps=self.ddim_steps)

    def initial_point(self, ctx: SolveContext) -> Tensor:
        if self.init == "zeros" and self.latent == "none":
            # Only the signal's shape is needed; A^T y (or A^+ y) gives it.
            with torch.no_grad():
                ref = (ctx.operator.A_adjoint(ctx.y) if ops.is_linear(ctx.operator)
                       else ops.pseudo_inverse(ctx.operator, ctx.y))
            return torch.zeros_like(ref)
        return super().initial_point(ctx)
