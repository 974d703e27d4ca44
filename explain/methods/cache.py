"""A small, thread-safe, bounded least-recently-used store for the methods' compiled helpers.

The gradient-free methods keep compiled functions between calls (one probe
per engine, one mask builder per shape). Those stores are module-level and
reached from the app's worker threads, so each is one :class:`BoundedCache`:
a lock, so that concurrent first calls build one value and all get it, and a
bound, so that a long-running process that sees many models or shapes keeps
only the most recent few (an evicted value is only rebuilt, never wrong).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class BoundedCache(Generic[V]):
    """At most ``maxsize`` values, least recently used evicted first.

    ``get(key, build)`` returns the stored value or stores ``build()``. The
    lock is held while ``build`` runs, so a key is built once however many
    threads ask for it at the same time; ``build`` must therefore be cheap
    and must not use the same cache (compiled functions are created here, and
    traced later, on first call, outside the lock).
    """

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = int(maxsize)
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = build()
            self._items[key] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return value

    def prune(self, stale: Callable[[Hashable], bool]) -> None:
        """Drop every entry whose key ``stale(key)`` says is dead."""
        with self._lock:
            for key in [k for k in self._items if stale(k)]:
                del self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items
