"""decode_image turns every PIL mode and numpy dtype into (H, W, 3) uint8 RGB.

Cases that arrive as files (alpha and palette transparency, EXIF rotation,
float TIFF with NaN/inf, constant 16-bit images) are in the corpus of
test_bad_inputs.py, which decodes each from a path and from bytes.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explain.io.decode import decode_image
from explain.errors import ImageDecodeError


def _check(out: np.ndarray, shape: tuple[int, int]) -> None:
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8
    assert out.shape == (*shape, 3)
    assert out.flags.c_contiguous


def _grey(out: np.ndarray) -> np.ndarray:
    """The one plane of a decoded greyscale image, after checking the three agree."""
    assert np.array_equal(out[:, :, 0], out[:, :, 1])
    assert np.array_equal(out[:, :, 0], out[:, :, 2])
    return out[:, :, 0]


# -- PIL modes ---------------------------------------------------------------


def test_mode_1():
    bits = np.zeros((4, 6), dtype=bool)
    bits[1:3, 2:5] = True
    out = decode_image(Image.fromarray(bits))
    _check(out, (4, 6))
    assert np.array_equal(_grey(out), bits.astype(np.uint8) * 255)


def test_mode_L():
    grey = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    out = decode_image(Image.fromarray(grey, "L"))
    _check(out, (4, 6))
    assert np.array_equal(_grey(out), grey)


def test_mode_LA_alpha_composited_on_black():
    la = np.zeros((2, 3, 2), dtype=np.uint8)
    la[:, :, 0] = 200
    la[:, :, 1] = [[255, 128, 0], [255, 255, 0]]
    out = decode_image(Image.fromarray(la, "LA"))
    _check(out, (2, 3))
    expected = np.array([[200, 100, 0], [200, 200, 0]], dtype=np.uint8)
    assert np.abs(_grey(out).astype(int) - expected).max() <= 1


def test_mode_P():
    image = Image.new("P", (3, 2))
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    image.putdata([0, 1, 2, 3, 2, 1])
    out = decode_image(image)
    _check(out, (2, 3))
    assert out[0, 1].tolist() == [255, 0, 0]
    assert out[0, 2].tolist() == [0, 255, 0]
    assert out[1, 0].tolist() == [0, 0, 255]
    assert out[0, 0].tolist() == [0, 0, 0]


def test_mode_RGB():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = decode_image(Image.fromarray(rgb, "RGB"))
    _check(out, (5, 7))
    assert np.array_equal(out, rgb)


def test_mode_CMYK():
    cmyk = np.zeros((1, 3, 4), dtype=np.uint8)
    cmyk[0, 0] = [0, 0, 0, 0]  # white
    cmyk[0, 1] = [0, 0, 0, 255]  # black
    cmyk[0, 2] = [0, 255, 255, 0]  # red
    out = decode_image(Image.fromarray(cmyk, "CMYK"))
    _check(out, (1, 3))
    assert out[0].tolist() == [[255, 255, 255], [0, 0, 0], [255, 0, 0]]


def test_mode_I16_stretches_its_own_range():
    values = np.linspace(1000, 3000, 20, dtype=np.uint16).reshape(4, 5)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    grey = _grey(decode_image(image))
    assert grey[values == 1000].tolist() == [0]
    assert grey[values == 3000].tolist() == [255]
    assert np.all(np.diff(grey.ravel().astype(int)) >= 0)  # order kept, nothing clipped
    assert len(np.unique(grey)) == 20


def test_mode_I():
    values = np.array([[-5000, 0], [5000, 100000]], dtype=np.int32)
    image = Image.fromarray(values)
    assert image.mode == "I"
    grey = _grey(decode_image(image))
    expected = np.rint((values - values.min()) / (values.max() - values.min()) * 255)
    assert np.array_equal(grey, expected.astype(np.uint8))


# -- numpy arrays ------------------------------------------------------------


def test_numpy_uint8_2d():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = decode_image(grey)
    _check(out, (3, 4))
    assert np.array_equal(_grey(out), grey)


def test_numpy_uint8_single_channel():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    assert np.array_equal(decode_image(grey), decode_image(grey[:, :, 0]))


def test_numpy_uint8_3d_is_copied_not_aliased():
    rgb = np.random.default_rng(1).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    out = decode_image(rgb)
    _check(out, (3, 4))
    assert np.array_equal(out, rgb)
    out[...] = 0
    assert rgb.any()  # the caller's array was not touched


def test_numpy_uint8_4_channels():
    rgba = np.full((2, 2, 4), 200, dtype=np.uint8)
    rgba[0, 0, 3] = 0
    rgba[1, 1, 3] = 255
    out = decode_image(rgba)
    _check(out, (2, 2))
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[1, 1].tolist() == [200, 200, 200]


def test_numpy_uint16_4_channels_alpha_not_stretched():
    rgba = np.zeros((1, 2, 4), dtype=np.uint16)
    rgba[0, :, :3] = [[0, 0, 0], [1000, 1000, 1000]]
    rgba[0, :, 3] = 65535
    out = decode_image(rgba)
    _check(out, (1, 2))
    # The colour range is 0..1000 on its own; alpha does not widen it.
    assert out[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_numpy_uint16():
    values = np.array([[1000, 2000], [3000, 1500]], dtype=np.uint16)
    grey = _grey(decode_image(values))
    assert grey.tolist() == [[0, 128], [255, 64]]


def test_numpy_float_all_nan_is_an_error():
    with pytest.raises(ImageDecodeError, match=r"^The image holds no finite pixel values \(all NaN or infinite\)"):
        decode_image(np.full((2, 2), np.nan))


def test_numpy_bool():
    mask = np.array([[True, False], [False, True]])
    assert _grey(decode_image(mask)).tolist() == [[255, 0], [0, 255]]
    assert _grey(decode_image(np.zeros((2, 2), dtype=bool))).tolist() == [[0, 0], [0, 0]]


@pytest.mark.parametrize("shape", [(2,), (2, 2, 2), (2, 2, 5), (1, 2, 2, 3)])
def test_numpy_bad_shapes(shape):
    with pytest.raises(ImageDecodeError, match=r"An image array must be \(H, W\), .* got \("):
        decode_image(np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize("array", [np.zeros((2, 2), dtype=complex), np.array([["a", "b"]])])
def test_numpy_non_real_dtypes(array):
    with pytest.raises(ImageDecodeError, match="An image array must hold real numbers; got dtype"):
        decode_image(array)


def test_numpy_pixel_limit():
    with pytest.raises(ImageDecodeError, match=r"The image is 20x10 pixels \(\d+ MP\); the limit is"):
        decode_image(np.zeros((10, 20), dtype=np.uint8), max_pixels=199)
    assert decode_image(np.zeros((10, 20), dtype=np.uint8), max_pixels=200).shape == (10, 20, 3)


# -- the same image from a path, bytes or a PIL image ------------------------


@pytest.mark.parametrize(
    "mode,fmt",
    [("RGB", "PNG"), ("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("I;16", "PNG"),
     ("RGB", "JPEG"), ("RGB", "BMP"), ("F", "TIFF"), ("RGB", "WEBP")],
)
def test_path_bytes_and_pil_agree(tmp_path, mode, fmt):
    rng = np.random.default_rng(2)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(100, 4000, (9, 11), dtype=np.uint16))
    elif mode == "F":
        image = Image.fromarray(rng.random((9, 11), dtype=np.float32))
    elif mode == "P":
        image = Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).quantize(16)
    else:
        channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
        pixels = rng.integers(0, 256, (9, 11, channels), dtype=np.uint8)
        image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    data = buffer.getvalue()
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(data)

    from_path = decode_image(path)
    _check(from_path, (9, 11))
    assert np.array_equal(from_path, decode_image(str(path)))
    assert np.array_equal(from_path, decode_image(data))
    assert np.array_equal(from_path, decode_image(bytearray(data)))
    assert np.array_equal(from_path, decode_image(Image.open(io.BytesIO(data))))
