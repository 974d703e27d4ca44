"""Several slices at once: expand uploads (files, zips, multi-frame DICOM) and explain each.

A file that cannot be read becomes a row with its error; the others still run.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from explain.io.sniff import has_dicom_suffix, is_dicom
from explain.errors import ExplainError, ImageDecodeError
from explain.serving.batching import DEFAULT_CHUNK, explain_chunks

DEFAULT_MAX_ITEMS = 50
#: Members of a zip that are never slices (macOS resource forks, folders).
_SKIP_PREFIXES = ("__MACOSX/", ".")


@dataclass
class Item:
    """One slice to explain: ``source`` is a path, encoded bytes or an (H, W, 3) uint8 array;
    ``error`` is set instead when the slice could not even be extracted."""

    name: str
    source: object = None
    error: str | None = None


class TooManyItems(ExplainError, ValueError):
    """More slices than the configured limit."""


def _dicom_frames(name: str, data: bytes, max_pixels: int) -> list[Item]:
    from explain.io.dicom import count_frames, read_dicom

    frames = count_frames(data)
    if frames == 1:
        return [Item(name, data)]
    return [Item(f"{name}#{k + 1}", read_dicom(data, max_pixels=max_pixels, frame=k)) for k in range(frames)]


def _looks_dicom(name: str, data: bytes) -> bool:
    return is_dicom(data) or has_dicom_suffix(name)


def _from_bytes(name: str, data: bytes, max_pixels: int) -> list[Item]:
    if _looks_dicom(name, data):
        try:
            return _dicom_frames(name, data, max_pixels)
        except ImageDecodeError as exc:
            return [Item(name, error=str(exc))]
    return [Item(name, data)]


def _from_zip(path: Path, max_bytes: int, max_pixels: int, room: int) -> list[Item]:
    items = []
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir() or Path(info.filename).name.startswith(_SKIP_PREFIXES) \
                        or info.filename.startswith(_SKIP_PREFIXES):
                    continue
                name = f"{path.name}/{info.filename}"
                if len(items) >= room:
                    # Stop reading: the caller reports the limit with the count so far.
                    items.append(Item(name, error="over the limit"))
                    break
                if info.file_size > max_bytes:
                    items.append(Item(name, error=f"The file is larger than the {max_bytes / 2**20:.0f} MB limit."))
                    continue
                items += _from_bytes(name, archive.read(info), max_pixels)
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
        return [Item(path.name, error=f"This zip archive cannot be read ({type(exc).__name__}).")]
    return items


def expand(paths, *, max_items: int = DEFAULT_MAX_ITEMS, max_bytes: int, max_pixels: int,
           names=None) -> list[Item]:
    """Uploaded files -> slices: a zip gives its members, a multi-frame DICOM one item per frame.

    ``names``: the names to show (the uploads' original names), default the
    paths' names. Raises :class:`TooManyItems` when there are more than
    ``max_items`` slices, before any is explained.
    """
    items: list[Item] = []
    for k, raw in enumerate(paths):
        path = Path(raw)
        name = names[k] if names else path.name
        if zipfile.is_zipfile(path):
            got = _from_zip(path, max_bytes, max_pixels, max_items - len(items) + 1)
            for item in got:
                item.name = item.name.replace(path.name, name, 1)
            items += got
        else:
            try:
                size = path.stat().st_size
            except OSError:
                items.append(Item(name, error="The file could not be read."))
                continue
            if size > max_bytes:
                items.append(Item(name, error=f"The file is larger than the {max_bytes / 2**20:.0f} MB limit."))
                continue
            data = path.read_bytes()
            items += _from_bytes(name, data, max_pixels) if _looks_dicom(name, data) else [Item(name, str(path))]
        if len(items) > max_items:
            raise TooManyItems(f"At most {max_items} slices per batch; this upload holds more "
                               f"({len(items)} counted so far). Split it, or start the app with a "
                               "higher --max-batch.")
    return items


def explain_items(explainer, items: list[Item], on_progress: Callable[[int, int], None] | None = None,
                  *, chunk: int = DEFAULT_CHUNK):
    """Explain every item, ``chunk`` slices per model call (explain.serving.batching);
    yields (item, Explanation or None, error message or None) in order.

    ``explainer``: any backend (an in-process Explainer or the Ray one). An
    item that could not be extracted, or fails to decode, gets its error and
    costs the others nothing.
    """
    sources = [None if item.error is not None else item.source for item in items]
    for k, exp, error in explain_chunks(explainer, sources, chunk=chunk, on_progress=on_progress):
        yield items[k], exp, items[k].error if items[k].error is not None else error
