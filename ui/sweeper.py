"""One timer thread per process that calls ``sweep()`` on every live app's handlers.

Each app registers its handlers with a period; the thread holds them weakly, so a
closed and dropped app costs nothing, and building many apps (the tests do) starts
one thread, not one each. The thread is a daemon: it never keeps the process alive.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref

log = logging.getLogger(__name__)

_lock = threading.Lock()
_wake = threading.Event()
_due: weakref.WeakKeyDictionary[object, list[float]] = weakref.WeakKeyDictionary()  # obj -> [period, next due]
_thread: threading.Thread | None = None


def register(obj, period: float) -> None:
    """Call ``obj.sweep()`` every ``period`` seconds while ``obj`` is alive and registered."""
    if period <= 0:
        raise ValueError("period must be positive")
    global _thread
    with _lock:
        _due[obj] = [period, time.monotonic() + period]
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="app-sweeper", daemon=True)
            _thread.start()
    _wake.set()


def unregister(obj) -> None:
    with _lock:
        _due.pop(obj, None)


def threads() -> list[threading.Thread]:
    """The sweeper threads alive now (at most one)."""
    return [t for t in threading.enumerate() if t.name == "app-sweeper"]


def _tick() -> float:
    """Sweep what is due; returns the seconds until the next is. A function of its own so
    that no strong reference to an app outlives the call."""
    now = time.monotonic()
    with _lock:
        ready = [obj for obj, (_, due) in _due.items() if due <= now]
        for obj in ready:
            _due[obj][1] = now + _due[obj][0]
        wait = min((due for _, due in _due.values()), default=now + 60.0) - now
    for obj in ready:
        try:
            obj.sweep()
        except Exception:  # a failed sweep must not stop the others; the next tick retries
            log.exception("sweep of %r failed", obj)
    return wait


def _loop() -> None:
    while True:
        wait = _tick()
        _wake.wait(max(0.05, wait))
        _wake.clear()
