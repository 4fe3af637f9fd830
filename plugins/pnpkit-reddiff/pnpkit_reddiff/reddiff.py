"""RED-Diff: fit q(x0 | y) = N(mu, sigma^2 I) by stochastic optimisation, no network backprop."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from pnpkit.solvers import IterativeSolver, SolveContext, check_choice

#: The paper's weightings g of the inverse square-root SNR, w_t = lambda * g(snr_inv).
WEIGHTINGS: dict[str, Callable[[float], float]] = {
    "identity": lambda s: s,
    "sqrt": math.sqrt,
    "square": lambda s: s * s,
    "log1p": math.log1p,
    "clip": lambda s: min(s, 1.0),
    "power2/3": lambda s: s ** (2.0 / 3.0),
    "constant": lambda s: 1.0,
}


def timestep_order(num_steps: int, total: int, order: str,
                   generator: torch.Generator | None = None) -> list[int]:
    """``num_steps`` timesteps spread over [0, total - 1] in the given order.

    >>> timestep_order(5, 1000, "descending")
    [999, 749, 500, 250, 0]
    """
    ts = torch.linspace(total - 1, 0, num_steps).round().long()
    if order == "ascending":
        ts = ts.flip(0)
    elif order == "random":
        # A permutation, not noise: drawn on the generator's device as randn_like draws noise.
        device = generator.device if generator is not None else "cpu"
        ts = ts[torch.randperm(num_steps, generator=generator, device=device).cpu()]
    return [int(t) for t in ts]


@dataclass(kw_only=True)
class REDDiff(IterativeSolver):
    """RED-Diff (Mardani et al., arXiv:2305.04391).

    The mean ``mu`` of a Gaussian posterior approximation is optimised; at each timestep
    ``t`` (descending by default):

    .. math::

        x_t &= \\sqrt{\\bar\\alpha_t}\\,\\mu + \\sqrt{1 - \\bar\\alpha_t}\\,\\epsilon,
        \\qquad \\epsilon \\sim \\mathcal N(0, I) \\\\
        \\mathcal L &= \\tfrac{v}{2M}\\|y - A\\mu\\|^2 + \\lambda\\, g\\!\\left(
           \\sqrt{(1-\\bar\\alpha_t)/\\bar\\alpha_t}\\right)\\,
           \\tfrac1N \\langle \\mathrm{sg}[\\epsilon_\\theta(x_t, t) - \\epsilon], \\mu\\rangle

    followed by one step of the optimiser (Adam with betas (0.9, 0.99) by default). The
    regulariser's gradient is the detached residual: the network is never differentiated.
    :meth:`step` is that update line for line; :meth:`setup` puts ``mu``, its optimiser and
    the timesteps in the state.

    Fidelity versus perception: a larger ``lam`` (or a smaller ``lr``) leans on the prior
    (sharper, less faithful); a smaller ``lam`` on the measurements (the paper's ablation).

    :param str preset: the authors' settings for a task (``sr4``, ``box-inpainting``,
        ``random-inpainting``, ``gaussian-deblur``, ``motion-deblur``, ``phase-retrieval``):
        1000 steps, lambda 0.25, lr 0.1 (SR), 0.25 (inpainting), 0.5 (deblurring, phase
        retrieval).
    :param int iterations: number of timesteps visited (one network call each).
    :param float lam: ``lambda``, the regularisation weight.
    :param float lr: the optimiser's learning rate.
    :param str optimizer: a ``torch.optim`` class name (``Adam``, ``SGD``, ``AdamW``...).
    :param list betas: Adam's betas.
    :param str weighting: ``g``: one of :data:`WEIGHTINGS`.
    :param str order: ``"descending"`` (the paper's), ``"ascending"`` or ``"random"``.
    :param float sigma_x0: noise added to ``mu`` before diffusing (0: the paper's default);
        with it, the data term is evaluated at the noisy ``x0 = mu + sigma_x0 n`` too, as the
        authors' code does (its gradient with respect to ``mu`` is the one at ``x0``).
    :param float obs_weight: ``v``, the weight of the observation loss.
    :param bool latent: optimise a latent ``mu`` and decode it inside the data term
        (for priors with ``encode`` / ``decode``).

    >>> from pnpkit.testing import GaussianDiffusionPrior, toy_problem
    >>> op, _, x, y = toy_problem(n=64, m=40)
    >>> REDDiff(iterations=20).solve(y.float(), op, GaussianDiffusionPrior()).nfe
    20
    """

    name = "reddiff"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # The authors' sample_test.sh: lambda 0.25, Adam(0.9, 0.99); lr 0.1 for SR, 0.25 for
        # inpainting, 0.5 for Gaussian and nonlinear deblurring and phase retrieval (motion
        # deblurring, which the scripts do not run, takes their deblurring value).
        "sr4": dict(iterations=1000, lam=0.25, lr=0.1),
        "gaussian-deblur": dict(iterations=1000, lam=0.25, lr=0.5),
        "motion-deblur": dict(iterations=1000, lam=0.25, lr=0.5),
        "box-inpainting": dict(iterations=1000, lam=0.25, lr=0.25),
        "random-inpainting": dict(iterations=1000, lam=0.25, lr=0.25),
        "phase-retrieval": dict(iterations=1000, lam=0.25, lr=0.5),
        # The README example of the authors' code: 100 steps, lr 0.5.
        "quick": dict(iterations=100, lam=0.25, lr=0.5),
    }
    BASE: ClassVar[dict[str, Any]] = dict(iterations=1000, lam=0.25, lr=0.1)

    preset: str | None = None
    iterations: int | None = None  # type: ignore[assignment]
    lam: float | None = None
    lr: float | None = None
    optimizer: str = "Adam"
    betas: list[float] = (0.9, 0.99)  # type: ignore[assignment]
    weighting: str = "identity"
    order: str = "descending"
    sigma_x0: float = 0.0
    obs_weight: float = 1.0
    latent: bool = False

    def __post_init__(self) -> None:
        self.apply_preset()
        self.betas = list(self.betas)
        check_choice(self.name, "weighting", self.weighting, WEIGHTINGS)
        check_choice(self.name, "order", self.order, ("descending", "ascending", "random"))
        if not isinstance(getattr(torch.optim, self.optimizer, None), type):
            raise ValueError(f"reddiff: {self.optimizer!r} is not a torch.optim optimiser "
                             "(e.g. Adam, SGD, AdamW)")
        super().__post_init__()

    def _make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        cls = getattr(torch.optim, self.optimizer)
        kwargs: dict[str, Any] = {"lr": self.lr}
        if "betas" in cls.__init__.__code__.co_varnames:
            kwargs["betas"] = tuple(self.betas)
        return cls(params, **kwargs)

    def setup(self, ctx: SolveContext, x: Tensor) -> dict[str, Any]:
        """``mu`` (a latent with ``latent``), the optimiser on it, and the timesteps in order."""
        mu = ctx.prior.encode(x) if self.latent else x
        mu = mu.detach().clone().requires_grad_(True)
        return {"x": ctx.prior.decode(mu).detach() if self.latent else mu.detach(), "mu": mu,
                "timesteps": timestep_order(int(self.iterations), ctx.prior.num_timesteps,
                                            self.order, ctx.generator),
                "optimizer": self._make_optimizer([mu])}

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        """Timestep t_k: diffuse mu, one network call, one optimiser step on the loss."""
        prior, mu, t = ctx.prior, state["mu"], state["timesteps"][k]
        decode = prior.decode if self.latent else (lambda m: m)
        a = float(prior.alphas_cumprod[t])
        x0 = mu.detach()
        if self.sigma_x0 > 0:
            x0 = x0 + self.sigma_x0 * ctx.randn_like(x0)
        eps = ctx.randn_like(x0)
        with torch.no_grad():
            eps_hat = prior.eps(prior.noise(x0, t, noise=eps), t)  # sg[eps_theta(x_t, t)]
        w = self.lam * WEIGHTINGS[self.weighting](math.sqrt((1 - a) / a))
        with torch.enable_grad():  # autograd on the data term only, at x0 = mu (+ sigma_x0 n)
            m = x0.detach().requires_grad_(True)
            # Each item's own mean over its entries, summed over the batch: every item gets
            # the gradient it gets alone (a mean over the batch would divide it by B).
            obs = 0.5 * (ctx.y - ctx.operator.A(decode(m))).abs().pow(2).flatten(1).mean(1)
            (g_obs,) = torch.autograd.grad(obs.sum(), m)  # d/dmu of obs(mu + c) is obs'(mu + c)
        g_reg = (eps_hat - eps) / eps[0].numel()  # gradient of each item's mean(sg[eps_hat - eps] * mu)
        # Before the step: x0 may be mu's own storage, which the optimiser updates in place.
        log = {"t": t, "weight": w, "loss_obs": float(obs.detach().mean()),
               "loss_reg": float(((eps_hat - eps) * x0).mean())}
        opt = state["optimizer"]
        opt.zero_grad(set_to_none=True)
        mu.grad = self.obs_weight * g_obs + w * g_reg
        opt.step()
        with torch.no_grad():
            x = decode(mu) if self.latent else mu.detach().clone()
        return {**state, "x": x, "log": log}
