"""Files the app hands out: the result PNGs, the result zip, the batch CSV.

Every request writes into a new folder (``<root>/results/<random hex>``). Why not
hand Gradio arrays: it saves each one under a name derived from its content and
rewrites that file in place whenever the same picture comes again, so a client
still downloading it from an earlier request gets it empty or cut short (seen
with concurrent requests for one image). These files are new for every request
and complete before their URLs are handed out; inside Gradio's cache folder
Gradio serves them as they are.

Gradio's ``delete_cache`` removes files only, never folders; and a request that
fails midway writes files Gradio never learns about. So the folders are removed
here, whole: a request that fails removes its own at once, and :meth:`ResultFolders.sweep`
removes every folder older than the deletion interval.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
import uuid
import zipfile
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from explain.report import REPORT_NAME

#: zlib level of every PNG the app writes. Chosen by ``benchmarks/png_settings.py``
#: (``benchmarks/results/png_settings.txt``): level 1 encodes a request's three PNGs in
#: about a fifth of Pillow's default level 6's time, for files 7 % larger; level 0 halves
#: the time again but quadruples the bytes.
PNG_COMPRESS_LEVEL = 1
RESULTS = "results"


def gradio_cache_dir() -> Path:
    """Gradio's cache folder: ``$GRADIO_TEMP_DIR``, else ``<system temp>/gradio`` (Gradio's documented default)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


class RequestFolder:
    """One request's folder; each method writes a file into it and returns its path."""

    def __init__(self, path: Path):
        self.path = path

    def png(self, name: str, array) -> str:
        """Write the (H, W, 3) uint8 RGB ``array`` as ``name`` (PNG); returns the path."""
        path = self.path / name
        Image.fromarray(array).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return str(path)

    def zip(self, name: str, pictures: dict, report: dict) -> str:
        """A zip of ``pictures`` (file name -> RGB array, as PNGs) and ``report.json``."""
        path = self.path / name
        # The PNGs are already compressed: stored, not deflated again.
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            for member, array in pictures.items():
                buffer = io.BytesIO()
                Image.fromarray(array).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
                z.writestr(member, buffer.getvalue())
            z.writestr(REPORT_NAME, json.dumps(report, indent=2) + "\n", compress_type=zipfile.ZIP_DEFLATED)
        return str(path)

    def json(self, name: str, data) -> str:
        """Write ``data`` as JSON; returns the path."""
        path = self.path / name
        path.write_text(json.dumps(data))
        return str(path)

    def csv(self, name: str, header: list[str], rows: list[list]) -> str:
        path = self.path / name
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        return str(path)


class ResultFolders:
    """Request folders under ``root/results`` (root: Gradio's cache folder, so that Gradio
    serves the files without copying them; None: a new temporary folder).

    ttl_seconds: a folder older than this is removed by :meth:`sweep`.
    """

    def __init__(self, root: str | Path | None, ttl_seconds: float = 3600.0, *, tidy_root: bool = False):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="brain-mri-results-"))
        self.ttl_seconds = ttl_seconds
        #: Also remove what Gradio leaves in ``root`` past the deletion interval (see :meth:`sweep`).
        self.tidy_root = tidy_root

    @property
    def base(self) -> Path:
        return self.root / RESULTS

    @contextmanager
    def request(self):
        """A new folder for one request; removed at once if the request fails inside.

        A generator closed between its yields (a cancelled comparison) keeps its
        folder: the page may still be fetching what it yielded; the sweep removes it.
        """
        path = self.base / uuid.uuid4().hex
        path.mkdir(parents=True)
        try:
            yield RequestFolder(path)
        except Exception:
            shutil.rmtree(path, ignore_errors=True)
            raise

    def folders(self) -> list[Path]:
        return sorted(p for p in self.base.iterdir() if p.is_dir()) if self.base.is_dir() else []

    def sweep(self, now: float | None = None) -> int:
        """Remove the request folders last changed more than ``ttl_seconds`` ago; returns how many.

        With ``tidy_root`` (root is Gradio's cache), also what Gradio leaves there once
        its ``delete_cache`` has removed the files: the emptied per-upload folders, and
        the empty ``tmp*`` files its File component creates and never tracks (Gradio
        6.31; tests/test_security.py documents it), each only when older than the interval.
        """
        now = time.time() if now is None else now
        removed = 0
        for path in self.folders():
            if self._older(path, now):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        if self.tidy_root and self.root.is_dir():
            for path in self.root.iterdir():
                if path == self.base or not self._older(path, now):
                    continue
                try:
                    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
                        path.rmdir()
                    elif path.is_file() and path.name.startswith("tmp") and path.stat().st_size == 0:
                        path.unlink()
                except OSError:
                    continue  # refilled or removed meanwhile: left for the next sweep
        return removed

    def _older(self, path: Path, now: float) -> bool:
        try:
            return now - path.stat().st_mtime > self.ttl_seconds
        except OSError:
            return False
