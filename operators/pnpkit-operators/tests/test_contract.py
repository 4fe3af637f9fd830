"""The core's operator contract, run on every operator this plugin registers."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit.testing import OperatorContract

GREY, RGB, AUDIO = (1, 32, 32), (3, 32, 32), (4, 512)
#: operators that also take (C, L) signals
ANY_SHAPE = {"mixture", "source-masking", "random-inpainting"}
EXPECTED = {"super-resolution", "box-inpainting", "random-inpainting", "gaussian-deblur",
            "motion-deblur", "phase-retrieval", "denoising", "compressed-sensing", "mixture",
            "source-masking", "blur", "inpainting", "sr-avgpool", "separable-gaussian-blur"}
#: the settings an operator cannot do without (the file-based ones: a kernel, a mask), as
#: nested tuples so that the built operators can be cached
KERNEL = ((0.0, 1.0, 0.0, 0.0), (1.0, 4.0, 2.0, 1.0), (0.0, 2.0, 1.0, 0.0))  # 3 x 4: even width
MASK = tuple(tuple(float((i * 7 + j * 3) % 5 != 0) for j in range(32)) for i in range(32))
REQUIRED: dict[str, dict[str, Any]] = {"blur": {"kernel": KERNEL}, "inpainting": {"mask": MASK}}


def registered() -> list[str]:
    table = pnpkit.get_manager().components["operator"]
    return sorted(name for name, comp in table.items() if comp.plugin == "operators")


def cases() -> list[Any]:
    out = []
    for name in registered():
        shapes = [GREY, RGB] + ([AUDIO] if name in ANY_SHAPE else [])
        for shape in shapes:
            settings: dict[str, Any] = {"sigma_y": 0.05, **REQUIRED.get(name, {})}
            if name == "source-masking" and shape[0] == 1:
                settings["known"] = [0]
            out.append(pytest.param((name, shape, settings),
                                    id=f"{name}-{'x'.join(map(str, shape))}"))
    # the other boundary handling of the blurs and of super-resolution
    for name in ("gaussian-deblur", "motion-deblur"):
        out.append(pytest.param((name, RGB, {"padding": "circular"}), id=f"{name}-circular"))
    out.append(pytest.param(("blur", RGB, {"padding": "circular", "kernel": KERNEL}),
                            id="blur-circular"))
    out.append(pytest.param(("super-resolution", GREY, {"padding": "reflect", "filter": "bilinear"}),
                            id="super-resolution-reflect"))
    return out


@cache
def _build(name: str, shape: tuple[int, ...], settings: tuple[tuple[str, Any], ...]) -> Any:
    return pnpkit.create("operator", name, shape=shape,
                         **{k: list(v) if isinstance(v, tuple) else v for k, v in settings})


class TestRegisteredOperators(OperatorContract):
    projection_tol = 1e-2

    @pytest.fixture(params=cases())
    def case(self, request: pytest.FixtureRequest) -> tuple[str, tuple[int, ...], dict[str, Any]]:
        return request.param

    @pytest.fixture
    def operator(self, case: Any) -> Any:
        name, shape, settings = case
        frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                              for k, v in settings.items()))
        return _build(name, shape, frozen)

    @pytest.fixture
    def signal(self, case: Any) -> torch.Tensor:
        _, shape, _ = case
        g = torch.Generator().manual_seed(0)
        return torch.rand(2, *shape, generator=g) * 2 - 1

    def test_has_physics_interface(self, operator: Any, signal: torch.Tensor) -> None:
        from deepinv.physics import Physics

        assert isinstance(operator, Physics)
        assert isinstance(operator.linear, bool)
        assert abs(pnpkit.operators.noise_sigma(operator) - 0.05) < 1e-6 or \
            pnpkit.operators.noise_sigma(operator) == 0.0
        assert callable(operator.project) and callable(operator.A_dagger)
        assert operator.A_vjp(signal, operator.A(signal)).shape == signal.shape


def test_plugin_registers_every_operator() -> None:
    assert set(registered()) == EXPECTED
    info = pnpkit.get_manager().plugins["operators"]
    assert info.error is None and info.distribution == "pnpkit-operators"


def test_listing_plugins_does_not_import_deepinv() -> None:
    code = ("import sys, pnpkit; m = pnpkit.get_manager(); "
            "assert m.plugins['operators'].error is None; "
            "assert 'super-resolution' in m.components['operator']; "
            "print('deepinv' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PNPKIT_LOAD_PLUGINS="operators"), check=True)
    assert out.stdout.strip() == "False", out.stderr
