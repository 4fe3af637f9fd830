"""The signal shape each operator maps to a measurement shape (pnpkit.operators.infer_signal_shape),
checked for every registered operator at two sizes, one of them not square; the errors for
impossible measurements; operators at non-square sizes; the measurement's sample rate."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

import pnpkit
from pnpkit import operators as ops
from pnpkit.plugins import Component
from pnpkit.registry import resolve

KERNEL = [[0.0, 1.0, 0.0, 0.0], [1.0, 4.0, 2.0, 1.0], [0.0, 2.0, 1.0, 0.0]]  # 3 x 4, even width


def _mask(h: int, w: int) -> torch.Tensor:
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((i * 7 + j * 3) % 5 != 0).float()


#: per operator: (signal shape, settings) at two sizes, the second not square
CASES: dict[str, list[tuple[tuple[int, ...], dict[str, Any]]]] = {
    "super-resolution": [((1, 32, 32), {}), ((3, 64, 96), {"factor": 2, "padding": "reflect"})],
    "box-inpainting": [((1, 32, 32), {}), ((3, 64, 96), {}),
                       ((1, 40, 60), {"position": "centre", "box_fraction": 0.5})],
    "sr-avgpool": [((1, 32, 32), {}), ((3, 16, 24), {"factor": 2})],
    "separable-gaussian-blur": [((1, 32, 32), {}), ((3, 24, 40), {"drop_last_tap": False})],
    "random-inpainting": [((1, 32, 32), {}), ((3, 64, 96), {}), ((2, 1000), {})],
    "gaussian-deblur": [((1, 32, 32), {}), ((3, 64, 96), {"padding": "circular"})],
    "motion-deblur": [((1, 32, 32), {"padding": "circular"}), ((1, 96, 64), {})],
    "phase-retrieval": [((1, 32, 32), {}), ((1, 33, 50), {"oversampling": 1.5}), ((2, 100), {})],
    "denoising": [((1, 32, 32), {}), ((3, 64, 96), {}), ((4, 300), {})],
    "compressed-sensing": [((1, 16, 16), {"signal_shape": [1, 16, 16]}),
                           ((3, 12, 20), {"signal_shape": [3, 12, 20], "channelwise": True,
                                          "ratio": 0.5})],
    "mixture": [((4, 1000), {"sources": 4}), ((3, 16, 24), {"sources": 3})],
    "source-masking": [((4, 1000), {"known": [0, 2], "sources": 4}),
                       ((3, 16, 24), {"known": [1], "sources": 3})],
    "blur": [((1, 32, 32), {"kernel": KERNEL}), ((3, 64, 96), {"kernel": KERNEL,
                                                               "padding": "circular"})],
    "inpainting": [((1, 32, 32), {"mask": _mask(32, 32)}), ((3, 64, 96), {"mask": _mask(64, 96)})],
}

#: per operator: a measurement shape no signal gives, its settings, and the error
IMPOSSIBLE = {
    "super-resolution": ((1, 64), {}, r"super-resolution \(factor 4\): no signal gives a "
                         r"measurement of shape \(1, 64\); it must be an image \(C, H, W\)"),
    "box-inpainting": ((64, 96), {}, r"box-inpainting: no signal .* \(64, 96\); it must be an image"),
    "sr-avgpool": ((3, 64), {}, r"sr-avgpool \(factor 4\): no signal gives a measurement of "
                   r"shape \(3, 64\); it must be an image \(C, H, W\)"),
    "separable-gaussian-blur": ((64, 96), {}, r"separable-gaussian-blur: no signal .* \(64, 96\); "
                                r"it must be an image"),
    "random-inpainting": ((4096,), {}, r"random-inpainting: no signal .* \(4096,\); it must be "
                          r"\(C, \*spatial\)"),
    "gaussian-deblur": ((1, 2, 64, 96), {}, r"gaussian-deblur: no signal .* \(1, 2, 64, 96\)"),
    "motion-deblur": ((96,), {}, r"motion-deblur: no signal .* \(96,\); it must be an image"),
    "phase-retrieval": ((1, 47, 48), {}, r"phase-retrieval \(oversampling 1.5\): no signal gives a "
                        r"measurement of shape \(1, 47, 48\); each spatial side is round\(1.5 x "
                        r"the signal's side\), and no side gives 47"),
    "denoising": ((5,), {}, r"denoising: no signal gives a measurement of shape \(5,\)"),
    "compressed-sensing": ((256,), {}, r"compressed-sensing \(ratio 0.25\): the signal shape "
                           r"cannot be inferred from a measurement of shape \(256,\) .*set "
                           r"\[operator\] signal_shape = \[C, H, W\]"),
    "mixture": ((2, 1000), {"sources": 4}, r"mixture: no signal .* \(2, 1000\); a mixture has one "
                r"channel, not 2 \(down-mix a stereo file to mono\)"),
    "source-masking": ((3, 1000), {"known": [0, 1], "sources": 4},
                       r"source-masking: no signal .* \(3, 1000\); it holds the 2 known stems"),
    "blur": ((3, 64), {"kernel": KERNEL}, r"blur: no signal .* \(3, 64\); it must be an image"),
    "inpainting": ((1, 1, 64, 96), {}, r"inpainting: no signal .* \(1, 1, 64, 96\)"),
}

#: more impossible measurements: settings the shape alone cannot give, measurements that do not fit
MORE_IMPOSSIBLE = [
    ("mixture", (1, 1000), {}, r"mixture: the number of sources cannot be read from a measurement "
     r"of shape \(1, 1000\); set \[operator\] sources = K \(4 for the shipped four-stem prior\)"),
    ("source-masking", (2, 1000), {"known": [0, 3], "sources": 3},
     r"known = \[0, 3\] names stem 3 but sources = 3"),
    ("compressed-sensing", (100,), {"signal_shape": [1, 16, 16]},
     r"no signal gives a measurement of shape \(100,\); signal_shape = \[1, 16, 16\] gives \(64,\)"),
    ("compressed-sensing", (3, 64), {"channelwise": True, "signal_shape": [1, 16, 16]},
     r"signal_shape = \[1, 16, 16\] gives \(1, 64\)"),
    ("phase-retrieval", (1, 64, 97), {"oversampling": 2.0}, r"no side gives 97"),
    ("super-resolution", (1, 16, 24), {"factor": 2.5}, "factor must be a positive integer"),
    ("box-inpainting", (1, 32, 32), {"position": [0.9, 0.0]},
     r"box-inpainting: the 12x12 box at row 29, column 0 does not fit the 32x32 image"),
    ("sr-avgpool", (1, 16, 24), {"factor": 0}, "sr-avgpool: factor must be a positive integer"),
]


def registered() -> dict[str, Component]:
    table = pnpkit.get_manager().components["operator"]
    return {n: c for n, c in table.items() if c.plugin == "operators"}


def test_every_operator_has_a_shape_rule_and_cases() -> None:
    comps = registered()
    assert set(CASES) == set(comps) == set(IMPOSSIBLE)
    for name, comp in comps.items():
        rule = comp.metadata["signal_shape"]
        assert isinstance(rule, str) and rule.startswith("pnpkit_operators.shapes:"), name
        assert inspect.isfunction(resolve(rule)), name
        assert any(s[1] != s[2] for s, _ in CASES[name] if len(s) == 3) or name in (
            "mixture", "source-masking"), f"{name}: no non-square case"


@pytest.mark.parametrize("name,shape,settings",
                         [(n, s, st) for n, cases in CASES.items() for s, st in cases],
                         ids=[f"{n}-{'x'.join(map(str, s))}" for n, cases in CASES.items()
                              for s, _ in cases])
def test_inferred_signal_shape_is_the_signal_that_gave_the_measurement(name, shape, settings):
    comp = registered()[name]
    op = comp.build(settings, shape=shape)
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = op.A(x)
    measured = tuple(y.shape[1:])
    assert ops.infer_signal_shape(comp, measured, {**settings, "sigma_y": 0.1}) == shape
    ops.check_measurement(op, shape, measured)
    # the operator works at that size: its pseudo-inverse and projection give the signal's shape
    assert ops.project(op, torch.zeros_like(x), y).shape == x.shape
    assert ops.pseudo_inverse(op, y).shape == x.shape


@pytest.mark.parametrize("name", sorted(IMPOSSIBLE))
def test_a_measurement_no_signal_gives_is_one_line_naming_it(name):
    measurement, settings, message = IMPOSSIBLE[name]
    with pytest.raises(ValueError, match=message) as err:
        ops.infer_signal_shape(registered()[name], measurement, settings)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name,measurement,settings,message", MORE_IMPOSSIBLE,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(MORE_IMPOSSIBLE)])
def test_settings_the_shape_cannot_give_are_asked_for(name, measurement, settings, message):
    with pytest.raises(ValueError, match=message):
        ops.infer_signal_shape(registered()[name], measurement, settings)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def test_rule_defaults_are_the_factory_defaults() -> None:
    for name, comp in registered().items():
        rule = inspect.signature(resolve(comp.metadata["signal_shape"])).parameters
        factory = inspect.signature(comp.factory).parameters
        for key, param in list(rule.items())[1:]:
            assert key in factory, f"{name}: rule setting {key!r} is not a factory setting"
            assert _plain(param.default) == _plain(factory[key].default), (name, key)


def test_super_resolution_of_a_non_square_measurement() -> None:
    comp = registered()["super-resolution"]
    assert ops.infer_signal_shape(comp, (1, 64, 96), {}) == (1, 256, 384)
    assert ops.infer_signal_shape(comp, (3, 64, 96), {"factor": 2}) == (3, 128, 192)
    op = comp.build({}, shape=(1, 256, 384))
    ops.check_measurement(op, (1, 256, 384), (1, 64, 96))
    with pytest.raises(ValueError, match=r"SuperResolution maps a signal of shape \(1, 256, 384\) "
                       r"to a measurement of shape \(1, 64, 96\), not \(1, 63, 96\)"):
        ops.check_measurement(op, (1, 256, 384), (1, 63, 96))


def test_check_measurement_names_both_shapes_when_the_operator_refuses_the_signal() -> None:
    op = pnpkit.create("operator", "mixture", shape=(4, 100))
    with pytest.raises(ValueError, match=r"Mixture cannot measure a signal of shape \(3, 100\) "
                       r"\(for a measurement of shape \(1, 100\)\): mixture expects 4 sources"):
        ops.check_measurement(op, (3, 100), (1, 100))
    ops.check_measurement(pnpkit.create("operator", "box-inpainting", shape=(1, 8, 8),
                                        dtype="float64"), (1, 8, 8), (1, 8, 8))


def test_operators_without_a_rule_keep_the_shape() -> None:
    bare = Component("mine", "operator", dict, "thirdparty")
    assert ops.infer_signal_shape(bare, [3, 64, 96], {"anything": 1}) == (3, 64, 96)
    with pytest.raises(ValueError, match="measurement_shape must be a non-empty sequence"):
        ops.infer_signal_shape(bare, (), {})


def test_settings_are_checked_by_the_factory_with_sources_and_signal_shape() -> None:
    with pytest.raises(ValueError, match=r"mixture: sources = 4 but the signal has 3 channels"):
        pnpkit.create("operator", "mixture", shape=(3, 100), sources=4)
    with pytest.raises(ValueError, match=r"source-masking: sources = 2 but the signal has 4"):
        pnpkit.create("operator", "source-masking", shape=(4, 100), sources=2)
    with pytest.raises(ValueError, match=r"signal_shape = \[1, 8, 8\] but the signal has shape "
                       r"\[1, 16, 16\]"):
        pnpkit.create("operator", "compressed-sensing", shape=(1, 16, 16), signal_shape=[1, 8, 8])
    # the signal shape alone builds the compressed-sensing operator of a given measurement
    op = pnpkit.create("operator", "compressed-sensing", signal_shape=[1, 8, 8])
    assert op._A.shape == (16, 64)


# -- non-square images -----------------------------------------------------------------------------
def test_box_and_kernels_at_non_square_sizes() -> None:
    box = pnpkit.create("operator", "box-inpainting", shape=(1, 64, 96))
    assert box.box == (25, 38)  # each side the same fraction: round(64 x 100/256), round(96 x 100/256)
    missing = box.mask[0, 0] == 0
    rows, cols = missing.any(1).nonzero().flatten(), missing.any(0).nonzero().flatten()
    # the corner too: round(64 x 100/256) = 25, round(96 x 100/256) = round(37.5) = 38
    assert (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])) == (25, 49, 38, 75)
    centred = pnpkit.create("operator", "box-inpainting", shape=(1, 64, 96), position="centre")
    missing = centred.mask[0, 0] == 0
    rows, cols = missing.any(1).nonzero().flatten(), missing.any(0).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])) == (19, 43, 29, 66)
    # the blurs scale with the shorter side, whatever the orientation
    for shape in [(1, 64, 96), (1, 96, 64), (1, 64, 64)]:
        op = pnpkit.create("operator", "gaussian-deblur", shape=shape)
        assert op.kernel_size == 15 and op.kernel_std == pytest.approx(0.75)
        assert pnpkit.create("operator", "motion-deblur", shape=shape).kernel_size == 15


def test_super_resolution_circular_projection_is_exact_on_a_rectangle() -> None:
    op = pnpkit.create("operator", "super-resolution", shape=(3, 64, 96), dtype="float64")
    g = torch.Generator().manual_seed(1)
    y = torch.randn(2, 3, 16, 24, generator=g, dtype=torch.float64)
    p = op.project(torch.zeros(2, 3, 64, 96, dtype=torch.float64), y)
    assert float((op.A(p) - y).abs().max()) < 1e-10


# -- sample rates ---------------------------------------------------------------------------------
class BandwidthExtension:
    """A third party's operator: keeps one sample in two (a 2x decimation without filter)."""

    linear = True

    def A(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return x[..., ::2]

    def A_adjoint(self, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        x = y.new_zeros(*y.shape[:-1], 2 * y.shape[-1])
        x[..., ::2] = y
        return x

    def measurement_rate(self, rate: int) -> int:
        return rate // 2


def _doubled(measurement_shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*measurement_shape[:-1], 2 * measurement_shape[-1])


def test_a_decimating_operator_says_its_measurement_rate() -> None:
    op = BandwidthExtension()
    assert ops.measurement_rate(op, 8000) == 4000
    assert ops.measurement_rate(op, None) is None
    comp = Component("bwe", "operator", BandwidthExtension, "thirdparty",
                     {"signal_shape": _doubled})
    assert ops.infer_signal_shape(comp, (1, 16000), {}) == (1, 32000)
    ops.check_measurement(op, (1, 32000), (1, 16000))


def test_shipped_operators_keep_the_sample_rate() -> None:
    for name, comp in registered().items():
        shape, settings = CASES[name][0]
        assert ops.measurement_rate(comp.build(settings, shape=shape), 8000) == 8000, name


def test_a_bad_measurement_rate_is_reported() -> None:
    class Broken:
        def measurement_rate(self, rate: int) -> float:
            return rate / 3

    with pytest.raises(ValueError, match=r"Broken.measurement_rate\(8000\) returned 2666.6"):
        ops.measurement_rate(Broken(), 8000)
