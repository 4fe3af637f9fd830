"""pnpkit: plug-and-play optimisation for inverse problems with diffusion-model priors.

The public API a plugin imports:

- :data:`hookimpl` to mark hook implementations (see :mod:`pnpkit.hookspecs`);
- :mod:`pnpkit.operators`, :mod:`pnpkit.priors`, :mod:`pnpkit.solvers` for the interfaces
  and the generic HQS / ADMM / PGD a solver plugin builds on;
- :func:`create` and :func:`get_manager` to build registered components;
- :mod:`pnpkit.testing` for contract tests.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marks a plugin's hook implementations: ``@pnpkit.hookimpl def register_solvers(register): ...``
hookimpl = pluggy.HookimplMarker("pnpkit")

from .plugins import PluginError, create, get_manager  # noqa: E402
from .priors import DenoiserPrior, DiffusionPrior, FunctionDenoiser, Prior  # noqa: E402
from .solvers import ADMM, HQS, PGD, IterativeSolver, Result, SolveContext, Solver  # noqa: E402

__all__ = [
    "ADMM", "HQS", "PGD", "DenoiserPrior", "DiffusionPrior", "FunctionDenoiser", "IterativeSolver",
    "PluginError", "Prior", "Result", "SolveContext", "Solver", "__version__", "create",
    "get_manager", "hookimpl",
]
