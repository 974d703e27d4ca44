"""A one-line progress bar on stderr, drawn only for a person at a terminal."""

from __future__ import annotations

import sys


def progress(done: int, total: int, width: int = 30) -> None:
    """Redraw ``[####....] done/total``; ends the line when ``done == total``.

    Silent when stderr is not a terminal, so logs and CI output stay clean.
    """
    if total < 1 or not sys.stderr.isatty():
        return
    filled = int(width * done / total)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
