"""Operators from files: ``blur`` with a given kernel (PNG or .npy, or an array) and
``inpainting`` with a given mask, checked on numbers, and every bad input's one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import pnpkit
from pnpkit import operators as ops
from pnpkit_operators.deblur import gaussian_kernel
from pnpkit_operators.files import read_kernel, read_mask


def make(name: str, **settings: Any) -> Any:
    return pnpkit.create("operator", name, **settings)


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


def png(path: Path, array: np.ndarray, mode: str = "L") -> Path:
    Image.fromarray(array.astype(np.uint8)).convert(mode).save(path)
    return path


# -- blur ------------------------------------------------------------------------------------------
def test_a_npy_kernel_is_the_same_blur_as_the_shipped_gaussian(tmp_path: Path) -> None:
    k = gaussian_kernel(0.75, 15)[0, 0].double().numpy()
    np.save(tmp_path / "psf.npy", 3.0 * k)  # any scale: normalised to sum 1
    op = make("blur", kernel=str(tmp_path / "psf.npy"), shape=(1, 64, 96), dtype="float64")
    ref = make("gaussian-deblur", shape=(1, 64, 96), dtype="float64")
    assert op.kernel_size == (15, 15) and float(op.filter.sum()) == pytest.approx(1.0, abs=1e-12)
    x = rand(2, 1, 64, 96, dtype=torch.float64)
    torch.testing.assert_close(op.A(x), ref.A(x))


def test_a_png_kernel_is_read_as_greyscale_and_normalised(tmp_path: Path) -> None:
    grey = np.zeros((5, 7))
    grey[2, 1:6] = [50, 100, 200, 100, 50]  # a horizontal motion, 5 x 7 (odd, not square)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for path in (png(tmp_path / "psf.png", grey), png(tmp_path / "rgb.png", rgb, "RGB")):
        k = read_kernel(str(path))
        assert k.shape == (1, 1, 5, 7)
        torch.testing.assert_close(k[0, 0, 2, 1:6], torch.tensor([50, 100, 200, 100, 50.],
                                                                 dtype=torch.float64) / 500)
        assert float(k.sum()) == pytest.approx(1.0)
    # convolution, centred: a dot spreads into the (flipped) kernel around it
    op = make("blur", kernel=str(tmp_path / "psf.png"), shape=(1, 16, 24), padding="circular")
    x = torch.zeros(1, 1, 16, 24)
    x[0, 0, 8, 12] = 1
    torch.testing.assert_close(op.A(x)[0, 0, 8, 10:15], torch.tensor([50, 100, 200, 100, 50.]) / 500)
    assert float(op.A(x).sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("padding", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("kernel_shape", [(4, 4), (3, 6), (5, 5)])
def test_even_and_odd_kernels_blur_each_channel_with_a_true_adjoint(padding, kernel_shape):
    kernel = torch.rand(*kernel_shape, generator=torch.Generator().manual_seed(2)) + 0.1
    op = make("blur", kernel=kernel, shape=(3, 20, 28), padding=padding, dtype="float64")
    grey = make("blur", kernel=kernel.numpy(), shape=(1, 20, 28), padding=padding, dtype="float64")
    x = rand(2, 3, 20, 28, dtype=torch.float64)
    y = op.A(x)
    assert y.shape == x.shape
    for c in range(3):  # the same kernel on every channel
        torch.testing.assert_close(y[:, c:c + 1], grey.A(x[:, c:c + 1]))
    v = rand(2, 3, 20, 28, seed=5, dtype=torch.float64)
    assert float((y * v).sum()) == pytest.approx(float((x * op.A_adjoint(v)).sum()), rel=1e-10)
    p = ops.project(op, torch.zeros_like(x), y)
    assert float(ops.residual(op, p, y).max()) < (1e-8 if padding == "circular" else 1e-2)


@pytest.mark.parametrize("padding", ["reflect", "circular"])
@pytest.mark.parametrize("size", [(4, 4), (3, 6), (20, 20)])
def test_the_kernel_centre_is_at_half_its_size(padding, size):
    k = torch.zeros(*size)
    k[size[0] // 2, size[1] // 2] = 1  # a centred dot: no blur, no shift
    op = make("blur", kernel=k, shape=(1, 32, 40), padding=padding)
    x = rand(1, 1, 32, 40)
    torch.testing.assert_close(op.A(x), x, rtol=0, atol=1e-5)


def test_blur_from_the_python_api_with_a_path_and_the_pipeline_settings(tmp_path: Path) -> None:
    png(tmp_path / "psf.png", np.full((3, 3), 255))
    op = pnpkit.create("operator", "blur", kernel=str(tmp_path / "psf.png"), shape=(1, 64, 96),
                       sigma_y=0.05)
    assert ops.noise_sigma(op) == pytest.approx(0.05) and op.padding == "reflect"
    torch.testing.assert_close(op.filter, torch.full((1, 1, 3, 3), 1 / 9))
    assert make("blur", kernel=tmp_path / "psf.png", shape=(3, 8, 8)).A(rand(1, 3, 8, 8)).shape \
        == (1, 3, 8, 8)


def _pickled(path: Path) -> Path:
    np.save(path, np.array([{"k": 1}], dtype=object), allow_pickle=True)
    return path


@pytest.mark.parametrize("kernel,shape,message", [
    ("missing.png", (1, 32, 32), r"blur: cannot read the kernel file '.*missing.png' \(no such "
     r"file\); give the path of a PNG or .npy kernel"),
    ("garbage.png", (1, 32, 32), r"blur: cannot read the kernel file '.*garbage.png' as an image"),
    ("broken.npy", (1, 32, 32), r"blur: cannot read the kernel file '.*broken.npy' as a .npy"),
    ("pickled.npy", (1, 32, 32), r"blur: the kernel file '.*pickled.npy' holds pickled Python "
     r"objects, which are refused .*save a plain numeric array instead"),
    ("strings.npy", (1, 32, 32), r"holds <U1 values; save a real numeric array"),
    (np.zeros((0, 3)), (1, 32, 32), r"blur: the kernel the array given is empty \(shape \(0, 3\)\)"),
    ("zeros.npy", (1, 32, 32), r"blur: the kernel '.*zeros.npy' is all zeros"),
    ("black.png", (1, 32, 32), r"blur: the kernel '.*black.png' is all zeros"),
    (-np.ones((3, 3)), (1, 32, 32), r"sums to -9; it must sum to a positive value .*negate it"),
    (np.array([[1.0, np.nan]]), (1, 32, 32), "NaN or infinite"),
    (np.ones((2, 3, 3)), (1, 32, 32), r"has shape \(2, 3, 3\); it must be 2-D"),
    ("big.npy", (1, 32, 48), r"blur: the kernel '.*big.npy' is 40 x 9, larger than the 32 x 48 "
     r"image; crop the kernel to at most 32 x 48"),
    (None, (1, 32, 32), r"blur needs a kernel: kernel = \"psf.png\""),
])
def test_bad_kernels_are_one_line_naming_the_file_and_the_fix(tmp_path, kernel, shape, message):
    (tmp_path / "garbage.png").write_bytes(b"not a png at all")
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    _pickled(tmp_path / "pickled.npy")
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    np.save(tmp_path / "zeros.npy", np.zeros((5, 5)))
    np.save(tmp_path / "big.npy", np.ones((40, 9)))
    png(tmp_path / "black.png", np.zeros((5, 5)))
    if isinstance(kernel, str):
        kernel = str(tmp_path / kernel)
    with pytest.raises(ValueError, match=message) as err:
        make("blur", kernel=kernel, shape=shape)
    text = str(err.value)
    assert "\n" not in text and "allow_pickle=True" not in text


def test_a_kernel_with_negative_lobes_but_a_positive_sum_is_kept() -> None:
    k = read_kernel(np.array([[-1.0, 4.0, -1.0]]))
    torch.testing.assert_close(k, torch.tensor([[[[-0.5, 2.0, -0.5]]]], dtype=torch.float64))


# -- inpainting ------------------------------------------------------------------------------------
def test_a_png_mask_white_is_observed_and_thresholded_at_a_half(tmp_path: Path) -> None:
    grey = np.full((64, 96), 255)
    grey[10:20, 30:70] = 0
    grey[0, 0], grey[0, 1] = 127, 128  # 0.498 -> missing, 0.502 -> observed
    png(tmp_path / "mask.png", grey)
    op = make("inpainting", mask=str(tmp_path / "mask.png"), shape=(3, 64, 96))
    m = op.mask[0, 0]
    assert op.mask.shape == (1, 1, 64, 96)
    assert int((m == 0).sum()) == 10 * 40 + 1 and float(m[0, 0]) == 0 and float(m[0, 1]) == 1
    x = rand(1, 3, 64, 96) + 3  # no zero pixel by chance
    y = op.A(x)
    assert not y[..., 10:20, 30:70].any() and torch.equal(y[..., 30:, :], x[..., 30:, :])
    p = op.project(torch.zeros_like(x), y)
    assert float((op.A(p) - y).abs().max()) == 0


def test_a_box_mask_is_the_box_inpainting_operator(tmp_path: Path) -> None:
    box = make("box-inpainting", shape=(1, 64, 96))
    png(tmp_path / "box.png", box.mask[0, 0].numpy() * 255)
    for mask in (str(tmp_path / "box.png"), box.mask, box.mask[0, 0].numpy().astype(bool)):
        op = make("inpainting", mask=mask, shape=(1, 64, 96))
        assert torch.equal(op.mask, box.mask)
    assert make("inpainting", mask=torch.ones(1, 500), shape=(2, 500)).mask.shape == (1, 1, 500)


@pytest.mark.parametrize("mask,message", [
    ("small.png", r"inpainting: the mask '.*small.png' is 64 x 80 but the image is 64 x 96; give "
     r"a mask of the image's size 64 x 96 \(white = observed\)"),
    ("missing.png", r"inpainting: cannot read the mask file '.*missing.png' \(no such file\)"),
    ("garbage.png", r"inpainting: cannot read the mask file '.*garbage.png' as an image"),
    ("black.png", r"inpainting: the mask '.*black.png' observes no pixel"),
    (np.ones((96, 64)), r"the mask the array given is 96 x 64 but the image is 64 x 96"),
    (None, r"inpainting needs a mask: mask = \"mask.png\""),
])
def test_bad_masks_are_one_line_naming_the_file_and_both_sizes(tmp_path, mask, message):
    png(tmp_path / "small.png", np.full((64, 80), 255))
    png(tmp_path / "black.png", np.zeros((64, 96)))
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG but not really")
    if isinstance(mask, str):
        mask = str(tmp_path / mask)
    with pytest.raises(ValueError, match=message) as err:
        make("inpainting", mask=mask, shape=(3, 64, 96))
    assert "\n" not in str(err.value)


def test_a_sixteen_bit_mask_is_read_on_its_own_scale(tmp_path: Path) -> None:
    a = np.full((8, 8), 65535, dtype=np.uint16)
    a[:4] = 30000  # 0.46 of the 16-bit range: missing
    Image.fromarray(a).save(tmp_path / "mask16.png")
    m = read_mask(str(tmp_path / "mask16.png"), (8, 8))
    assert m.shape == (1, 8, 8) and int(m.sum()) == 32 and not m[0, :4].any()
