"""``pnpkit new-plugin``: a plugin package that installs with pip and passes its own tests."""

from __future__ import annotations

import re
from pathlib import Path

SETUP_CFG = """[metadata]
name = pnpkit-{name}
version = 0.1.0
description = A pnpkit {kind} plugin

[options]
packages = find:
install_requires =
    pnpkit>={core_version},<{next_minor}

[options.extras_require]
test = pytest

[options.entry_points]
pnpkit =
    {name} = pnpkit_{module}
"""

PYPROJECT = """[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"
"""

README = """# pnpkit-{name}

A pnpkit {kind} plugin. Install it next to pnpkit and it is discovered through the
`pnpkit` entry-point group:

```
pip install -e .
pnpkit plugins          # lists {kind}:{name}
pytest tests            # runs pnpkit's {kind} contract against it
```
"""

CODE = {
    "solver": '''"""A pnpkit solver plugin: gradient descent on the data term, then the prior's denoiser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pnpkit
from pnpkit import operators as ops
from pnpkit.solvers import IterativeSolver, SolveContext


@dataclass(kw_only=True)
class {cls}(IterativeSolver):
    """Gradient step on 1/2 ||A x - y||^2 followed by denoising at ``sigma``."""

    name = "{name}"
    stepsize: float = 0.5
    sigma: float = 0.05

    def step(self, ctx: SolveContext, state: dict[str, Any], k: int) -> dict[str, Any]:
        x = state["x"] - self.stepsize * ops.data_gradient(ctx.operator, state["x"], ctx.y)
        return {{"x": ctx.prior.denoise(x, self.sigma)}}


@pnpkit.hookimpl
def register_solvers(register: Any) -> None:
    register("{name}", {cls}, description="template solver")
''',
    "prior": '''"""A pnpkit prior plugin: shrinkage towards zero (the MAP denoiser of a Gaussian prior)."""

from __future__ import annotations

from typing import Any

import pnpkit


class {cls}(pnpkit.DenoiserPrior):
    """``denoise(x, sigma) = x / (1 + lam sigma^2)``."""

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam

    def denoise(self, x: Any, sigma: Any) -> Any:
        self.nfe += 1
        return x / (1 + self.lam * float(sigma) ** 2)


@pnpkit.hookimpl
def register_priors(register: Any) -> None:
    register("{name}", {cls}, description="template prior")
''',
    "operator": '''"""A pnpkit operator plugin: keep every other sample (a linear, deepinv-style operator)."""

from __future__ import annotations

from typing import Any

import pnpkit


class {cls}:
    """Subsampling by 2 along the last axis, with adjoint and pseudo-inverse."""

    linear = True

    def __init__(self, sigma_y: float = 0.0, shape: tuple[int, ...] | None = None) -> None:
        from pnpkit.operators import GaussianNoise

        self.noise_model = GaussianNoise(sigma_y)

    def A(self, x: Any, **kwargs: Any) -> Any:
        return x[..., ::2]

    def A_adjoint(self, y: Any, **kwargs: Any) -> Any:
        import torch

        x = torch.zeros(*y.shape[:-1], 2 * y.shape[-1], dtype=y.dtype, device=y.device)
        x[..., ::2] = y
        return x

    def A_dagger(self, y: Any, **kwargs: Any) -> Any:
        return self.A_adjoint(y)


@pnpkit.hookimpl
def register_operators(register: Any) -> None:
    register("{name}", {cls}, description="template operator")
''',
}

TESTS = {
    "solver": '''import pytest

from pnpkit.testing import SolverContract
from pnpkit_{module} import {cls}


class Test{cls}(SolverContract):
    @pytest.fixture
    def solver(self):
        return {cls}(iterations=10)
''',
    "prior": '''import pytest
import torch

from pnpkit.testing import PriorContract
from pnpkit_{module} import {cls}


class Test{cls}(PriorContract):
    @pytest.fixture
    def prior(self):
        return {cls}(lam=2.0)

    @pytest.fixture
    def signal(self):
        return torch.rand(2, 1, 8, 8) * 2 - 1
''',
    "operator": '''import pytest
import torch

from pnpkit.testing import OperatorContract
from pnpkit_{module} import {cls}


class Test{cls}(OperatorContract):
    @pytest.fixture
    def operator(self):
        return {cls}()

    @pytest.fixture
    def signal(self):
        return torch.rand(2, 1, 16) * 2 - 1
''',
}


def render_plugin(name: str, kind: str, where: Path) -> Path:
    """Write ``where/pnpkit-<name>/`` for a ``kind`` plugin; returns the package folder."""
    from . import __version__

    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ValueError(f"plugin name {name!r} must be lower-case letters, digits, '-' or '_', "
                         "starting with a letter")
    if kind not in CODE:
        raise ValueError(f"kind must be one of {', '.join(CODE)}, got {kind!r}")
    module = name.replace("-", "_")
    cls = "".join(part.capitalize() for part in re.split(r"[-_]", name)) + kind.capitalize()
    major, minor = (int(v) for v in __version__.split(".")[:2])
    fields = dict(name=name, module=module, cls=cls, kind=kind, core_version=__version__,
                  next_minor=f"{major}.{minor + 1}")
    root = Path(where) / f"pnpkit-{name}"
    if root.exists():
        raise FileExistsError(f"{root} already exists; choose another name or folder")
    (root / f"pnpkit_{module}").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "setup.cfg").write_text(SETUP_CFG.format(**fields))
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "README.md").write_text(README.format(**fields))
    (root / f"pnpkit_{module}" / "__init__.py").write_text(CODE[kind].format(**fields))
    (root / "tests" / f"test_{module}.py").write_text(TESTS[kind].format(**fields))
    return root
