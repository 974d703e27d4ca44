"""The last few explanations, kept so the UI can re-blend instead of re-running.

Moving the opacity slider changes only the blend of image and heatmap; without
this cache every step of the slider re-ran the model (and, for Score-CAM or
TTA, tens of forward passes).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Hashable

from cachetools import Cache, LRUCache, TTLCache

if TYPE_CHECKING:  # a type hint only: importing the pipeline would pull in TensorFlow
    from .pipeline import Explanation


def file_key(path, max_bytes: int = 64 * 2**20) -> tuple | None:
    """(suffix, size, BLAKE2b of the bytes) of a file; None if unreadable or over ``max_bytes``.

    The content, not the path and time: Gradio stores each upload under a
    hash of its bytes but rewrites the file on every upload of the same image,
    so an API client that re-sends the image would never hit a path + mtime
    key. The suffix is kept because decoding can depend on it (DICOM).
    Oversized files are left to the decoder's own size check.
    """
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            return None
        digest = hashlib.blake2b(Path(path).read_bytes(), digest_size=20).hexdigest()
    except (OSError, TypeError, ValueError):
        return None
    return (Path(path).suffix.lower(), size, digest)


class RecentExplanations:
    """A small least-recently-used store of explanations: a :class:`cachetools.TTLCache` behind a lock.

    entries: how many to keep. max_pixels: explanations of larger images are
    returned but not kept, so memory stays under about entries x max_pixels x
    7 bytes (the RGB image plus the float32 heatmap). ttl_seconds: entries
    older than this (since stored) are dropped at the next call, and by
    :meth:`expire_every`'s timer while no call comes (a TTLCache frees memory
    only when it is used), so pixels of an upload do not outlive the app's
    deletion of the upload itself (None: no limit, a :class:`cachetools.LRUCache`).
    """

    def __init__(self, entries: int = 8, max_pixels: int = 1_048_576, ttl_seconds: float | None = 600.0,
                 clock: Callable[[], float] = time.monotonic):
        if entries < 1 or max_pixels < 1 or (ttl_seconds is not None and ttl_seconds <= 0):
            raise ValueError("entries, max_pixels and ttl_seconds must be positive")
        self.entries, self.max_pixels, self.ttl_seconds = entries, max_pixels, ttl_seconds
        self._items: Cache = (
            LRUCache(entries) if ttl_seconds is None else TTLCache(entries, ttl_seconds, timer=clock))
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def expire_every(self, seconds: float) -> threading.Event:
        """Drop expired entries every ``seconds`` on a daemon thread, requests or not.

        Returns the event that stops the thread when set.
        """
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        stop = threading.Event()

        def loop():
            while not stop.wait(seconds):
                self.expire()

        threading.Thread(target=loop, name="recent-explanations-expiry", daemon=True).start()
        return stop

    def expire(self) -> None:
        """Drop the entries older than ``ttl_seconds`` now."""
        with self._lock:
            self._expire()

    def _expire(self) -> None:
        if isinstance(self._items, TTLCache):
            self._items.expire()

    def get(self, key: Hashable | None, compute: Callable[[], Explanation]) -> Explanation:
        """The stored explanation for ``key``, else ``compute()`` (stored if small enough).

        A None key (a file that cannot be read, or too large to hash) always
        computes, so the caller's own error for that file is raised.
        """
        with self._lock:
            self._expire()
            if key is not None and key in self._items:
                return self._items[key]  # marks it the most recently used
        result = compute()
        h, w = result.image.shape[:2]
        if key is not None and h * w <= self.max_pixels:
            with self._lock:
                self._items[key] = result  # evicts the least recently used beyond ``entries``
        return result
