"""A corpus of awkward and hostile files, generated in tmp_path.

Each case either decodes to the right (H, W, 3) uint8 array or fails with an
ImageDecodeError whose message is short, specific and free of raw bytes; a
valid image must decode normally right after every failure.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from explain.io.decode import decode_image
from explain.errors import ImageDecodeError
from synthetic import assert_clean_message, assert_decodes_or_fails_cleanly


def _encode(image: Image.Image, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def _gradient(height: int = 48, width: int = 64) -> np.ndarray:
    """(H, W, 3) uint8 with structure in every channel, so truncation cannot go unnoticed."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) % 256], axis=2).astype(
        np.uint8
    )


def _noise(height: int = 128, width: int = 128) -> np.ndarray:
    # Noise compresses badly, so cutting the file in half always cuts pixel data.
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png_declaring(width: int, height: int, mode: str = "L") -> bytes:
    """A valid tiny PNG whose IHDR is patched to claim width x height (CRC fixed)."""
    data = bytearray(_encode(Image.new(mode, (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def _exif_jpeg(orientation: int) -> bytes:
    rgb = np.zeros((20, 40, 3), dtype=np.uint8)
    rgb[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(Image.fromarray(rgb), "JPEG", exif=exif, quality=95)


def _frames(fmt: str) -> bytes:
    frames = [Image.new("RGB", (8, 6), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:])


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 255, 255, 255, 0] + [0] * (254 * 3))
    image.putdata([0, 1])
    return _encode(image, "PNG", transparency=0)


def _rgba_png() -> bytes:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[:, :, :3] = [40, 80, 160]
    rgba[:, 0, 3] = 255
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def _float_tiff() -> bytes:
    values = np.array([[0.0, 1.0, 2.0], [np.nan, np.inf, -np.inf]], dtype=np.float32)
    return _encode(Image.fromarray(values), "TIFF")


# --- expected results ------------------------------------------------------


def _expect_shape(height: int, width: int):
    def check(out: np.ndarray) -> None:
        assert out.shape == (height, width, 3)

    return check


def _expect_exact(expected: np.ndarray):
    def check(out: np.ndarray) -> None:
        assert np.array_equal(out, expected)

    return check


def _expect_grey(rows: list[list[int]]):
    def check(out: np.ndarray) -> None:
        assert out.shape == (len(rows), len(rows[0]), 3)
        for channel in range(3):
            assert out[:, :, channel].tolist() == rows

    return check


def _expect_colour(rgb: tuple[int, int, int], tolerance: int):
    def check(out: np.ndarray) -> None:
        assert np.abs(out.astype(int) - np.array(rgb)).max() <= tolerance

    return check


def _expect_rotated(shape: tuple[int, int], white: str):
    def check(out: np.ndarray) -> None:
        assert out.shape == (*shape, 3)
        halves = {"top": out[: shape[0] // 2], "bottom": out[shape[0] // 2 :],
                  "left": out[:, : shape[1] // 2], "right": out[:, shape[1] // 2 :]}
        assert halves[white].mean() > 200
        opposite = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}[white]
        assert halves[opposite].mean() < 50

    return check


# The whole first sentence of each error, lower-cased (test_app_bad_inputs.py looks for it
# in the app's message), so that a case failing for another reason shows up.
EMPTY = "the file is empty (0 bytes)."
TRUNCATED = "the image data is truncated or damaged."
NOT_AN_IMAGE = "this file is not an image that can be read."
OVER_READER_LIMIT = "the image has more pixels than this reader accepts"
#: The app's own pixel limit (40 MP by default), and its byte limit.
OVER_PIXEL_LIMIT = r"pixels \(\d+ MP\); the limit is \d+ MP\."
OVER_BYTE_LIMIT = r"The file is [\d.]+ MB; the limit is \d+ MB\."

# name -> (file name, bytes, check on the array or the expected start of the error)
CORPUS = {
    "zero_bytes": ("empty.png", lambda: b"", EMPTY),
    "truncated_jpeg": ("cut.jpg", lambda: _encode(Image.fromarray(_noise()), "JPEG")[:3000],
                       TRUNCATED),
    "truncated_png": ("cut.png", lambda: (lambda d: d[: len(d) // 2])(_encode(Image.fromarray(_noise()), "PNG")),
                      TRUNCATED),
    "text_as_png": ("notes.png", lambda: b"Patient notes: nothing to see here.\n" * 20, NOT_AN_IMAGE),
    "html_as_jpg": ("page.jpg", lambda: b"<!DOCTYPE html><html><body><img src=x></body></html>",
                    NOT_AN_IMAGE),
    "svg_as_png": ("vector.png", lambda: (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
                                          b'width="10" height="10"><rect width="10" height="10"/></svg>'),
                   NOT_AN_IMAGE),
    "pdf_as_jpg": ("scan.jpg", lambda: b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
                   NOT_AN_IMAGE),
    "random_bytes": ("noise.png", lambda: bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)),
                     NOT_AN_IMAGE),
    # The broken upload of the app's end-to-end test: a PNG signature and nothing readable after it.
    "png_signature_only": ("broken.png", lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, NOT_AN_IMAGE),
    "one_pixel": ("dot.png", lambda: _encode(Image.new("RGB", (1, 1), (9, 8, 7)), "PNG"),
                  _expect_exact(np.array([[[9, 8, 7]]], dtype=np.uint8))),
    "three_by_5000": ("strip.png", lambda: _encode(Image.new("L", (3, 5000), 77), "PNG"),
                      _expect_shape(5000, 3)),
    "float_tiff_nan_inf": ("float.tif", _float_tiff, _expect_grey([[0, 128, 255], [0, 255, 0]])),
    "multi_frame_gif": ("anim.gif", lambda: _frames("GIF"), _expect_colour((255, 0, 0), 0)),
    "multi_frame_tiff": ("stack.tif", lambda: _frames("TIFF"), _expect_colour((255, 0, 0), 0)),
    "cmyk_jpeg": ("print.jpg", lambda: _encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95),
                  _expect_colour((255, 0, 0), 8)),
    "rgba_png": ("alpha.png", _rgba_png, _expect_exact(np.array([[[40, 80, 160], [0, 0, 0]]] * 2, dtype=np.uint8))),
    "palette_transparency_png": ("pal.png", _palette_with_transparency,
                                 _expect_exact(np.array([[[0, 0, 0], [255, 255, 0]]], dtype=np.uint8))),
    "all_black": ("black.png", lambda: _encode(Image.new("L", (10, 10), 0), "PNG"), _expect_colour((0, 0, 0), 0)),
    "all_white": ("white.png", lambda: _encode(Image.new("L", (10, 10), 255), "PNG"),
                  _expect_colour((255, 255, 255), 0)),
    "all_black_16_bit": ("black16.png", lambda: _encode(Image.fromarray(np.zeros((4, 4), np.uint16)), "PNG"),
                         _expect_colour((0, 0, 0), 0)),
    "all_white_16_bit": ("white16.png",
                         lambda: _encode(Image.fromarray(np.full((4, 4), 65535, np.uint16)), "PNG"),
                         _expect_colour((255, 255, 255), 0)),
    "exif_rotated_6": ("rot6.jpg", lambda: _exif_jpeg(6), _expect_rotated((40, 20), "top")),
    "exif_rotated_8": ("rot8.jpg", lambda: _exif_jpeg(8), _expect_rotated((40, 20), "bottom")),
    "exif_rotated_3": ("rot3.jpg", lambda: _exif_jpeg(3), _expect_rotated((20, 40), "right")),
    "bomb_png": ("bomb.png", lambda: _png_declaring(30000, 30000), OVER_READER_LIMIT),
}


@pytest.fixture
def valid_png(tmp_path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "valid.png"
    pixels = _gradient()
    Image.fromarray(pixels).save(path)
    return path, pixels


@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("as_path", [True, False], ids=["path", "bytes"])
def test_corpus(tmp_path, valid_png, name, as_path):
    filename, build, expected = CORPUS[name]
    data = build()
    path = tmp_path / filename
    path.write_bytes(data)
    source = path if as_path else data
    if isinstance(expected, str):
        with pytest.raises(ImageDecodeError) as info:
            decode_image(source)
        message = str(info.value)
        assert message.lower().startswith(expected), message
        assert_clean_message(message)
    else:
        out = decode_image(source)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        expected(out)
    valid_path, pixels = valid_png
    assert np.array_equal(decode_image(valid_path), pixels)


def test_corpus_files_are_what_they_claim(tmp_path):
    # Guards the corpus itself: the truncated files really are cut inside the
    # pixel data, and the bombs really declare their size to Pillow (whose own
    # guard refuses the larger one outright).
    jpeg = _encode(Image.fromarray(_noise()), "JPEG")
    assert len(jpeg) > 6000
    with pytest.warns(Image.DecompressionBombWarning):
        assert Image.open(io.BytesIO(_png_declaring(10000, 10000))).size == (10000, 10000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(_png_declaring(30000, 30000)))


@pytest.mark.parametrize("side", [10000, 30000])  # over this app's limit; over Pillow's own hard limit too
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_bomb_rejected_before_decoding(tmp_path, monkeypatch, mode, side):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_declaring(side, side, mode))

    def no_decoding(self):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for source in (path, path.read_bytes()):
        # Pillow refuses the larger one itself, before its size can be read back.
        expected = (f"(?i){OVER_READER_LIMIT}" if side * side > 2 * Image.MAX_IMAGE_PIXELS
                    else f"The image is {side}x{side} {OVER_PIXEL_LIMIT}")
        with pytest.raises(ImageDecodeError, match=expected) as info:
            decode_image(source)
        assert_clean_message(str(info.value))
    # The decoder leaves Pillow's process-wide guard as it was.
    assert Image.MAX_IMAGE_PIXELS == 89_478_485


def test_pixel_limit_is_configurable(valid_png):
    path, pixels = valid_png
    with pytest.raises(ImageDecodeError, match=f"The image is 64x48 {OVER_PIXEL_LIMIT}"):
        decode_image(path, max_pixels=pixels.shape[0] * pixels.shape[1] - 1)
    assert decode_image(path, max_pixels=pixels.shape[0] * pixels.shape[1]).shape == pixels.shape


def test_file_over_max_bytes_is_not_read(tmp_path, monkeypatch, valid_png):
    path = tmp_path / "big.png"
    data = _encode(Image.fromarray(_noise()), "PNG")
    path.write_bytes(data)
    limit = len(data) - 1

    def no_reading(self):
        raise AssertionError("the file was read")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_bytes", no_reading)
        with pytest.raises(ImageDecodeError, match=OVER_BYTE_LIMIT) as info:
            decode_image(path, max_bytes=limit)
    assert_clean_message(str(info.value))
    with pytest.raises(ImageDecodeError, match=OVER_BYTE_LIMIT):
        decode_image(data, max_bytes=limit)
    assert decode_image(data, max_bytes=len(data)).shape == (128, 128, 3)
    assert np.array_equal(decode_image(valid_png[0]), valid_png[1])


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(ImageDecodeError, match="No such image file"):
        decode_image(tmp_path / "absent.png")
    with pytest.raises(ImageDecodeError, match="Cannot read an image"):
        decode_image(12345)
    with pytest.raises(ImageDecodeError, match="No such image file"):
        decode_image(tmp_path)  # a folder is not an image file


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damage it tolerates
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP"])
def test_damaged_files_fail_cleanly(fmt, valid_png):
    # Cuts at many offsets and a few flipped header bytes: whatever Pillow
    # raises inside must come out as one clean ImageDecodeError, or decode.
    rng = np.random.default_rng(4)
    data = _encode(Image.fromarray(_noise(24, 32)), fmt)
    variants = [data[:cut] for cut in range(1, len(data), max(1, len(data) // 30))]
    for _ in range(30):
        damaged = bytearray(data)
        for offset in rng.integers(0, min(len(data), 200), 3):
            damaged[offset] = int(rng.integers(0, 256))
        variants.append(bytes(damaged))
    assert_decodes_or_fails_cleanly(variants)
    assert np.array_equal(decode_image(valid_png[0]), valid_png[1])


def test_pil_image_on_a_later_frame_shows_the_first():
    image = Image.open(io.BytesIO(_frames("GIF")))
    image.seek(2)
    out = decode_image(image)
    assert out.shape == (6, 8, 3)
    assert out.reshape(-1, 3).tolist() == [[255, 0, 0]] * 48
