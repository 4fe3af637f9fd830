"""pnpkit.tiling: tile layout, blending, the tiled priors, windows and cross-fades."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from pnpkit.priors import DenoiserPrior, DiffusionPrior, FunctionDenoiser, linear_alphas_cumprod
from pnpkit.tiling import (
    TiledDiffusionPrior,
    blend,
    check_tile,
    crossfade,
    tile_starts,
    tiled,
    window_starts,
)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


class Pointwise(DiffusionPrior):
    """A convolution-free network: each output sample depends on its input sample only."""

    def __init__(self) -> None:
        super().__init__(linear_alphas_cumprod())
        self.name = "pointwise"

    def network(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.3 * x_t - 0.01 * t.view(-1, *[1] * (x_t.dim() - 1)) + x_t.square() / 7


class Fixed(Pointwise):
    @property
    def fixed_shape(self) -> tuple[int, ...]:
        return (32, 32)


# -- settings ----------------------------------------------------------------------------------
def test_check_tile_messages() -> None:
    msg = "[prior] tile = 96 is larger than the image (64 x 80); use tile <= 64 or drop it"
    with pytest.raises(ValueError) as err:
        check_tile(96, 24, (64, 80))
    assert str(err.value) == msg
    with pytest.raises(ValueError, match=r"larger than the signal \(1000 samples\); use tile <= "
                                         r"1000"):
        check_tile(2048, 512, (1000,))
    with pytest.raises(ValueError, match=r"overlap = 64 must be a whole number from 0 to tile - 1 "
                                         r"= 63; use e\.g\. overlap = 16"):
        check_tile(64, 64)
    with pytest.raises(ValueError, match="overlap = -1 must"):
        check_tile(64, -1)
    with pytest.raises(ValueError, match=r"tile = 4 is too small; use tile >= 8 or drop it"):
        check_tile(4, 1)
    for bad in (64.0, "64", True):
        with pytest.raises(ValueError, match=r"tile must be a whole number, got .*; use e\.g\. "
                                             r"tile = 64"):
            check_tile(bad, 16)
    check_tile(64, 0, (64, 65))  # the largest tile that fits, no overlap: fine


def test_tiled_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="overlap = 48 must"):
        tiled(Pointwise(), 48, 48)
    with pytest.raises(ValueError, match=r"prior 'pointwise' runs at 32 x 32 only, not on tiles "
                                         r"of 48; use tile = 32"):
        tiled(Fixed(), 48)
    assert tiled(Fixed(), 32).fixed_shape is None  # it runs at any size from 32 up
    with pytest.raises(TypeError, match="needs a pnpkit Prior"):
        tiled(object(), 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="larger than the image"):
        tiled(Pointwise(), 32).eps(torch.zeros(1, 1, 20, 40), 3)


# -- layout ------------------------------------------------------------------------------------
def test_window_starts_cover_with_at_least_the_overlap() -> None:
    assert window_starts(64, 64, 16) == [0]  # exactly one window long: one window
    assert window_starts(3 * 65536 - 2 * 8192, 65536, 8192) == [0, 57344, 114688]
    assert window_starts(3 * 65536, 65536, 8192) == [0, 43690, 87381, 131072]
    for length in range(48, 200, 7):
        for window, overlap in ((48, 16), (48, 0), (32, 31)):
            starts = window_starts(length, window, overlap)
            assert starts[0] == 0 and starts[-1] == length - window
            gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
            assert all(0 < g <= window - overlap for g in gaps)
            # the fewest windows: one fewer could not keep every overlap
            assert (len(starts) - 2) * (window - overlap) < length - window or len(starts) == 1


def test_window_starts_errors() -> None:
    with pytest.raises(ValueError, match=r"a window of 100 samples is longer than the signal "
                                         r"\(99\)"):
        window_starts(99, 100, 10)
    with pytest.raises(ValueError, match="overlap = 100 must be from 0 to window - 1 = 99"):
        window_starts(300, 100, 100)
    with pytest.raises(ValueError, match="whole numbers"):
        window_starts(300, 100.0, 10)  # type: ignore[arg-type]


def test_tile_starts_are_row_major() -> None:
    starts = tile_starts((37, 50), 16, 4)
    rows, cols = window_starts(37, 16, 4), window_starts(50, 16, 4)
    assert starts == [(r, c) for r in rows for c in cols]
    assert rows == [0, 10, 21] and cols == [0, 11, 22, 34]


# -- cross-fades -------------------------------------------------------------------------------
def test_crossfade_reproduces_a_constant_and_any_consistent_signal_exactly() -> None:
    for length, window, overlap in ((1000, 256, 64), (1000, 1000, 64), (777, 100, 99)):
        starts = window_starts(length, window, overlap)
        const = torch.full((2, 4, length), -0.37)
        back = crossfade([const[..., s:s + window] for s in starts], starts, length, overlap)
        assert torch.equal(back, const)
        x = _randn(2, 4, length)
        back = crossfade([x[..., s:s + window] for s in starts], starts, length, overlap)
        assert torch.equal(back, x)


def test_crossfade_is_an_equal_gain_raised_cosine() -> None:
    # a window of zeros then one of ones, overlapping by exactly the fade: the fade-in itself
    starts = window_starts(24, 16, 8)
    assert starts == [0, 8]
    out = crossfade([torch.zeros(1, 1, 16), torch.ones(1, 1, 16)], starts, 24, 8)[0, 0]
    k = (torch.arange(8, dtype=torch.float64) + 0.5) / 8
    ramp = torch.sin(0.5 * torch.pi * k) ** 2
    torch.testing.assert_close(out[8:16].double(), ramp, rtol=0, atol=1e-6)
    assert torch.equal(out[:8], torch.zeros(8)) and torch.equal(out[16:], torch.ones(8))
    torch.testing.assert_close(ramp + ramp.flip(0), torch.ones(8, dtype=torch.float64))


def test_crossfade_errors() -> None:
    with pytest.raises(ValueError, match="2 chunks but 1 starts"):
        crossfade([torch.zeros(1, 1, 8)] * 2, [0], 16, 2)
    with pytest.raises(ValueError, match=r"do not cover \(20,\): nothing at \[16\]"):
        crossfade([torch.zeros(1, 1, 8)] * 2, [0, 8], 20, 2)


# -- tiled priors ------------------------------------------------------------------------------
def test_pointwise_network_tiled_equals_untiled_exactly() -> None:
    prior = Pointwise()
    assert isinstance(tiled(prior, 48), TiledDiffusionPrior)
    for shape, tile in (((2, 1, 64, 64), 48), ((1, 3, 37, 50), 16), ((2, 4, 1000), 256)):
        tp, x = tiled(prior, tile, tile // 3), _randn(*shape)
        t = torch.tensor([10, 700])[: shape[0]]
        assert torch.equal(tp.eps(x, t), prior.eps(x, t))
        assert torch.equal(tp.x0(x, t), prior.x0(x, t))
        assert torch.equal(tp.denoise(x, 0.2), prior.denoise(x, 0.2))


def test_nfe_counts_one_per_call_of_the_whole() -> None:
    prior = Pointwise()
    tp = tiled(prior, 16, 4)
    x = _randn(1, 1, 64, 64)
    assert len(tile_starts((64, 64), 16, 4)) == 25
    tp.eps(x, 5)
    tp.ddim(x, 100, steps=4)
    assert tp.nfe == 5 and prior.nfe == 0
    den = tiled(FunctionDenoiser(lambda v, s: v * 0.5), 16)
    assert isinstance(den, DenoiserPrior) and not isinstance(den, DiffusionPrior)
    assert torch.equal(den.denoise(x, 0.1), x * 0.5) and den.nfe == 1 and den.prior.nfe == 0


def test_gradients_flow_through_the_tiles() -> None:
    prior, x = Pointwise(), _randn(1, 1, 40, 40).requires_grad_()
    tiled(prior, 16, 4).eps(x, 3).sum().backward()
    tiled_grad, x.grad = x.grad, None
    prior.eps(x, 3).sum().backward()
    assert tiled_grad is not None and x.grad is not None
    torch.testing.assert_close(tiled_grad, x.grad)


def test_wrapped_attributes_come_from_the_prior() -> None:
    tp: Any = tiled(Pointwise(), 16)
    assert tp.name == "pointwise" and tp.tile == 16 and tp.overlap == 4
    assert repr(tp).startswith("tiled(") and repr(tp).endswith("tile=16, overlap=4)")


def _conv_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 5, padding=2), torch.nn.Tanh(),
                               torch.nn.Conv2d(4, 1, 5, padding=2))


def test_the_same_result_at_every_tile_order() -> None:
    net, x = _conv_net(), _randn(2, 1, 64, 70)
    seen: list[tuple[int, int]] = []

    def fn(part: torch.Tensor) -> torch.Tensor:
        seen.append((int(part.sum() * 1e4), part.shape[-1]))
        with torch.no_grad():
            return net(part)

    ref = blend(fn, x, 24, 8)
    first = list(seen)
    n = len(tile_starts((64, 70), 24, 8))
    assert n == 16
    for seed in range(3):
        order = list(range(n))
        random.Random(seed).shuffle(order)
        seen.clear()
        assert torch.equal(blend(fn, x, 24, 8, order=order), ref)
        assert seen == [first[i] for i in order] != first  # really computed in that order
    with pytest.raises(ValueError, match="permutation of the 16 tiles"):
        blend(fn, x, 24, 8, order=[0, 0])


def test_a_receptive_field_smaller_than_the_overlap_is_nearly_exact() -> None:
    # two 5x5 convolutions see 4 pixels each way: away from the tile edges the tiles agree
    net, x = _conv_net(), _randn(1, 1, 64, 64)
    with torch.no_grad():
        whole = net(x)
        parts = blend(net, x, 48, 16)
    err = (parts - whole).abs()
    assert float(err.mean()) < 0.02 * float(whole.abs().mean())


@pytest.fixture(scope="module")
def grey() -> Any:
    pytest.importorskip("pnpkit_priors")
    import pnpkit

    prior = pnpkit.create("prior", "default-grey32")
    assert prior.fixed_shape is None  # it runs at any size: reflect-padded, cropped back
    return prior


def test_shipped_prior_tiled_is_close_to_untiled(grey: Any) -> None:
    """The default grey prior on a 64 x 64 held-out picture, tiles of 48 overlapping by 16.

    Its UNet's coarsest level has attention and every level GroupNorm, which see the whole
    picture, so tiles differ from the whole: measured here, eps differs by 2.9 % (relative
    L2) at t = 200, and one-step denoising at sigma = 0.2 by 49.5 dB PSNR between the two,
    at the same quality against the clean picture (29.08 dB tiled, 29.05 dB whole).
    """
    import pnpkit.data
    import pnpkit.metrics

    torch.set_num_threads(1)
    x0 = pnpkit.data.sample_item("camera", 64, 1).signal[None]
    tp = tiled(grey, 48, 16)
    xt = grey.noise(x0, 200, generator=torch.Generator().manual_seed(200))
    y = x0 + 0.2 * _randn(*x0.shape, seed=1)
    with torch.no_grad():
        a, b = grey.eps(xt, 200), tp.eps(xt, 200)
        whole, parts = grey.denoise(y, 0.2).clamp(-1, 1), tp.denoise(y, 0.2).clamp(-1, 1)
    assert float((a - b).norm() / a.norm()) < 0.05
    assert float(pnpkit.metrics.psnr(parts, whole)) > 45.0
    gap = pnpkit.metrics.psnr(parts, x0) - pnpkit.metrics.psnr(whole, x0)
    assert abs(float(gap)) < 0.2
    # a tile as large as the picture is the untiled call
    assert torch.equal(tiled(grey, 64, 16).eps(xt, 200), a)
