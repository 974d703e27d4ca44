"""Size limits on an upload, checked before any pixel is decoded.

Shared by every reader (:mod:`explain.io.decode` for Pillow formats and numpy
arrays, :mod:`explain.io.dicom` for DICOM), so that the same image is refused
with the same message whichever way it arrives. Imports nothing of the
package but its errors.
"""

from __future__ import annotations

from ..errors import ImageDecodeError

#: Defaults for the checks made before any pixel is decoded. Both can be
#: overridden per call and, in the app, from the command line / environment.
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000


def check_bytes(size: int, max_bytes: int) -> None:
    """Raise :class:`ImageDecodeError` when an encoded file of ``size`` bytes is over ``max_bytes``."""
    if size > max_bytes:
        raise ImageDecodeError(
            f"The file is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
            "Upload a smaller image."
        )


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Raise :class:`ImageDecodeError` when ``size`` (width, height) is empty or over ``max_pixels``."""
    width, height = size
    if width < 1 or height < 1:
        raise ImageDecodeError(f"The image has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} MP); "
            f"the limit is {max_pixels / 1e6:.0f} MP. Upload a smaller image."
        )
