"""
A third-party solver in 40 lines
================================

A new method is a keyword-only dataclass of settings with a ``setup`` and a ``step``: pnpkit's
:class:`~pnpkit.solvers.IterativeSolver` runs the loop, logs the history, counts network
calls, times it, and gives it a config that round-trips. Here: plug-and-play FISTA
(accelerated proximal gradient with the prior's denoiser as the proximal step), written,
registered under a name, run from Python and from a configuration like any installed solver,
and checked by the contract tests every solver plugin passes.

Run it as a script (``python examples/third_party_solver.py``) or cell by cell (``# %%``).
``PNPKIT_EXAMPLE_SIZE`` (the picture's side, default 64) and ``PNPKIT_EXAMPLE_ITERATIONS``
(default 30) make it smaller and quicker; ``PNPKIT_EXAMPLE_OUT`` is where it writes (default
``runs/third-party-solver``). At the defaults it takes about 15 s on 2 CPU cores.
"""
# ruff: noqa: E402  (gallery style: each cell imports what it introduces)

# %%
# The solver
# ----------
#
# The settings are the dataclass's fields; everything one solve needs (the momentum, the
# previous iterate) lives in the ``state`` that ``setup`` returns and ``step`` passes on, never
# on ``self``, so one instance can solve several problems at once.

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pnpkit
from pnpkit import operators as ops
from pnpkit.solvers import IterativeSolver, SolveContext, geometric


@dataclass(kw_only=True)
class PnPFISTA(IterativeSolver):
    """Plug-and-play FISTA: a gradient step on 1/2 ||A x - y||^2, the denoiser, momentum.

    :param float stepsize: the gradient step (1 / the Lipschitz constant of A^T A at most).
    :param float sigma: the denoiser's noise level at the first iteration.
    :param float sigma_end: its level at the last (geometric decay between the two).
    """

    name = "pnp-fista"
    stepsize: float = 1.0
    sigma: float = 0.1
    sigma_end: float = 0.02

    def setup(self, ctx: SolveContext, x: Any) -> dict[str, Any]:
        return {"x": x, "z": x, "t": 1.0}

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        z = state["z"]
        sigma = geometric(self.sigma, self.sigma_end, k, self.iterations)
        x = ctx.prior.denoise(z - self.stepsize * ops.data_gradient(ctx.operator, z, ctx.y), sigma)
        t = (1 + math.sqrt(1 + 4 * state["t"] ** 2)) / 2
        return {"x": x, "z": x + (state["t"] - 1) / t * (x - state["x"]), "t": t,
                "log": {"sigma": sigma}}


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    register("pnp-fista", PnPFISTA, description="plug-and-play FISTA (an example)",
             paper="Beck & Teboulle 2009, with a denoiser as the proximal step")


# %%
# Register it
# -----------
#
# Packaged, a plugin names its module in the ``pnpkit`` entry-point group of its
# ``setup.cfg`` (``pnpkit new-plugin NAME --kind solver`` writes one that installs and passes
# its tests). In a script or a notebook, an entry point naming this very module does the same:
# the plugin manager loads it, and ``pnpkit.create``, ``pnpkit show`` and configurations
# find ``pnp-fista`` next to every installed solver.

from importlib.metadata import EntryPoint, entry_points

from pnpkit.plugins import ENTRY_POINT_GROUP, PluginManager, reset_manager

here = EntryPoint(name="my-solvers", value=__name__, group=ENTRY_POINT_GROUP)
reset_manager(PluginManager(entry_points=[*entry_points(group=ENTRY_POINT_GROUP), here]))
print(pnpkit.get_manager().get("solver", "pnp-fista").qualified)  # my-solvers:pnp-fista

# %%
# Solve with it
# -------------
#
# Random inpainting of ``camera`` (half the pixels missing; held out from the prior's
# training) with noise 0.02, from Python, against the core's PnP-HQS with the same denoiser,
# iterations and noise levels.

import torch

from pnpkit.data import sample_item
from pnpkit.metrics import psnr

SIZE = int(os.environ.get("PNPKIT_EXAMPLE_SIZE", "64"))
ITERATIONS = int(os.environ.get("PNPKIT_EXAMPLE_ITERATIONS", "30"))
OUT = Path(os.environ.get("PNPKIT_EXAMPLE_OUT", "runs/third-party-solver")).resolve()
OUT.mkdir(parents=True, exist_ok=True)

x = sample_item("camera", size=SIZE, channels=1).signal[None]
op = pnpkit.create("operator", "random-inpainting", shape=tuple(x.shape[1:]), sigma_y=0.02)
y = ops.measure(op, x, generator=torch.Generator().manual_seed(0))
prior = pnpkit.create("prior", "default-grey32")
for name in ("pnp-fista", "hqs"):
    solver = pnpkit.create("solver", name, iterations=ITERATIONS, sigma=0.1, sigma_end=0.02)
    result = solver.solve(y, op, prior, reference=x, generator=torch.Generator().manual_seed(0))
    print(f"{name:<10} {float(psnr(result.x.clamp(-1, 1), x)):6.2f} dB, {result.nfe} NFE, "
          f"{result.wall_time:.1f} s (A^+ y: {float(psnr(ops.pseudo_inverse(op, y), x)):.2f} dB)")

# %%
# From a configuration
# --------------------
#
# Registered, it is a solver like the others for ``pnpkit.pipeline`` (what ``pnpkit run``
# runs): its settings are checked (a typo is an error naming the closest setting), saved in the
# run's ``config.json``, and the run reads back with :func:`pnpkit.load_run`.

from pnpkit import config, pipeline

(OUT / "inpaint.toml").write_text(f"""\
output = "run"
metrics = ["psnr", "ssim"]

[data]
sample = "camera"
size = {SIZE}
channels = 1

[operator]
name = "random-inpainting"
sigma_y = 0.02

[prior]
name = "default-grey32"

[solver]
name = "pnp-fista"
iterations = {ITERATIONS}
sigma = 0.1
""")
pipeline.run(config.load(OUT / "inpaint.toml"), overwrite=True, progress=False)
run = pnpkit.load_run(OUT / "run")
print(run, run.config["solver"])

# %%
# The contract every solver plugin passes
# ---------------------------------------
#
# :class:`pnpkit.testing.SolverContract` (what a plugin's tests subclass; it needs pytest):
# runs and reports, the same result under the same seed and inside ``torch.no_grad()``, the
# config round trip, two problems at once with one instance, unknown settings refused. Here
# each check is called directly on the contract's own toy problem.

from pnpkit.testing import GaussianDiffusionPrior, SolverContract, toy_problem

op_toy, _, x_toy, y_toy = toy_problem(n=64, m=40, sigma=0.0)
problem = (op_toy, GaussianDiffusionPrior(scale=0.6), x_toy.float(), y_toy.float())
contract, solver = SolverContract(), PnPFISTA(iterations=10)
for check in sorted(n for n in dir(contract) if n.startswith("test_")):
    method = getattr(contract, check)
    method(solver) if check == "test_unknown_setting_is_rejected" else method(solver, problem)
    print(f"passed {check}")
