"""Files the app hands out: the result PNGs, the result zip, the batch CSV.

Every request writes into a new folder of Gradio's cache. Why not hand Gradio
arrays: it saves each one under a name derived from its content and rewrites
that file in place whenever the same picture comes again, so a client still
downloading it from an earlier request gets it empty or cut short (seen with
concurrent requests for one image). These files are new for every request and
complete before their URLs are handed out; inside the cache folder Gradio
serves them as they are and removes them on the ``delete_cache`` schedule.
"""

from __future__ import annotations

import csv
import json
import uuid
import zipfile
from pathlib import Path

from PIL import Image

from explain.report import REPORT_NAME, pictures, report


def new_folder(cache_dir: str) -> Path:
    folder = Path(cache_dir) / "results" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def save_png(folder: Path, name: str, array) -> str:
    """Write the (H, W, 3) uint8 RGB ``array`` as ``folder/name`` (PNG); returns the path."""
    path = folder / name
    Image.fromarray(array).save(path, format="PNG")
    return str(path)


def result_files(cache_dir: str, exp, alpha: float, source_name: str, captions) -> tuple[list, str]:
    """The three PNGs as (path, caption) gallery items, and a zip of them plus ``report.json``.

    ``source_name``: the file name the user uploaded (goes into the report
    and the zip's name). The zip holds exactly what ``python -m explain``
    writes for one image.
    """
    folder = new_folder(cache_dir)
    items = [(save_png(folder, name, array), caption)
             for (name, array), caption in zip(pictures(exp, alpha), captions)]
    stem = Path(source_name).stem or "image"
    archive = folder / f"{stem}_explained.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path, _ in items:
            z.write(path, Path(path).name)
        z.writestr(REPORT_NAME, json.dumps(report(exp, source_name), indent=2) + "\n")
    return items, str(archive)


def write_csv(cache_dir: str, header: list[str], rows: list[list]) -> str:
    path = new_folder(cache_dir) / "batch.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)
