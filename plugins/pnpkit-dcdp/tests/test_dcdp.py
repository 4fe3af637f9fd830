"""DCDP: schedule, presets, both purification versions, consistency and latent variants,
nonlinear operators, audio signals, and the solver contract."""

from __future__ import annotations

import pytest
import torch

import pnpkit
from pnpkit.operators import MatrixOperator
from pnpkit.testing import GaussianDiffusionPrior, SolverContract
from pnpkit_dcdp import DCDP, linear_schedule


def test_schedule_matches_the_papers_example():
    assert linear_schedule(400, 0, 10) == [400, 356, 311, 267, 222, 178, 133, 89, 44, 1]
    assert DCDP(iterations=4, schedule="constant", t_start=50).strengths() == [50] * 4
    assert DCDP(iterations=3, schedule="custom", timesteps=[9, 0, 3]).strengths() == [9, 1, 3]
    with pytest.raises(ValueError, match="needs 3 timesteps"):
        DCDP(iterations=3, schedule="custom", timesteps=[1])


def test_presets_fill_unset_settings_and_explicit_ones_win():
    d = DCDP(preset="box-inpainting")
    assert (d.iterations, d.tau, d.lr, d.t_start, d.t_end) == (20, 50, 1e3, 700, 0)
    assert DCDP(preset="phase-retrieval").t_end == 20
    assert DCDP(preset="gaussian-deblur", lr=3.0).lr == 3.0
    assert DCDP.from_dict(d.to_dict()).to_dict() == d.to_dict()
    with pytest.raises(ValueError, match="dcdp: preset must be one of box-inpainting, .*, got 'sr8'. "
                                         "Did you mean 'sr4'"):
        DCDP(preset="sr8")
    with pytest.raises(ValueError, match="purification must be one of ddim, tweedie, consistency"):
        DCDP(purification="ode")


def test_registered_through_the_entry_point():
    comp = pnpkit.get_manager().get("solver", "dcdp")
    assert comp.plugin == "dcdp" and comp.factory is DCDP


def _inpainting(n: int = 64, keep: float = 0.5, sigma: float = 0.0, shape=(1, 64)):
    g = torch.Generator().manual_seed(0)
    rows = torch.randperm(n, generator=g)[: int(keep * n)]
    op = MatrixOperator(torch.eye(n)[rows], shape=shape, sigma=sigma)
    x = (0.5 * torch.randn(1, *shape, generator=g)).clamp(-1, 1)
    return op, x, pnpkit.operators.measure(op, x, g)


@pytest.mark.parametrize("purification,nfe", [("tweedie", 5), ("ddim", 20 + 20 + 20 + 20 + 1)])
def test_nfe_per_version(purification, nfe):
    op, x, y = _inpainting()
    res = DCDP(iterations=5, tau=10, lr=10.0, t_start=200, purification=purification).solve(
        y, op, GaussianDiffusionPrior(), generator=torch.Generator().manual_seed(0))
    assert res.nfe == nfe
    assert [h["stage"] for h in res.history] == ["data", "iterate"] * 5


def test_data_steps_reach_the_measurements_and_final_estimate_stays_close():
    op, x, y = _inpainting()
    res = DCDP(iterations=8, tau=150, lr=20.0, t_start=300, purification="tweedie").solve(
        y, op, GaussianDiffusionPrior(scale=0.5), generator=torch.Generator().manual_seed(0),
        reference=x)
    data = [h for h in res.history if h["stage"] == "data"]
    assert data[-1]["residual"] < 1e-3, "tau momentum steps fit the observed entries"
    assert res.history[-1]["residual"] < 0.05, "the last purification (T=1) barely moves it"
    # The measured half is recovered: its error is far below the signal's spread (0.5).
    observed = op.matrix.sum(0).bool()
    err = (res.x - x).flatten()[observed].abs().max()
    assert float(err) < 0.05


def test_paper_learning_rates_are_rescaled_to_the_measurement_count():
    op, x, y = _inpainting()  # 32 measurement entries
    seen = []

    class Spy(torch.optim.SGD):
        def __init__(self, params, lr, momentum):
            seen.append(lr)
            super().__init__(params, lr=lr, momentum=momentum)

    orig = torch.optim.SGD
    torch.optim.SGD = Spy
    try:
        DCDP(preset="sr4", iterations=1, tau=1).solve(y, op, GaussianDiffusionPrior())
    finally:
        torch.optim.SGD = orig
    assert seen == [pytest.approx(1e3 * 32 / (3 * 64 * 64))]


def test_early_stop_ends_data_steps_at_the_noise_level():
    op, x, y = _inpainting(sigma=0.1)
    calls = []

    class Counting(MatrixOperator):
        def A(self, v, **kw):
            calls.append(1)
            return super().A(v)

    cop = Counting(op.matrix, op.shape, sigma=0.1)
    DCDP(iterations=1, tau=200, lr=20.0, t_start=10, early_stop=True).solve(y, cop, GaussianDiffusionPrior())
    stopped = len(calls)
    calls.clear()
    DCDP(iterations=1, tau=200, lr=20.0, t_start=10).solve(y, cop, GaussianDiffusionPrior())
    assert stopped < len(calls) - 100


class SquareMagnitude:
    """|x|^2: nonlinear, no adjoint; DCDP's data step goes through autograd."""

    linear = False

    def A(self, x, **kw):
        return x**2

    def A_dagger(self, y, **kw):
        return y.clamp_min(0).sqrt()


def test_nonlinear_operator_through_autograd():
    x = torch.full((1, 1, 16), 0.5)
    y = SquareMagnitude().A(x)
    res = DCDP(iterations=3, tau=50, lr=1.0, t_start=20, init="pinv", purification="tweedie").solve(
        y, SquareMagnitude(), GaussianDiffusionPrior(scale=0.5), generator=torch.Generator().manual_seed(0))
    assert [h for h in res.history if h["stage"] == "data"][-1]["residual"] < 0.05


def test_the_papers_t0_of_1000_runs_at_the_last_timestep():
    # The phase-retrieval preset starts at T0 = 1000, as the paper writes it, on a schedule
    # whose last index is 999: the first purification runs at 999, the rest as scheduled.
    op, x, y = _inpainting()
    solver = DCDP(iterations=3, tau=5, lr=10.0, t_start=1000, t_end=20, purification="tweedie")
    assert solver.strengths()[0] == 1000
    assert solver.strengths(num_timesteps=1000) == [999, 510, 20]

    class Recording(GaussianDiffusionPrior):
        """Records the timestep of every purification (one Tweedie call each)."""

        def __init__(self):
            super().__init__()
            self.seen = []

        def x0(self, x_t, t, clip=False):
            self.seen.append(int(t))
            return super().x0(x_t, t, clip)

    prior = Recording()
    assert prior.num_timesteps == 1000
    res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(0))
    assert prior.seen == [999, 510, 20] and res.nfe == 3


class FakeConsistency(GaussianDiffusionPrior):
    """A consistency 'model' that is the Gaussian posterior mean in VE form."""

    def f(self, x, sigma):
        self.nfe += 1
        return (self.scale**2 / (self.scale**2 + sigma**2)) * x


def test_consistency_purification_is_one_call_per_round():
    op, x, y = _inpainting()
    res = DCDP(iterations=4, tau=5, lr=10.0, t_start=100, purification="consistency").solve(
        y, op, FakeConsistency(), generator=torch.Generator().manual_seed(0))
    assert res.nfe == 4 and torch.isfinite(res.x).all()


class ToyLatent(GaussianDiffusionPrior):
    """Latent prior: z at half resolution; decode = nearest upsampling (checks grad use)."""

    def __init__(self):
        super().__init__(scale=0.5)
        self.decode_with_grad = 0

    def encode(self, x):
        return torch.nn.functional.avg_pool1d(x, 2)

    def decode(self, z):
        self.decode_with_grad += int(torch.is_grad_enabled() and z.requires_grad)
        return z.repeat_interleave(2, dim=-1)


@pytest.mark.parametrize("approach", ["latent", "pixel"])
def test_latent_approaches(approach):
    op, x, y = _inpainting()
    prior = ToyLatent()
    res = DCDP(iterations=3, tau=20, lr=10.0, t_start=50, latent=approach, init="pinv",
               purification="tweedie").solve(y, op, prior, generator=torch.Generator().manual_seed(0))
    assert res.x.shape == x.shape
    # Approach I backpropagates through the decoder; approach II never does.
    assert (prior.decode_with_grad > 0) == (approach == "latent")


def test_the_same_solver_runs_audio_signals_unchanged():
    """(B, C, L) audio: 4 stems, a mixing operator, a diffusion prior over the stems."""
    k, n = 4, 512
    mix = torch.zeros(n, k * n)
    for c in range(k):
        mix[:, c * n:(c + 1) * n] = torch.eye(n)
    op = MatrixOperator(mix, shape=(k, n))
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(1, k, n, generator=g)
    y = op.A(x)
    res = DCDP(iterations=4, tau=100, lr=100.0, t_start=100, purification="tweedie").solve(
        y, op, GaussianDiffusionPrior(scale=0.3), generator=g)
    assert res.x.shape == (1, k, n)
    assert [h for h in res.history if h["stage"] == "data"][-1]["residual"] < 0.05


class TestDCDPContract(SolverContract):
    @pytest.fixture(params=["ddim", "tweedie"])
    def solver(self, request):
        return DCDP(iterations=3, tau=10, lr=20.0, t_start=100, purification=request.param)
