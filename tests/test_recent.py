"""Stored explanations: a new opacity re-blends, anything else recomputes; memory stays bounded."""

import threading

import numpy as np
import pytest

from explain.recent import RecentExplanations, file_key


class Fake:
    def __init__(self, side: int):
        self.image = np.zeros((side, side, 3), np.uint8)


def counting(side: int = 8):
    calls = []

    def compute():
        calls.append(1)
        return Fake(side)
    return compute, calls


@pytest.mark.parametrize("ttl", [600.0, None])
def test_same_key_computes_once_and_evicts_least_recently_used(ttl):
    recent = RecentExplanations(entries=2, ttl_seconds=ttl)
    compute, calls = counting()
    first = recent.get("a", compute)
    assert recent.get("a", compute) is first and len(calls) == 1
    recent.get("b", compute)
    recent.get("a", compute)          # "a" is now the most recent
    recent.get("c", compute)          # evicts "b"
    assert len(recent) == 2 and len(calls) == 3
    recent.get("a", compute)
    assert len(calls) == 3
    recent.get("b", compute)
    assert len(calls) == 4


def test_large_images_and_unknown_files_are_not_kept():
    recent = RecentExplanations(entries=4, max_pixels=100)
    compute, calls = counting(side=11)  # 121 pixels
    recent.get("big", compute)
    recent.get("big", compute)
    assert len(calls) == 2 and len(recent) == 0
    small, small_calls = counting(side=10)
    recent.get(None, small)
    recent.get(None, small)
    assert len(small_calls) == 2 and len(recent) == 0


def test_errors_are_not_stored():
    recent = RecentExplanations()

    def fail():
        raise ValueError("bad file")

    for _ in range(2):
        with pytest.raises(ValueError, match="bad file"):
            recent.get("x", fail)
    assert len(recent) == 0


def test_file_key_follows_the_content(tmp_path):
    path = tmp_path / "slice.png"
    path.write_bytes(b"one")
    before = file_key(path)
    path.write_bytes(b"one")              # rewritten with the same bytes: same key
    assert file_key(path) == before
    copy = tmp_path / "copy.png"
    copy.write_bytes(b"one")
    assert file_key(copy) == before       # same bytes elsewhere: same key
    path.write_bytes(b"two")              # same size, other bytes: new key
    assert file_key(path) != before
    dicom = tmp_path / "slice.dcm"
    dicom.write_bytes(b"one")
    assert file_key(dicom) != before      # the suffix can change the decoding
    assert file_key(tmp_path / "missing.png") is None and file_key(None) is None
    assert file_key(path, max_bytes=2) is None


def test_entries_expire_after_their_time_to_live():
    now = [0.0]
    recent = RecentExplanations(ttl_seconds=60, clock=lambda: now[0])
    compute, calls = counting()
    recent.get("a", compute)
    now[0] = 59.0
    recent.get("a", compute)
    assert len(calls) == 1
    now[0] = 61.0
    recent.get("b", compute)              # any call drops what has expired
    assert len(recent) == 1
    recent.get("a", compute)
    assert len(calls) == 3


@pytest.mark.parametrize("kwargs", [{"entries": 0}, {"max_pixels": 0}, {"ttl_seconds": 0}])
def test_invalid_sizes_are_refused(kwargs):
    with pytest.raises(ValueError):
        RecentExplanations(**kwargs)


def test_the_timer_drops_expired_entries_while_no_request_comes():
    now = [0.0]
    recent = RecentExplanations(ttl_seconds=60, clock=lambda: now[0])
    compute, _ = counting()
    recent.get("a", compute)
    stop = recent.expire_every(0.01)
    try:
        fresh = threading.Event()
        fresh.wait(0.1)                   # several timer ticks, entry not yet old
        assert len(recent) == 1
        now[0] = 61.0                     # the app stays idle: no get() from here on
        for _ in range(500):
            if len(recent) == 0:
                break
            fresh.wait(0.01)
        assert len(recent) == 0
    finally:
        stop.set()
