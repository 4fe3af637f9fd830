"""pnpkit: plug-and-play optimisation for inverse problems with diffusion-model priors.

The public API a plugin imports:

- :data:`hookimpl` to mark hook implementations (see :mod:`pnpkit.hookspecs`);
- :mod:`pnpkit.operators`, :mod:`pnpkit.priors`, :mod:`pnpkit.solvers` for the interfaces
  and the generic HQS / ADMM / PGD a solver plugin builds on;
- :func:`create` and :func:`get_manager` to build registered components (by bare name, or
  ``plugin:name``), :class:`PluginError` when one cannot be found;
- :mod:`pnpkit.metrics` for the generic metrics (``psnr``, ``ssim``, ``si_snr``, ``si_snri``,
  ``mse``) a plugin's own metric may build on;
- :class:`pnpkit.data.Item`, what a dataset factory returns (one signal with its id, kind,
  sample rate and channel names);
- :mod:`pnpkit.bridge` to hand a pnpkit prior to deepinv (``as_deepinv_denoiser``; it
  imports deepinv);
- :mod:`pnpkit.testing` for contract tests;
- :func:`load_run` to read a finished ``pnpkit run`` back (configuration, metrics, per-item
  tensors; :mod:`pnpkit.results`), for notebooks.

Importing ``pnpkit`` is cheap: everything but :data:`hookimpl` and ``__version__`` is
imported on first access, so that listing plugins does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

import pluggy

__version__ = "0.1.0"

#: Marks a plugin's hook implementations: ``@pnpkit.hookimpl def register_solvers(register): ...``
hookimpl = pluggy.HookimplMarker("pnpkit")

#: public name -> the submodule that defines it, imported on first access.
_LAZY: dict[str, str] = {
    "PluginError": "plugins", "create": "plugins", "get_manager": "plugins",
    "DenoiserPrior": "priors", "DiffusionPrior": "priors", "FunctionDenoiser": "priors",
    "Prior": "priors",
    "ADMM": "solvers", "HQS": "solvers", "PGD": "solvers", "IterativeSolver": "solvers",
    "Result": "solvers", "SolveContext": "solvers", "Solver": "solvers",
    "load_run": "results",
}

#: submodules reachable as attributes (``pnpkit.metrics.psnr``) without importing them first.
_SUBMODULES = ("bridge", "config", "data", "hookspecs", "metrics", "operators", "pipeline",
               "plugins", "priors", "registry", "results", "solvers", "testing")

__all__ = [
    "ADMM", "HQS", "PGD", "DenoiserPrior", "DiffusionPrior", "FunctionDenoiser", "IterativeSolver",
    "PluginError", "Prior", "Result", "SolveContext", "Solver", "__version__", "create",
    "get_manager", "hookimpl", "load_run",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'pnpkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
