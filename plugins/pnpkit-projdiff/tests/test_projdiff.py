"""ProjDiff: levels, projections, the authors' noisy schemes (pinned against their loops written
in their variance-preserving variables), nonlinear and audio problems, contract."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import pnpkit
from pnpkit.operators import MatrixOperator
from pnpkit.testing import GaussianDiffusionPrior, SolverContract, toy_problem
from pnpkit_projdiff import ProjDiff, ddpm_timesteps, equivalent_noise_std, karras_sigmas, range_gain


def test_noise_levels():
    prior = GaussianDiffusionPrior()
    levels = ProjDiff(iterations=100).noise_levels(prior)
    assert levels[0] == pytest.approx(float(prior.sigma(990)))
    assert levels[-1] == pytest.approx(float(prior.sigma(0)))
    assert len(levels) == 100 and levels == sorted(levels, reverse=True)
    k = karras_sigmas(150, 1e-4, 1.0, 7.0)
    assert k[0] == pytest.approx(1.0) and k[-1] == pytest.approx(1e-4) and len(k) == 150
    sep = ProjDiff(preset="separation")
    assert (sep.iterations, sep.repeats, sep.eta, sep.beta, sep.levels, sep.clamp) == (
        150, 5, 0.1, 0.5, "karras", 1.0)


def test_the_timestep_grid_always_ends_at_zero():
    # The authors' grid is range(0, 1000, 1000 // S): 990 ... 0 for S = 100.
    assert ddpm_timesteps(100, 1000) == list(range(990, -1, -10))
    assert ddpm_timesteps(1000, 1000) == list(range(999, -1, -1))
    # S = 300 used to stop at t = 100 (stride 1000 // 300 = 3, 300 steps from 997).
    grid = ddpm_timesteps(300, 1000)
    assert len(grid) == 300 and grid[-1] == 0 and grid[0] == 997
    assert all(a > b for a, b in zip(grid, grid[1:], strict=False))
    # More steps than the schedule has: fractional timesteps (S > 1000 was an index error).
    fine = ddpm_timesteps(1500, 1000)
    assert len(fine) == 1500 and fine[0] == 999 and fine[-1] == 0
    prior = GaussianDiffusionPrior()
    solver = ProjDiff(iterations=1500)
    levels = solver.noise_levels(prior)
    assert levels == sorted(levels, reverse=True) and levels[-1] == pytest.approx(float(prior.sigma(0)))
    op, _, x, y = toy_problem(n=16, m=8)
    res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(0))
    assert res.nfe == 1501 and res.iterations == 1500 and torch.isfinite(res.x).all()


def test_presets_and_validation():
    assert ProjDiff(preset="sr4").eta == 1.7 and ProjDiff(preset="gaussian-deblur-noisy").eta == 0.1
    assert ProjDiff(preset="phase-retrieval").iterations == 1000
    assert ProjDiff(preset="sr4", eta=2.0).eta == 2.0 and ProjDiff(preset="sr4").clamp == 0.0
    with pytest.raises(ValueError, match="projdiff: levels must be one of ddpm, karras, got 'cosine'"):
        ProjDiff(levels="cosine")
    with pytest.raises(ValueError, match="projdiff: noisy_scheme must be one of auto, scalar, svd"):
        ProjDiff(noisy_scheme="exact")
    assert pnpkit.get_manager().get("solver", "projdiff").factory is ProjDiff


class NoBackprop(GaussianDiffusionPrior):
    def network(self, x_t, t):
        assert not torch.is_grad_enabled()
        return super().network(x_t, t)


def test_noiseless_iterates_stay_on_the_measurement_set():
    op, _, x, y = toy_problem(n=64, m=40)
    res = ProjDiff(iterations=20, repeats=2, eta=1.0).solve(y.float(), op, NoBackprop(),
                                                            generator=torch.Generator().manual_seed(0))
    assert res.nfe == 20 * 2 + 1
    assert max(h["residual"] for h in res.history) < 1e-5
    assert [round(h["sigma"], 6) for h in res.history] == [
        round(s, 6) for s in ProjDiff(iterations=20).noise_levels(GaussianDiffusionPrior())]


def _pool(n: int = 400, r: int = 4) -> MatrixOperator:
    pool = torch.zeros(n // r, n)
    for i in range(n // r):
        pool[i, r * i:r * i + r] = 1 / r
    return MatrixOperator(pool, shape=(1, n))


def test_equivalent_noise_level_is_the_authors():
    like = torch.zeros(1, 1, 32, 32)
    # deepinv's inpainting measures a full-size y with zeros where pixels are missing: the
    # level is sigma_y exactly (averaging over all of y's entries gave 0.035 at half missing).
    inpaint = pnpkit.create("operator", "random-inpainting", shape=(1, 32, 32))
    assert equivalent_noise_std(inpaint, like, 0.05) == pytest.approx(0.05, rel=1e-6)
    box = pnpkit.create("operator", "box-inpainting", shape=(1, 32, 32))
    assert equivalent_noise_std(box, like, 0.05) == pytest.approx(0.05, rel=1e-6)
    # 4-sample average pooling: A A^T = I / 4, A^+ = 4 A^T: r sigma for r = 2 ... per axis r^2 = 4.
    assert equivalent_noise_std(_pool(), torch.zeros(1, 1, 400), 0.1) == pytest.approx(0.2, rel=1e-6)
    # Phase retrieval (256 -> 384 padding): the authors' eq_var = 2.25 sigma^2.
    pr = pnpkit.create("operator", "phase-retrieval", shape=(1, 32, 32))
    assert equivalent_noise_std(pr, like, 0.05) == pytest.approx(0.075, rel=1e-9)
    c, d = range_gain(inpaint, like)
    assert c == pytest.approx(1.0) and d < 1e-6


def test_the_scheme_follows_the_operator():
    like = torch.zeros(1, 1, 32, 32)
    solver = ProjDiff()
    inpaint = pnpkit.create("operator", "random-inpainting", shape=(1, 32, 32), sigma_y=0.05)
    sr = pnpkit.create("operator", "super-resolution", shape=(1, 32, 32), sigma_y=0.05)
    blur = pnpkit.create("operator", "gaussian-deblur", shape=(1, 32, 32), sigma_y=0.05)
    pr = pnpkit.create("operator", "phase-retrieval", shape=(1, 32, 32), sigma_y=0.05)
    assert solver.scheme(inpaint, like, 0.05) == "scalar"
    assert solver.scheme(sr, like, 0.05) == "svd", "bicubic filters: A A^T is not c I"
    assert solver.scheme(blur, like, 0.05) == "svd"
    assert solver.scheme(pr, like, 0.05) == "scalar"
    assert solver.scheme(blur, like, 0.0) == "noiseless"
    assert ProjDiff(noisy_scheme="scalar").scheme(blur, like, 0.05) == "scalar"
    with pytest.warns(UserWarning, match=r"beyond svd_max_entries = 100: one level for all"):
        assert ProjDiff(svd_max_entries=100).scheme(blur, like, 0.05) == "scalar"
    with pytest.raises(ValueError, match=r"noisy_scheme 'svd' computes the SVD of ConvolutionBlur "
                                         r"densely, .* at most svd_max_entries = 100 entries, and "
                                         r"this one has 1024"):
        ProjDiff(noisy_scheme="svd", svd_max_entries=100).scheme(blur, like, 0.05)

    class Square:
        linear = False
        noise_model = pnpkit.operators.GaussianNoise(0.1)

        def A(self, x, **kw):
            return x**2

    with pytest.raises(ValueError, match=r"nonlinear operator Square need its "
                                         r"equivalent_noise_variance\(variance\) .* set noisy = false"):
        ProjDiff().scheme(Square(), like, 0.1)


def _masked(n=64, keep=32, sigma=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(n, generator=g)[:keep].sort().values
    op = MatrixOperator(torch.eye(n, dtype=torch.float64)[rows], shape=(1, n), sigma=sigma)
    x = (0.5 * torch.randn(1, 1, n, generator=g, dtype=torch.float64)).clamp(-1, 1)
    return op, x, pnpkit.operators.measure(op, x, g)


def authors_scalar_loop(prior, op, y, ts, sigma_eq, eta, g):
    """The authors' efficient_generalized_steps_noisy, in their variance-preserving variables
    (x_t = sqrt(a) x0 + sqrt(1 - a) n; the auxiliary x_obs lives at a_obs = 1/(1 + sigma_eq^2)
    and is projected on sqrt(a_obs) y), with the random draws in the order ProjDiff makes them."""
    n = op.matrix.shape[1]
    observed = op.matrix.sum(0).bool().view(1, 1, n)
    ybig = op.A_adjoint(y)
    a_obs = 1 / (1 + sigma_eq**2)

    def proj(v):  # the authors' Inpainting.proj(x, y, alpha_obs)
        return torch.where(observed, math.sqrt(a_obs) * ybig, v)

    def a(t):
        return float(prior.alphas_cumprod[t])

    x_T = math.sqrt(1 - a(ts[0])) * torch.randn(1, 1, n, generator=g, dtype=torch.float64)
    x0 = prior.x0(x_T, ts[0])
    x_obs = math.sqrt(a_obs) * x0 + math.sqrt(1 - a_obs) * torch.randn(1, 1, n, generator=g,
                                                                        dtype=torch.float64)
    for t in ts:
        at = a(t)
        if at <= a_obs:
            xt = (math.sqrt(at / a_obs) * x_obs
                  + math.sqrt(1 - at / a_obs) * torch.randn(1, 1, n, generator=g, dtype=torch.float64))
            x0 = prior.x0(xt, t)
            x_obs = proj(math.sqrt(a_obs) * x0 + math.sqrt(1 - a_obs) * torch.randn(
                1, 1, n, generator=g, dtype=torch.float64))
        else:
            xt = (math.sqrt(at) * x0
                  + math.sqrt(1 - at) * (x_obs - math.sqrt(a_obs) * x0) / math.sqrt(1 - a_obs))
            x0 = x0 + eta * (prior.x0(xt, t) - x0)
    return x0


def test_scalar_noisy_scheme_is_the_authors_loop():
    op, x, y = _masked(sigma=0.1)
    prior = GaussianDiffusionPrior(scale=0.5)
    solver = ProjDiff(iterations=30, eta=0.7)
    res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(5))
    assert res.config["noisy_scheme"] == "auto"
    ts = ddpm_timesteps(30, 1000)
    sigmas = [float(prior.sigma(t)) for t in ts]
    assert sigmas[0] > 0.1 > sigmas[-1], "both regimes are visited"
    ref = authors_scalar_loop(prior, op, y, ts, 0.1, 0.7, torch.Generator().manual_seed(5))
    torch.testing.assert_close(res.x, ref, rtol=1e-9, atol=1e-10)
    # Below sigma_eq nothing is projected: the estimate keeps a residual of the noise's order.
    assert res.history[-1]["residual"] > 0.02


def test_below_the_equivalent_level_the_auxiliary_sample_is_frozen():
    op, x, y = _masked(sigma=0.1)
    prior = GaussianDiffusionPrior(scale=0.5)
    solver = ProjDiff(iterations=30, eta=0.7)
    ctx = pnpkit.solvers.SolveContext(y, op, prior, torch.Generator().manual_seed(5), None)
    state = solver.setup(ctx, torch.zeros_like(x))
    assert state["scheme"] == "scalar" and state["sigma_eq"] == pytest.approx(0.1)
    frozen = None
    for k in range(30):
        state = solver.step(ctx, state, k)
        if state["levels"][k] < 0.1:
            frozen = state["obs"].clone() if frozen is None else frozen
            assert torch.equal(state["obs"], frozen), "x_obs, null-space noise included, is frozen"
    assert frozen is not None


def authors_svd_loop(prior, op, y, ts, sigma_y, eta, threshold, g):
    """The authors' efficient_generalized_steps_noisy_SVD in their variables (coordinates
    V^T x, per-coordinate a_obs = 1 / (1 + sigma_y^2 / s^2), 1 on the null space)."""
    u, s_raw, vh = torch.linalg.svd(op.matrix.to(torch.float64), full_matrices=True)
    n = vh.shape[0]
    s = torch.zeros(n, dtype=torch.float64)
    s[: s_raw.numel()] = torch.where(s_raw > threshold * s_raw.max(), s_raw, torch.zeros_like(s_raw))
    pos = s > 0
    a_obs = torch.ones(n, dtype=torch.float64)
    a_obs[pos] = 1 / (1 + (sigma_y / s[pos]) ** 2)
    uty = torch.zeros(1, n, dtype=torch.float64)
    uty[:, : s_raw.numel()] = (y.reshape(1, -1) @ u)[:, : s_raw.numel()]
    ybar = torch.where(pos, uty / s.clamp_min(1e-300) * a_obs.sqrt(), torch.zeros_like(uty))

    def vt(v):
        return v.reshape(1, -1) @ vh.T

    def vv(c):
        return (c @ vh).view(1, 1, n)

    def a(t):
        return float(prior.alphas_cumprod[t])

    def randn():  # in signal space, then V^T: standard normal in the coordinates too
        return vt(torch.randn(1, 1, n, generator=g, dtype=torch.float64))

    x_T = math.sqrt(1 - a(ts[0])) * torch.randn(1, 1, n, generator=g, dtype=torch.float64)
    x0 = prior.x0(x_T, ts[0])
    c_obs = a_obs.sqrt() * vt(x0) + (1 - a_obs).sqrt() * randn()
    for t in ts:
        at = a(t)
        c0 = vt(x0)
        large = a_obs >= at
        noise = randn()
        ct = torch.where(large, (at / a_obs).sqrt() * c_obs + (1 - at / a_obs).clamp_min(0).sqrt() * noise,
                         math.sqrt(at) * c0 + math.sqrt(1 - at) * (c_obs - c0 * a_obs.sqrt())
                         / (1 - a_obs).clamp_min(1e-300).sqrt())
        x0_new = prior.x0(vv(ct), t)
        cn = vt(x0_new)
        c_obs_new = a_obs.sqrt() * cn + (1 - a_obs).sqrt() * randn()
        c_obs_new = torch.where(large, c_obs_new, c_obs)
        x0 = vv(torch.where(large, cn, c0))
        x0 = x0 + eta * (x0_new - x0)
        c_obs = torch.where(pos, ybar, c_obs_new)
    return x0


def test_svd_noisy_scheme_is_the_authors_loop():
    # A Gaussian matrix: A A^T is not proportional to I, so one level per singular value.
    op, _, x, y = toy_problem(n=48, m=30, sigma=0.05, seed=3)
    prior = GaussianDiffusionPrior(scale=0.5)
    solver = ProjDiff(iterations=25, eta=0.6)
    res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(2))
    ref = authors_svd_loop(prior, op, y, ddpm_timesteps(25, 1000), 0.05, 0.6, 3e-2,
                           torch.Generator().manual_seed(2))
    torch.testing.assert_close(res.x, ref, rtol=1e-8, atol=1e-9)
    ctx = pnpkit.solvers.SolveContext(y, op, prior, torch.Generator().manual_seed(2), None)
    state = solver.setup(ctx, torch.zeros_like(x))
    per = state["sigma_eq"]
    assert state["scheme"] == "svd" and float(per.max()) > 2 * float(per[per > 0].min())


class HalfProjection:
    """y = |x| with a projection that is not idempotent: P(x) = (x + sign(x) y) / 2."""

    linear = False

    def A(self, x, **kw):
        return x.abs()

    def A_dagger(self, y, **kw):
        return y

    def project(self, x, y):
        return 0.5 * (x + torch.sign(x) * y)


def test_nonlinear_step_is_taken_from_x0_with_the_sample_around_the_projection():
    # The authors' phase-retrieval loop: x_t from P(x0); x0 <- P(x0 + eta (D(x_t) - x0)).
    op = HalfProjection()
    x = torch.tensor([[[0.5, -0.3, 0.2, -0.8] * 4]], dtype=torch.float64)
    y = op.A(x)
    prior = GaussianDiffusionPrior(scale=0.5)
    solver = ProjDiff(iterations=5, eta=1.3)
    res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    levels, ts = solver.noise_levels(prior), solver.timesteps(prior)

    def d(v, k):
        return prior.x0(prior.abar(ts[k], v).sqrt() * v, ts[k])

    x0 = d(levels[0] * torch.randn(x.shape, generator=g, dtype=torch.float64), 0)
    for k in range(5):
        at = op.project(x0, y)
        step = d(at + levels[k] * torch.randn(x.shape, generator=g, dtype=torch.float64), k) - x0
        x0 = op.project(x0 + 1.3 * step, y)
    torch.testing.assert_close(res.x, x0, rtol=1e-10, atol=1e-12)


def test_noisy_phase_retrieval_runs_the_noisy_scheme():
    op = pnpkit.create("operator", "phase-retrieval", shape=(1, 16, 16), sigma_y=0.05, dtype="float64")
    g = torch.Generator().manual_seed(0)
    x = (0.4 * torch.randn(1, 1, 16, 16, generator=g, dtype=torch.float64)).clamp(-1, 1)
    y = pnpkit.operators.measure(op, x, g)
    solver = ProjDiff(preset="phase-retrieval-noisy", iterations=20)
    ctx = pnpkit.solvers.SolveContext(y, op, GaussianDiffusionPrior(), torch.Generator().manual_seed(1), None)
    state = solver.setup(ctx, op.A_dagger(y))
    assert state["scheme"] == "scalar" and state["sigma_eq"] == pytest.approx(1.5 * 0.05)
    res = solver.solve(y, op, GaussianDiffusionPrior(), generator=torch.Generator().manual_seed(1))
    assert res.nfe == 21 and torch.isfinite(res.x).all()


def test_first_momentum_step_is_the_full_residual_and_audio_is_clamped():
    """The authors start the momentum at v = d (not (1 - beta) d), and their music denoiser
    (MSDM's) is clamped to [-1, 1]."""
    k, n = 4, 64
    mix = torch.cat([torch.eye(n, dtype=torch.float64)] * k, dim=1)
    op = MatrixOperator(mix, shape=(k, n))
    g = torch.Generator().manual_seed(0)
    x = 0.9 * torch.randn(1, k, n, generator=g, dtype=torch.float64)
    y = op.A(x)
    prior = GaussianDiffusionPrior(scale=2.0)  # wide: unclamped estimates leave [-1, 1]
    solver = ProjDiff(preset="separation", iterations=3, repeats=2)
    res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    levels = solver.noise_levels(prior)

    def d(v, s):
        return prior.denoise(v, s).clamp(-1, 1)

    def proj(v):
        return v + (y.view(1, 1, n) - v.sum(1, keepdim=True)) / k

    x0 = d(levels[0] * torch.randn(x.shape, generator=g, dtype=torch.float64), levels[0])
    v = None
    for s in levels:
        for _ in range(2):
            step = d(x0 + s * torch.randn(x.shape, generator=g, dtype=torch.float64), s) - x0
            v = step if v is None else 0.5 * v + 0.5 * step
            x0 = proj(x0 + 0.1 * v)
    torch.testing.assert_close(res.x, x0, rtol=1e-10, atol=1e-12)
    unclamped = ProjDiff(preset="separation", iterations=3, repeats=2, clamp=0.0).solve(
        y, op, prior, generator=torch.Generator().manual_seed(4))
    assert float((unclamped.x - res.x).abs().max()) > 1e-3


class SquareWithProjection:
    """y = |x|: nonlinear; the 'projection' replaces magnitudes and keeps signs."""

    linear = False

    def A(self, x, **kw):
        return x.abs()

    def A_dagger(self, y, **kw):
        return y

    def project(self, x, y):
        return torch.sign(x) * y


def test_nonlinear_operator_uses_its_projection():
    x = torch.tensor([[[0.5, -0.3, 0.2, -0.8] * 8]])
    op = SquareWithProjection()
    res = ProjDiff(iterations=10, eta=1.0).solve(op.A(x), op, GaussianDiffusionPrior(),
                                                  generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(res.x.abs(), x.abs())


def test_separation_estimate_sums_to_the_mixture():
    k, n = 4, 256
    mix = torch.cat([torch.eye(n)] * k, dim=1)
    op = MatrixOperator(mix, shape=(k, n))
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(1, k, n, generator=g)
    y = op.A(x)
    res = ProjDiff(preset="separation", iterations=10, repeats=2).solve(
        y, op, GaussianDiffusionPrior(scale=0.3), generator=g)
    assert res.x.shape == (1, k, n) and res.nfe == 10 * 2 + 1
    torch.testing.assert_close(res.x.sum(1), y, rtol=1e-5, atol=1e-5)


def test_partial_generation_keeps_the_given_stems_and_generates_the_others():
    # Stems 0 and 2 are given (the source-masking operator); 1 and 3 are generated.
    op = pnpkit.create("operator", "source-masking", shape=(4, 512), known=[0, 2])
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(1, 4, 512, generator=g)
    y = op.A(x)
    res = ProjDiff(preset="separation", iterations=30, repeats=2).solve(
        y, op, GaussianDiffusionPrior(scale=0.3), generator=g)
    torch.testing.assert_close(res.x[:, [0, 2]], x[:, [0, 2]])
    generated = res.x[:, [1, 3]]
    # Independent Gaussian stems: nothing ties the generated ones to the given ones. ProjDiff
    # is an optimisation, so with eta = 0.1 the free stems settle near the prior's mode with
    # a spread of about eta / 2 of its variance (std ~0.07 for scale 0.3), not at zero.
    assert 0.03 < float(generated.std()) < 0.15
    assert float((generated - x[:, [1, 3]]).pow(2).mean()) > 0.05


def test_no_warning_on_the_image_presets_sizes():
    op = pnpkit.create("operator", "gaussian-deblur", shape=(1, 32, 32), sigma_y=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ProjDiff(preset="gaussian-deblur-noisy").scheme(op, torch.zeros(1, 1, 32, 32), 0.05) == "svd"


def _spectrum(values, n=8, seed=0):
    """A (len(values), n) matrix with the given singular values and known singular vectors."""
    g = torch.Generator().manual_seed(seed)
    m = len(values)
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    a = u @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ v[:, :m].T
    x = 0.5 * torch.randn(1, 1, n, generator=g, dtype=torch.float64)
    op = MatrixOperator(a, shape=(1, n))
    return op, v, x, op.A(x)


def test_noiseless_projection_is_the_authors_truncated_pseudo_inverse():
    # Singular values 1, 0.5, 0.2, 0.02, 0.001: under 3e-2 of the largest the authors' deblurring
    # pseudo-inverse counts them as 0 (their ZERO = 3e-2), so those components are not inverted.
    from pnpkit_projdiff import spectral_of, truncated_projection

    op, v, x_true, y = _spectrum([1.0, 0.5, 0.2, 0.02, 0.001])
    x = 0.5 * torch.randn(1, 1, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    svd = spectral_of(op, x, y, 3e-2)
    assert svd.kept.tolist() == [True] * 3 + [False] * 5
    p = truncated_projection(svd, x)
    pinv = torch.linalg.pinv(op.matrix, rtol=3e-2)  # the answer: numpy's rcond cut-off
    expected = x + (pinv @ (y - op.A(x)).reshape(-1)).view(1, 1, 8)
    torch.testing.assert_close(p, expected, rtol=0, atol=1e-12)
    coords, true, start = (t.reshape(-1) @ v for t in (p, x_true, x))
    torch.testing.assert_close(coords[:3], true[:3], rtol=0, atol=1e-12)  # from y
    torch.testing.assert_close(coords[3:], start[3:], rtol=0, atol=1e-12)  # left to the prior
    exact = pnpkit.operators.project(op, x, y).reshape(-1) @ v  # the operator's: every s inverted
    assert abs(float(exact[3] - true[3])) < 1e-9 and abs(float(coords[3] - true[3])) > 0.01

    prior = GaussianDiffusionPrior(scale=0.5)
    res = ProjDiff(iterations=10).solve(y, op, prior, generator=torch.Generator().manual_seed(0))
    out = res.x.reshape(-1) @ v
    torch.testing.assert_close(out[:3], true[:3], rtol=0, atol=1e-9)
    assert float((out[3:5] - true[3:5]).abs().min()) > 1e-3, "the cut components are not y's"
    res = ProjDiff(iterations=10, projection="operator").solve(
        y, op, prior, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close((res.x.reshape(-1) @ v)[:5], true[:5], rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="projdiff: projection must be one of auto, operator"):
        ProjDiff(projection="exact")


def test_the_truncated_projection_is_used_only_where_the_authors_use_it():
    solver = ProjDiff(iterations=3)
    like = torch.zeros(1, 1, 32, 32)
    y = torch.zeros(1, 1, 32, 32)
    inpaint = pnpkit.create("operator", "random-inpainting", shape=(1, 32, 32))
    pool = pnpkit.create("operator", "sr-avgpool", shape=(1, 32, 32))
    blur = pnpkit.create("operator", "gaussian-deblur", shape=(1, 32, 32))
    assert solver.truncated_svd(inpaint, like, y) is None  # A A^T = I: nothing to cut
    assert solver.truncated_svd(pool, like, pool.A(like)) is None  # A A^T = I / 16
    assert solver.truncated_svd(blur, like, y) is not None
    assert ProjDiff(projection="operator").truncated_svd(blur, like, y) is None
    with pytest.warns(UserWarning, match=r"svd_max_entries = 100 entries and this one has 1024: "
                      r"the operator's projection is used"):
        assert ProjDiff(svd_max_entries=100).truncated_svd(blur, like, y) is None


def test_a_decomposable_blur_brings_its_own_truncated_svd_at_any_size():
    # separable-gaussian-blur drops its 1-D singular values under 3e-2 as the authors' code;
    # ProjDiff uses that SVD as it is (no second cut of the 2-D products), at any size.
    from pnpkit_projdiff import DecomposableSpectral, spectral_of, truncated_projection

    op = pnpkit.create("operator", "separable-gaussian-blur", shape=(3, 64, 64), kernel_size=9,
                       kernel_std=2.0, scale_with_size=False, sigma_y=0.05)
    g = torch.Generator().manual_seed(0)
    x_true = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    y = op.A(x_true)
    svd = spectral_of(op, x_true, y, 3e-2)
    assert isinstance(svd, DecomposableSpectral)
    assert torch.equal(svd.kept, (op.mask > 0).reshape(-1))
    assert 0 < float(svd.s[svd.kept].min()) < 3e-2 * float(svd.s.max()), "2-D products kept"
    x = torch.zeros_like(x_true)
    torch.testing.assert_close(truncated_projection(svd, x), op.project(x, y), rtol=1e-4, atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 12288 entries, beyond svd_max_entries: no fallback
        assert ProjDiff().scheme(op, x, 0.05) == "svd"
    res = ProjDiff(iterations=4).solve(y, op, GaussianDiffusionPrior(scale=0.5),
                                       generator=torch.Generator().manual_seed(1))
    assert res.x.shape == x_true.shape and torch.isfinite(res.x).all()


def _sr(shape, factor, sigma_y=0.0, seed=0, **kw):
    op = pnpkit.create("operator", "super-resolution", shape=shape, factor=factor, sigma_y=sigma_y, **kw)
    g = torch.Generator().manual_seed(seed)
    x_true = torch.rand(1, *shape, generator=g, dtype=torch.float64) * 2 - 1
    return op, x_true, pnpkit.operators.measure(op, x_true, generator=g)


@pytest.mark.parametrize("threshold", [3e-2, 0.6])
@pytest.mark.parametrize("factor", [2, 4])
def test_the_fourier_svd_of_circular_sr_is_the_dense_one(factor, threshold):
    # Bicubic SR with circular padding: A A^T is a Fourier multiplier, so its SVD is known at
    # any size; on 3 x 16 x 16 it equals the dense SVD (0.6: a cut that drops some frequencies).
    from pnpkit_projdiff import FFTSpectral, Spectral, spectral_of, truncated_projection

    op, x_true, y = _sr((3, 16, 16), factor)
    fast, dense = spectral_of(op, x_true, y, threshold), Spectral(op, x_true, y, threshold)
    assert isinstance(fast, FFTSpectral)
    m = 3 * (16 // factor) ** 2
    kept = int(dense.kept.sum())
    assert int(fast.kept.sum()) == kept and (kept == m if threshold < 0.1 else 0 < kept < m)
    torch.testing.assert_close(fast.s[fast.kept].sort().values, dense.s[dense.kept].sort().values,
                               rtol=0, atol=1e-12)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eye = torch.eye(768, dtype=torch.float64).view(768, 3, 16, 16)
    pinv = torch.linalg.pinv(op.A(eye).reshape(768, -1).T, rtol=threshold)  # the same cut
    expected = x + ((y - op.A(x)).reshape(2, -1) @ pinv.T).view_as(x)
    torch.testing.assert_close(truncated_projection(dense, x), expected, rtol=0, atol=1e-8)
    torch.testing.assert_close(truncated_projection(fast, x), expected, rtol=0, atol=1e-8)
    c = fast.vt(x)  # orthonormal: the norm kept, V V^T = I
    torch.testing.assert_close(c.abs().square().sum(1), x.square().sum((1, 2, 3)), rtol=1e-12, atol=0)
    torch.testing.assert_close(fast.v(c), x, rtol=0, atol=1e-12)
    # the coordinates the cut leaves to the prior: the same subspace in both forms
    rest = fast.v(torch.where(fast.kept, torch.zeros_like(c), c))
    torch.testing.assert_close(rest, dense.v(torch.where(dense.kept, torch.zeros_like(dense.vt(x)),
                                                         dense.vt(x))), rtol=0, atol=1e-10)


@pytest.mark.parametrize("sigma_y", [0.0, 0.05])
@pytest.mark.parametrize("factor", [2, 4])
def test_projdiff_with_the_fourier_svd_solves_as_with_the_dense_one(factor, sigma_y, monkeypatch):
    from pnpkit_projdiff import FFTSpectral, Spectral, projdiff

    op, x_true, y = _sr((1, 16, 16), factor, sigma_y, seed=factor)
    prior = GaussianDiffusionPrior(scale=0.5)
    solver = ProjDiff(iterations=12, eta=0.6, svd_threshold=0.6)
    key = "spectral" if sigma_y else "pinv"

    def run():
        state = solver.setup(pnpkit.solvers.SolveContext(y, op, prior, torch.Generator(), None),
                             torch.zeros_like(x_true))
        res = solver.solve(y, op, prior, generator=torch.Generator().manual_seed(2))
        return state, res.x

    fast_state, fast = run()
    monkeypatch.setattr(projdiff, "fourier", lambda operator: False)  # the dense SVD instead
    dense_state, dense = run()
    assert isinstance(fast_state[key], FFTSpectral) and isinstance(dense_state[key], Spectral)
    if sigma_y:
        assert fast_state["scheme"] == "svd"
        levels = [s["sigma_eq"][s[key].kept].sort().values for s in (fast_state, dense_state)]
        torch.testing.assert_close(levels[0], levels[1], rtol=1e-12, atol=0)
        assert float(levels[0].max()) > 1.5 * float(levels[0].min()), "one level per singular value"
    torch.testing.assert_close(fast, dense, rtol=0, atol=1e-8)
    other = ProjDiff(iterations=12, eta=0.6, noisy_scheme="scalar", projection="operator").solve(
        y, op, prior, generator=torch.Generator().manual_seed(2)).x
    assert float((other - fast).abs().max()) > 1e-3, "the scheme is not the fallback's"


def test_sr_at_256_runs_the_authors_schemes_without_a_warning():
    from pnpkit_projdiff import FFTSpectral

    prior = GaussianDiffusionPrior(scale=0.5)
    for sigma_y in (0.0, 0.05):
        op, x_true, y = _sr((3, 256, 256), 4, sigma_y)
        x_true, y = x_true.float(), y.float()
        solver = ProjDiff(iterations=10, svd_threshold=0.6)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ctx = pnpkit.solvers.SolveContext(y, op, prior, torch.Generator().manual_seed(0), None)
            state = solver.setup(ctx, torch.zeros_like(x_true))
            state = solver.step(ctx, state, 0)
        spectral = state["spectral" if sigma_y else "pinv"]
        assert isinstance(spectral, FFTSpectral) and state["scheme"] == ("svd" if sigma_y else "noiseless")
        assert state["x"].shape == x_true.shape and state["x"].dtype == torch.float32
        assert torch.isfinite(state["x"]).all()
        if not sigma_y:  # the kept coordinates are y's: (F A x) = (F y) on the kept frequencies
            residual = torch.fft.fft2((op.A(state["x"]) - y).double(), norm="ortho")
            assert float(residual[spectral.keep.expand_as(residual)].abs().max()) < 1e-4
            assert float(residual[~spectral.keep.expand_as(residual)].abs().max()) > 1e-2


def test_non_circular_sr_falls_back_with_the_hint_that_works():
    from pnpkit_projdiff import fourier

    like = torch.zeros(1, 1, 72, 72)  # 5184 entries, beyond svd_max_entries
    op = pnpkit.create("operator", "super-resolution", shape=(1, 72, 72), padding="reflect", sigma_y=0.05)
    assert not fourier(op)
    hint = r"set the operator's padding = \"circular\" \(padding 'reflect' makes A A\^T no Fourier"
    with pytest.warns(UserWarning, match=r"one level for all is used \(noisy_scheme = 'scalar'\); " + hint):
        assert ProjDiff().scheme(op, like, 0.05) == "scalar"
    with pytest.warns(UserWarning, match=r"the operator's projection is used \(projection = 'operator'\); "
                      + hint):
        assert ProjDiff().truncated_svd(op, like, op.A(like)) is None
    with pytest.raises(ValueError, match=r"this one has 5184; " + hint):
        ProjDiff(noisy_scheme="svd").scheme(op, like, 0.05)
    circular = pnpkit.create("operator", "super-resolution", shape=(1, 72, 72), sigma_y=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the hint followed: the authors' scheme, no warning
        assert fourier(circular) and ProjDiff().scheme(circular, like, 0.05) == "svd"
        # nothing under 3e-2 for bicubic x4: the operator's exact projection, no warning
        assert ProjDiff().truncated_svd(circular, like, circular.A(like)) is None
        assert ProjDiff(svd_threshold=0.6).truncated_svd(circular, like, circular.A(like)) is not None


class TestProjDiffContract(SolverContract):
    @pytest.fixture(params=["ddpm", "karras"])
    def solver(self, request):
        return ProjDiff(iterations=10, repeats=2, eta=1.0, beta=0.5, levels=request.param)


def test_a_fourier_svd_that_cuts_nothing_uses_the_operators_exact_projection():
    op, x_true, y = _sr((1, 16, 16), 4, 0.0, seed=1)
    like = torch.zeros_like(x_true)
    # bicubic x4 keeps every singular value at the default 3e-2 (the smallest is 0.49 of the largest)
    assert ProjDiff().truncated_svd(op, like, y) is None
    cut = ProjDiff(svd_threshold=0.6).truncated_svd(op, like, y)
    assert cut is not None and not bool(cut.keep.all())
    # the same result either way where nothing is cut
    x = torch.randn(x_true.shape, generator=torch.Generator().manual_seed(0), dtype=x_true.dtype)
    from pnpkit_projdiff import FFTSpectral
    from pnpkit_projdiff.projdiff import truncated_projection

    full = FFTSpectral(op, like, y, 3e-2)
    assert bool(full.keep.all())
    torch.testing.assert_close(truncated_projection(full, x), op.project(x, y), rtol=0, atol=1e-6)
