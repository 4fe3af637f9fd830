"""DCDP: schedule, presets, both purification versions, consistency and latent variants,
nonlinear operators, audio signals, and the solver contract."""

from __future__ import annotations

import pytest
import torch

import pnpkit
from pnpkit.operators import MatrixOperator
from pnpkit.solvers import SolveContext
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
    assert d.early_stop is False and DCDP(preset="sr4", early_stop=True).early_stop is True
    # the noisy presets (chosen on validation): the noiseless lr, t_end 100, early stopping, and
    # the noiseless preset's learning-rate reference
    for task in ("sr4", "box-inpainting", "gaussian-deblur"):
        noisy, clean = DCDP(preset=f"{task}-noisy"), DCDP(preset=task)
        assert (noisy.t_end, noisy.early_stop) == (100, True)
        assert (noisy.iterations, noisy.tau, noisy.lr, noisy.t_start, noisy.lr_reference_entries) == (
            clean.iterations, clean.tau, clean.lr, clean.t_start, clean.lr_reference_entries)
    assert DCDP(preset="sr4-noisy", early_stop=False).early_stop is False
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


# Strengths 200, 150, 100, 50, 1: 20 DDIM calls each, and 2 for the last (the authors' code
# noises a strength of 1 at timestep 0 and denoises from timestep 1).
@pytest.mark.parametrize("purification,nfe", [("tweedie", 5), ("ddim", 20 + 20 + 20 + 20 + 2)])
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
    # The phase-retrieval preset starts at T0 = 1000, as the paper writes it; the authors'
    # code noises a strength T to timestep T - 1, so T0 = 1000 runs at the last index, 999.
    op, x, y = _inpainting()
    solver = DCDP(iterations=3, tau=5, lr=10.0, t_start=1000, t_end=20, purification="tweedie")
    assert solver.strengths()[0] == 1000
    assert solver.strengths(num_timesteps=1000) == [1000, 510, 20]
    assert DCDP(iterations=2, t_start=2000).strengths(num_timesteps=1000)[0] == 1000

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
    assert prior.seen == [999, 509, 19] and res.nfe == 3


class NoiselessPurification(GaussianDiffusionPrior):
    """Forward noising without noise, so a solve is deterministic whatever the batch."""

    def noise(self, x0, t, generator=None, noise=None):
        return super().noise(x0, t, noise=torch.zeros_like(x0))


@pytest.mark.parametrize("purification,early_stop", [("tweedie", False), ("ddim", True)])
def test_a_batch_equals_its_items_solved_one_by_one(purification, early_stop):
    """Each image's loss is its own mean, so a batch takes every image's own step (the
    batch mean took half of it at a batch of 2), and early stopping is per image."""
    n = 64
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:40]
    calls = []

    class Counting(MatrixOperator):
        def A(self, v, **kw):
            calls.append(v.shape[0])
            return super().A(v)

    op = Counting(torch.eye(n)[rows], shape=(1, n), sigma=0.05)
    g = torch.Generator().manual_seed(1)
    x = torch.stack([0.6 * torch.randn(1, n, generator=g), 0.1 * torch.randn(1, n, generator=g)])
    y = op.A(x) + 0.05 * torch.randn(2, 40, generator=g)
    solver = DCDP(iterations=3, tau=60, lr=20.0, t_start=100, t_end=20, purification=purification,
                  early_stop=early_stop)
    calls.clear()
    batch = solver.solve(y, op, NoiselessPurification()).x
    alone, per_item = [], []
    for i in range(2):
        calls.clear()
        alone.append(solver.solve(y[i:i + 1], op, NoiselessPurification()).x)
        per_item.append(len(calls))
    torch.testing.assert_close(batch, torch.cat(alone), rtol=1e-5, atol=1e-6)
    if early_stop:
        assert per_item[0] != per_item[1], "the two images stop after different numbers of steps"


def test_one_data_step_of_a_batch_is_each_images_own_step():
    op, x, y = _inpainting()
    solver = DCDP(iterations=1, tau=1, lr=10.0, momentum=0.0)
    ctx = SolveContext(y.repeat(2, 1), op, GaussianDiffusionPrior(), None, None)
    start = torch.zeros(2, 1, 64)
    moved = solver.data_step(ctx, start, 10.0, None) - start
    alone = solver.data_step(SolveContext(y, op, GaussianDiffusionPrior(), None, None),
                             start[:1], 10.0, None) - start[:1]
    # lr 10 on mean((y - A x)^2) over 32 entries: a step of 2 * 10 / 32 * A^T y, per image.
    torch.testing.assert_close(alone, (2 * 10.0 / 32) * op.A_adjoint(y))
    torch.testing.assert_close(moved, alone.repeat(2, 1, 1))


def test_the_authors_learning_rate_references():
    # Box inpainting: the authors' loss is a mean over all 3 x 256^2 entries of y = m * x;
    # phase retrieval: 3 x 384^2 (256 padded by a quarter of the side on each side).
    assert DCDP(preset="box-inpainting").lr_reference_entries == 3 * 256 * 256
    assert DCDP(preset="phase-retrieval").lr_reference_entries == 3 * 384 * 384
    assert DCDP(preset="sr4").lr_reference_entries == 3 * 64 * 64


def test_version_1_noises_to_t_minus_1_and_runs_the_authors_ddim_grid():
    op, x, y = _inpainting()
    seen = {"noise": [], "grids": []}

    class Recording(GaussianDiffusionPrior):
        def noise(self, x0, t, generator=None, noise=None):
            seen["noise"].append(int(t))
            return super().noise(x0, t, generator, noise)

        def ddim(self, x_t, t, steps=20, eta=0.0, clip=True, generator=None, timesteps=None):
            seen["grids"].append(list(timesteps))
            return super().ddim(x_t, t, steps, eta, clip, generator, timesteps)

    prior = Recording()
    res = DCDP(iterations=2, tau=5, lr=10.0, t_start=400, t_end=0).solve(y, op, prior)
    assert seen["noise"] == [399, 0]
    assert seen["grids"][0][0] == 399 and seen["grids"][0][-1] == 0 and len(seen["grids"][0]) == 20
    assert seen["grids"][1] == [1, 0] and res.nfe == 22


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


def test_consistency_levels_are_in_the_models_own_range():
    """The DDPM level of T0 = 1000 (157) exceeds a consistency model's sigma_max of 80: the
    levels are clamped to its range before the noise is added, and can be given directly."""
    op, x, y = _inpainting()
    seen = []

    class Ranged(FakeConsistency):
        sigma_min, sigma_max = 0.002, 80.0

        def f(self, x_t, sigma):
            seen.append((sigma, float((x_t - self.start).std())))
            return super().f(x_t, sigma)

    prior = Ranged()
    solver = DCDP(iterations=3, tau=1, lr=0.0, t_start=1000, t_end=0, purification="consistency",
                  init="pinv")
    assert solver.consistency_levels(prior) == pytest.approx([80.0, 40.005, 0.01], abs=1e-3)
    prior.start = pnpkit.operators.pseudo_inverse(op, y)
    solver.solve(y, op, prior, generator=torch.Generator().manual_seed(0))
    assert seen[0][0] == 80.0 and abs(seen[0][1] / 80.0 - 1) < 0.3, "noise of the level used"
    given = DCDP(iterations=3, purification="consistency", sigma_start=20.0, sigma_end=0.002)
    assert given.consistency_levels(prior) == pytest.approx([20.0, 10.001, 0.002])


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
