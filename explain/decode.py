"""Decode anything that holds an image into one display array.

Every entry point of the pipeline (app, CLI, training, evaluation) starts
here, so that a file looks the same to the model whichever way it arrives.

Output of :func:`decode_image`: ``np.uint8`` array of shape ``(H, W, 3)``,
RGB, values 0..255, EXIF orientation applied. Grayscale sources are
replicated to three channels; colour conversion for the model happens later,
in :mod:`explain.preprocess`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageDecodeError

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]

#: Defaults for the checks made before any pixel is decoded. Both can be
#: overridden per call and, in the app, from the command line / environment.
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000

ACCEPTED = "PNG, JPEG, BMP, TIFF, WebP or GIF"

# Pillow's own bomb guard raises a generic error at 2x this value; the explicit
# check in _check_size gives a clearer message first, so lift Pillow's limit
# just above the largest value any caller is likely to configure.
Image.MAX_IMAGE_PIXELS = None


def decode_image(
    source: ImageSource,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode ``source`` into an RGB ``uint8`` array of shape ``(H, W, 3)``.

    ``source`` may be a path, the encoded bytes, a PIL image or a numpy array
    (``(H, W)``, ``(H, W, 1|3|4)``; uint8 is taken as is, other dtypes are
    scaled by their finite range). Raises :class:`ImageDecodeError` with a
    message fit to show to a person.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels)
        return _from_pil(source)
    data = _read_bytes(source, max_bytes)
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"This file is not an image that can be read. Accepted: {ACCEPTED}."
        ) from None
    except Exception as exc:  # Pillow raises many types for corrupt headers
        raise ImageDecodeError(f"The image header is damaged ({exc}).") from None
    _check_pixels(image.size, max_pixels)
    try:
        image.load()
    except Exception as exc:
        raise ImageDecodeError(
            f"The image data is truncated or damaged ({_short(exc)}). "
            "Re-save the image and try again."
        ) from None
    return _from_pil(image)


def _read_bytes(source, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageDecodeError(f"No such image file: {path}")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageDecodeError(_too_many_bytes(size, max_bytes))
        data = path.read_bytes()
    else:
        raise ImageDecodeError(
            f"Cannot read an image from a {type(source).__name__}; "
            "give a path, bytes, a PIL image or a numpy array."
        )
    if not data:
        raise ImageDecodeError("The file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageDecodeError(_too_many_bytes(len(data), max_bytes))
    return data


def _too_many_bytes(size: int, limit: int) -> str:
    return (
        f"The file is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB. "
        "Upload a smaller image."
    )


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageDecodeError(f"The image has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} MP); "
            f"the limit is {max_pixels / 1e6:.0f} MP. Upload a smaller image."
        )


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 120 else text[:117] + "..."


def _from_pil(image: Image.Image) -> np.ndarray:
    """PIL image of any mode -> (H, W, 3) uint8 RGB."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # multi-frame GIF/TIFF: the first frame is the image shown
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _from_array(np.asarray(image), max_pixels=None)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("LA", "RGBA", "La", "RGBa"):
        return _composite_on_black(image.convert("RGBA"))
    if image.mode in ("1", "L"):
        grey = np.asarray(image.convert("L"), dtype=np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _composite_on_black(image: Image.Image) -> np.ndarray:
    # MRI backgrounds are black, so transparent areas become background.
    rgba = np.asarray(image, dtype=np.float32)
    alpha = rgba[:, :, 3:4] / 255.0
    return np.clip(np.rint(rgba[:, :, :3] * alpha), 0, 255).astype(np.uint8)


def _from_array(array: np.ndarray, max_pixels: int | None) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageDecodeError(
            f"An image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {array.shape}."
        )
    if max_pixels is not None:
        _check_pixels((array.shape[1], array.shape[0]), max_pixels)
    if array.dtype != np.uint8:
        array = _scale_to_uint8(array)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:
        return _composite_on_black(Image.fromarray(array, "RGBA"))
    return np.ascontiguousarray(array)


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale by the real finite range (16-bit MRI rarely uses the full 0..65535)."""
    values = array.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise ImageDecodeError("The image holds no finite pixel values (all NaN or infinite).")
    low, high = values[finite].min(), values[finite].max()
    if array.dtype == bool:
        low, high = 0.0, 1.0
    scaled = np.zeros_like(values) if high <= low else (values - low) / (high - low)
    scaled[~finite] = 0.0
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)
