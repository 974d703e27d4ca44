"""DICOM decoding: windowing, rescale, photometric, frames, and clear failures.

Every file is built here with pydicom itself; nothing is committed.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from pydicom.dataset import Dataset, FileDataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import (  # noqa: E402
    JPEG2000,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from explain.io.decode import decode_image  # noqa: E402
from explain.io.dicom import read_dicom  # noqa: E402
from explain.errors import ImageDecodeError  # noqa: E402
from synthetic import assert_clean_message, assert_decodes_or_fails_cleanly  # noqa: E402


def make_dicom(
    pixels: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = ExplicitVRLittleEndian,
    preamble: bool = True,
    rows_columns: tuple[int, int] | None = None,
    **elements,
) -> bytes:
    """Encode ``pixels`` as an MR DICOM file.

    ``pixels``: (H, W) or (frames, H, W) uint16/int16/uint8 greyscale, or
    (H, W, 3) uint8 RGB; None leaves out the pixel data. ``elements`` are set
    on the dataset as given (WindowCenter=..., RescaleSlope=...).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset("test.dcm", {}, file_meta=meta, preamble=b"\0" * 128 if preamble else None)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PhotometricInterpretation = photometric
    shape = (0, 0) if pixels is None else pixels.shape
    if pixels is not None and pixels.ndim == 3 and photometric in ("RGB", "YBR_FULL"):
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
        rows, columns = shape[:2]
    else:
        ds.SamplesPerPixel = 1
        rows, columns = shape[-2:]
        if pixels is not None and pixels.ndim == 3:
            ds.NumberOfFrames = shape[0]
    ds.Rows, ds.Columns = rows_columns or (rows, columns)
    dtype = np.uint16 if pixels is None else pixels.dtype
    ds.BitsAllocated = ds.BitsStored = 8 * np.dtype(dtype).itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if np.issubdtype(dtype, np.signedinteger) else 0
    for key, value in elements.items():
        setattr(ds, key, value)
    if pixels is not None:
        if transfer_syntax == JPEG2000:
            ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 this is not a codestream " * 4])
        else:
            ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=preamble)
    return buffer.getvalue()


def grey(out: np.ndarray) -> np.ndarray:
    """(H, W) plane of a decoded greyscale image, after checking its type and channels."""
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert np.array_equal(out[:, :, 0], out[:, :, 1]) and np.array_equal(out[:, :, 0], out[:, :, 2])
    return out[:, :, 0]


# Stored values and their display with centre 1000, width 1000: the DICOM
# linear window maps 500 -> 0 and 1499 -> 255, so 1000 lands on 127.6.
RAMP = np.array([[0, 500, 1000, 1500, 3000]], dtype=np.uint16)
RAMP_WINDOWED = [[0, 0, 128, 255, 255]]


def test_window_center_width():
    assert grey(read_dicom(make_dicom(RAMP, WindowCenter=1000, WindowWidth=1000))).tolist() == RAMP_WINDOWED


def test_multi_valued_window_uses_the_first():
    data = make_dicom(RAMP, WindowCenter=[1000, 40], WindowWidth=[1000, 80])
    assert grey(read_dicom(data)).tolist() == RAMP_WINDOWED


def test_invalid_window_width_falls_back_to_percentiles():
    data = make_dicom(RAMP, WindowCenter=1000, WindowWidth=0)
    out = grey(read_dicom(data))
    assert out.min() == 0 and out.max() == 255


def test_linear_exact_and_sigmoid_windows():
    exact = grey(read_dicom(make_dicom(RAMP, WindowCenter=1000, WindowWidth=1000,
                                       VOILUTFunction="LINEAR_EXACT")))
    assert exact.tolist() == [[0, 0, 128, 255, 255]]
    sigmoid = grey(read_dicom(make_dicom(RAMP, WindowCenter=1000, WindowWidth=1000,
                                         VOILUTFunction="SIGMOID")))
    assert sigmoid[0, 2] == 128 and sigmoid[0, 0] < 10 and sigmoid[0, 4] > 245


def test_percentile_window_without_window_elements():
    values = np.arange(10000, dtype=np.uint16).reshape(100, 100)
    values[0, 0] = 65535  # one hot pixel must not squash the rest into black
    out = grey(read_dicom(make_dicom(values)))
    assert out.min() == 0 and out.max() == 255
    assert abs(int(out[50, 0]) - 128) <= 2  # the median pixel stays mid-grey
    low, high = np.percentile(values, [0.5, 99.5])
    expected = np.clip(np.rint((values - low) / (high - low) * 255), 0, 255)
    assert np.array_equal(out, expected.astype(np.uint8))


def test_constant_image_without_window_is_black_not_an_error():
    assert grey(read_dicom(make_dicom(np.full((4, 4), 700, np.uint16)))).max() == 0


def test_monochrome1_is_inverted():
    data = make_dicom(RAMP, photometric="MONOCHROME1", WindowCenter=1000, WindowWidth=1000)
    assert grey(read_dicom(data)).tolist() == [[255 - v for v in RAMP_WINDOWED[0]]]


def test_rescale_slope_and_intercept_before_window():
    stored = np.array([[0, 100, 200, 300]], dtype=np.uint16)
    window = dict(WindowCenter=200.5, WindowWidth=401)  # modality 0..400 -> 0..255
    plain = grey(read_dicom(make_dicom(stored, **window)))
    assert plain.tolist() == [[0, 64, 128, 191]]
    rescaled = grey(read_dicom(make_dicom(stored, RescaleSlope=2, RescaleIntercept=-100, **window)))
    assert rescaled.tolist() == [[0, 64, 191, 255]]  # modality values -100, 100, 300, 500


def test_signed_pixels():
    stored = np.array([[-1000, -500, 0, 500, 1000]], dtype=np.int16)
    out = grey(read_dicom(make_dicom(stored, WindowCenter=0, WindowWidth=2000, VOILUTFunction="LINEAR_EXACT")))
    assert out.tolist() == [[0, 64, 128, 191, 255]]


@pytest.mark.parametrize("frames,middle", [(3, 1), (4, 2), (1, 0)])
def test_multi_frame_shows_the_middle_frame(frames, middle):
    stack = np.zeros((frames, 6, 8), dtype=np.uint16)
    for index in range(frames):
        stack[index, index, index] = 1000  # each frame's bright pixel is on its own diagonal spot
    out = grey(read_dicom(make_dicom(stack, WindowCenter=500, WindowWidth=1000)))
    assert out.shape == (6, 8)
    assert [tuple(p) for p in np.argwhere(out == 255)] == [(middle, middle)]


def test_rgb_passes_through():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = read_dicom(make_dicom(rgb, photometric="RGB", WindowCenter=10, WindowWidth=5))
    assert out.dtype == np.uint8 and np.array_equal(out, rgb)  # no window on colour


def test_missing_pixel_data_is_a_clear_error():
    with pytest.raises(ImageDecodeError, match="no pixel data") as info:
        read_dicom(make_dicom(None, rows_columns=(4, 4)))
    assert "Accepted" in str(info.value)
    assert_clean_message(str(info.value))


def test_compressed_transfer_syntax_is_a_clear_error():
    data = make_dicom(np.zeros((4, 4), np.uint16), transfer_syntax=JPEG2000)
    with pytest.raises(ImageDecodeError, match="compressed") as info:
        read_dicom(data)
    message = str(info.value)
    assert "JPEG 2000" in message and "Accepted" in message and "uncompressed" in message
    assert_clean_message(message)


def test_truncated_pixel_data_is_a_clear_error():
    data = make_dicom(np.arange(64, dtype=np.uint16).reshape(8, 8))
    with pytest.raises(ImageDecodeError, match="truncated") as info:
        read_dicom(data[:-40])
    assert_clean_message(str(info.value))


def test_palette_colour_is_refused_clearly():
    with pytest.raises(ImageDecodeError, match="PALETTE COLOR") as info:
        read_dicom(make_dicom(np.zeros((2, 2), np.uint8), photometric="PALETTE COLOR"))
    assert_clean_message(str(info.value))


def test_pixel_limit_checked_before_pixel_data_is_decoded(monkeypatch):
    import pydicom.pixels

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", no_decoding)
    data = make_dicom(np.zeros((2, 2), np.uint16), rows_columns=(30000, 30000))
    with pytest.raises(ImageDecodeError, match="limit") as info:
        decode_image(data)
    assert "30000x30000" in str(info.value)
    with pytest.raises(ImageDecodeError, match="limit"):
        decode_image(make_dicom(np.zeros((10, 10), np.uint16)), max_pixels=99)


# -- routing from decode_image ----------------------------------------------


def test_decode_image_routes_bytes_by_magic():
    data = make_dicom(RAMP, WindowCenter=1000, WindowWidth=1000)
    assert data[128:132] == b"DICM"
    assert grey(decode_image(data)).tolist() == RAMP_WINDOWED


@pytest.mark.parametrize("name", ["slice.dcm", "SLICE.DCM", "IM000001", "scan.png"])
def test_decode_image_routes_paths(tmp_path, name):
    # By the marker whatever the name (PACS exports often have no suffix).
    path = tmp_path / name
    path.write_bytes(make_dicom(RAMP, WindowCenter=1000, WindowWidth=1000))
    assert grey(decode_image(path)).tolist() == RAMP_WINDOWED
    assert grey(decode_image(str(path))).tolist() == RAMP_WINDOWED


def test_dcm_without_preamble_routes_by_suffix(tmp_path):
    data = make_dicom(RAMP, preamble=False, WindowCenter=1000, WindowWidth=1000)
    assert data[128:132] != b"DICM"
    path = tmp_path / "bare.dcm"
    path.write_bytes(data)
    assert grey(decode_image(path)).tolist() == RAMP_WINDOWED


def test_dcm_without_any_meta_header(tmp_path):
    ds = Dataset()
    ds.Rows, ds.Columns = RAMP.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter, ds.WindowWidth = 1000, 1000
    ds.PixelData = RAMP.astype("<u2").tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=True, little_endian=True)
    path = tmp_path / "raw.dcm"
    path.write_bytes(buffer.getvalue())
    assert grey(decode_image(path)).tolist() == RAMP_WINDOWED


def test_dcm_name_on_a_non_dicom_file(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_bytes(b"These are notes, not an image.\n" * 10)
    with pytest.raises(ImageDecodeError, match="not a readable DICOM") as info:
        decode_image(path)
    assert_clean_message(str(info.value))


def test_damaged_dicom_header(tmp_path):
    data = bytearray(make_dicom(RAMP))
    data[140:180] = b"\xff" * 40  # inside the file meta group
    with pytest.raises(ImageDecodeError) as info:
        decode_image(bytes(data))
    assert_clean_message(str(info.value))


def test_without_pydicom_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)
    monkeypatch.setitem(sys.modules, "pydicom.pixels", None)
    with pytest.raises(ImageDecodeError, match="pydicom") as info:
        decode_image(make_dicom(RAMP))
    assert_clean_message(str(info.value))


def test_valid_image_after_dicom_errors():
    with pytest.raises(ImageDecodeError):
        decode_image(make_dicom(np.zeros((4, 4), np.uint16), transfer_syntax=JPEG2000))
    assert grey(decode_image(make_dicom(RAMP, WindowCenter=1000, WindowWidth=1000))).tolist() == RAMP_WINDOWED


def test_damaged_dicom_files_fail_cleanly():
    # pydicom parses leniently and converts elements lazily, so damage can
    # surface almost anywhere; every failure must still be one clean error.
    rng = np.random.default_rng(5)
    good = make_dicom(np.arange(3 * 64, dtype=np.uint16).reshape(3, 8, 8),
                      WindowCenter=30, WindowWidth=40, RescaleSlope=1, RescaleIntercept=0)
    variants = [good[:cut] for cut in range(133, len(good), 7)]
    for _ in range(200):
        damaged = bytearray(good)
        for offset in rng.integers(132, len(good), 3):
            damaged[offset] = int(rng.integers(0, 256))
        variants.append(bytes(damaged))
    assert_decodes_or_fails_cleanly(variants)
