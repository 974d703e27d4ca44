"""Several slices at once: expand uploads (files, zips, multi-frame DICOM) and explain each.

A file that cannot be read becomes a row with its error; the others still run.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from explain.errors import ExplainError, ImageDecodeError
from explain.io.sniff import has_dicom_suffix, is_dicom
from explain.serving.batching import DEFAULT_CHUNK, explain_chunks

DEFAULT_MAX_ITEMS = 50
#: Members of a zip that are never slices (macOS resource forks, folders).
_SKIP_PREFIXES = ("__MACOSX/", ".")


@dataclass
class Frame:
    """Frame ``index`` of a parsed multi-frame DICOM file, decoded only when explained."""

    file: object  # explain.io.dicom.DicomFile
    index: int
    max_pixels: int

    def decode(self):
        return self.file.frame(self.index, max_pixels=self.max_pixels)


@dataclass
class Item:
    """One slice to explain: ``source`` is a path, encoded bytes, an (H, W, 3) uint8 array
    or a :class:`Frame`; ``error`` is set instead when the slice could not even be extracted."""

    name: str
    source: object = None
    error: str | None = None


class TooManyItems(ExplainError, ValueError):
    """More slices than the configured limit."""


def _dicom_frames(name: str, data: bytes, max_pixels: int, room: int) -> list[Item]:
    """One item per frame, counted from the header; no frame is decoded here. Raises
    :class:`TooManyItems` when the file alone declares more frames than ``room``."""
    from explain.io.dicom import DicomFile

    dicom = DicomFile(data)
    if dicom.frames == 1:
        return [Item(name, data)]
    if dicom.frames > room:
        raise TooManyItems(f"{name} declares {dicom.frames} frames, more than the {room} slices left in this "
                           "batch. Split it, or start the app with a higher --max-batch.")
    return [Item(f"{name}#{k + 1}", Frame(dicom, k, max_pixels)) for k in range(dicom.frames)]


def _looks_dicom(name: str, data: bytes) -> bool:
    return is_dicom(data) or has_dicom_suffix(name)


def _from_bytes(name: str, data: bytes, max_pixels: int, room: int) -> list[Item]:
    if _looks_dicom(name, data):
        try:
            return _dicom_frames(name, data, max_pixels, room)
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
                items += _from_bytes(name, archive.read(info), max_pixels, room - len(items))
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
            items += (_from_bytes(name, data, max_pixels, max_items - len(items)) if _looks_dicom(name, data)
                      else [Item(name, str(path))])
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
    for k, exp, error in explain_chunks(explainer, _Sources(items), chunk=chunk, on_progress=on_progress):
        yield items[k], exp, items[k].error if items[k].error is not None else error


class _Sources(Sequence):
    """The items' sources as explain_chunks reads them, chunk by chunk: a DICOM frame is
    decoded when its chunk comes (and kept only until the next item is read)."""

    def __init__(self, items: list[Item]):
        self.items = items
        self._last: tuple[int, object] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        if item.error is not None:
            return None
        if not isinstance(item.source, Frame):
            return item.source
        if self._last is None or self._last[0] != i:
            self._last = (i, item.source.decode())
        return self._last[1]
