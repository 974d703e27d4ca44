"""Multi-frame DICOM in the batch tab: frames are counted from the header and decoded only when explained."""

from __future__ import annotations

import numpy as np
import pydicom.pixels
import pytest

from explain.io.dicom import read_dicom
from test_dicom import make_dicom
from ui.batch import Frame, TooManyItems, _Sources, expand

MAX_BYTES, MAX_PIXELS = 2**20, 10**6


def stack(frames: int) -> np.ndarray:
    out = np.zeros((frames, 6, 8), dtype=np.uint16)
    for k in range(frames):
        out[k, k % 6, k % 8] = 1000 + k
    return out


@pytest.fixture()
def decodes(monkeypatch):
    """Counts pixel decodes (pydicom.pixels.pixel_array calls)."""
    calls = []
    real = pydicom.pixels.pixel_array

    def counting(*args, **kwargs):
        calls.append(kwargs.get("index"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pydicom.pixels, "pixel_array", counting)
    return calls


def test_a_file_declaring_more_frames_than_the_limit_is_refused_before_decoding(tmp_path, decodes):
    path = tmp_path / "many.dcm"
    # A small file whose header declares 100,000 frames (its pixel data holds two).
    path.write_bytes(make_dicom(stack(2), NumberOfFrames=100_000))
    with pytest.raises(TooManyItems, match="100000 frames"):
        expand([path], max_items=50, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    assert decodes == [] and path.stat().st_size < 2000


def test_frames_are_decoded_lazily_and_equal_the_single_frame_decoder(tmp_path, decodes):
    pixels = stack(4)
    path = tmp_path / "four.dcm"
    path.write_bytes(make_dicom(pixels))
    items = expand([path], max_items=10, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    assert [i.name for i in items] == [f"four.dcm#{k}" for k in range(1, 5)]
    assert all(isinstance(i.source, Frame) for i in items) and decodes == []
    sources = _Sources(items)
    for k in range(4):
        got = sources[k]
        assert sources[k] is got  # read twice by explain_chunks, decoded once
        np.testing.assert_array_equal(got, read_dicom(path.read_bytes(), frame=k))
    assert decodes.count(0) == 2 and len(decodes) == 8  # 4 lazy decodes + 4 by read_dicom above
