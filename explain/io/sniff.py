"""Which reader a file goes to: the accepted formats and DICOM recognition.

Only looks at a few header bytes or the file name, never decodes, and
imports nothing of the package: :mod:`explain.io.decode`, :mod:`explain.io.dicom`,
the CLI and the UI all ask the same questions here.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The formats Pillow reads for an upload, in words for messages.
ACCEPTED = "PNG, JPEG, BMP, TIFF, WebP or GIF"

#: The same list with DICOM, for messages about any upload.
ACCEPTED_ALL = "PNG, JPEG, BMP, TIFF, WebP, GIF or DICOM"

# Only these Pillow readers are reachable from an upload: the rarely used ones
# (PSD, PCX, TGA, ...) are attack surface without a use here.
PIL_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")

DICOM_MAGIC = b"DICM"
DICOM_MAGIC_OFFSET = 128
DICOM_SUFFIXES = (".dcm", ".dicom")


def is_dicom(data: bytes) -> bool:
    """True when ``data`` carries the DICOM Part 10 marker 'DICM' at offset 128."""
    end = DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)
    return len(data) >= end and data[DICOM_MAGIC_OFFSET:end] == DICOM_MAGIC


def has_dicom_suffix(source) -> bool:
    """True when ``source`` is a path named ``.dcm`` / ``.dicom`` (any case).

    Files written without the 128-byte preamble are still DICOM; only the
    name says so.
    """
    if not isinstance(source, (str, os.PathLike)):
        return False
    return Path(source).suffix.lower() in DICOM_SUFFIXES
