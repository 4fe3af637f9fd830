"""deepinv's methods behind pnpkit's solve(): range mapping, seeding, errors, contract."""

from __future__ import annotations

import pytest
import torch

import pnpkit
from pnpkit import operators as ops
from pnpkit.testing import GaussianDiffusionPrior, SolverContract
from pnpkit_peers.common import to_unit_range
from pnpkit_peers.optim import DeepinvADMM, DeepinvHQS, DeepinvRED
from pnpkit_peers.samplers import DDRM, DPS, DiffPIR


def inpainting(sigma: float = 0.0, size: int = 16):
    import deepinv

    g = torch.Generator().manual_seed(0)
    op = deepinv.physics.Inpainting(img_size=(1, size, size), mask=0.6, rng=g,
                                    noise_model=deepinv.physics.GaussianNoise(sigma))
    low = torch.rand(1, 1, 4, 4, generator=g) * 1.6 - 0.8
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=True)
    y = ops.measure(op, x, g)
    return op, x, y


def test_unit_range_mapping_is_exact_for_linear_operators():
    op, x, y = inpainting(sigma=0.1)
    y_clean = op.A(x)
    y01, physics = to_unit_range(y_clean, op)
    torch.testing.assert_close(physics.A((x + 1) / 2), y01, rtol=1e-6, atol=1e-6)
    assert ops.noise_sigma(physics) == pytest.approx(0.05)
    assert ops.noise_sigma(op) == pytest.approx(0.1), "the caller's operator is untouched"


class Square:
    linear = False

    def A(self, x):
        return x**2


def test_methods_that_do_not_apply_say_why():
    with pytest.raises(TypeError, match="nonlinear: this deepinv method works on \\[0, 1\\] images"):
        to_unit_range(torch.ones(1, 4), Square())
    import deepinv

    blur = deepinv.physics.Blur(filter=torch.ones(1, 1, 3, 3) / 9)
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(TypeError, match="DDRM needs a decomposable operator"):
        DDRM(iterations=3).solve(blur.A(x), blur, GaussianDiffusionPrior())


@pytest.mark.parametrize("solver", [
    DDRM(iterations=10), DiffPIR(iterations=10),
    DeepinvHQS(iterations=5), DeepinvADMM(iterations=5), DeepinvRED(iterations=5),
])
def test_every_peer_restores_an_inpainting_problem(solver):
    op, x, y = inpainting()
    prior = GaussianDiffusionPrior(scale=0.5)
    res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(0), reference=x)
    assert res.x.shape == x.shape and res.x.dtype == x.dtype and torch.isfinite(res.x).all()
    assert res.nfe > 0 and res.history[-1]["stage"] == "final"
    mask = op.mask.bool()
    # On the observed pixels every method must agree with the measurement (the data term).
    assert float((res.x - x)[mask.expand_as(x)].abs().mean()) < 0.15
    assert pnpkit.get_manager().get("solver", solver.name).factory is type(solver)


def test_dps_guidance_pulls_towards_the_measurements():
    op, x, y = inpainting()
    mask = op.mask.bool().expand_as(x)
    err = {}
    for weight in (0.0, 10.0):
        res = DPS(iterations=50, weight=weight).solve(y, op, GaussianDiffusionPrior(scale=0.5),
                                                      generator=torch.Generator().manual_seed(0))
        assert res.x.shape == x.shape and torch.isfinite(res.x).all() and res.nfe >= 49
        err[weight] = float((res.x - x)[mask].abs().mean())
    assert err[10.0] < 0.85 * err[0.0], err


def test_dps_is_seeded_by_the_solve_generator():
    op, x, y = inpainting()
    def run(seed):
        return DPS(iterations=10).solve(y, op, GaussianDiffusionPrior(),
                                        generator=torch.Generator().manual_seed(seed)).x

    torch.testing.assert_close(run(1), run(1), rtol=0, atol=0)
    assert not torch.equal(run(1), run(2))


class TestDDRMContract(SolverContract):
    @pytest.fixture
    def problem(self):
        op, x, y = inpainting()
        return op, GaussianDiffusionPrior(scale=0.5), x, y

    @pytest.fixture(params=["ddrm", "diffpir"])
    def solver(self, request):
        return DDRM(iterations=8) if request.param == "ddrm" else DiffPIR(iterations=8)
