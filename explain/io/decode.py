"""Decode anything that holds an image into one display array.

Every entry point of the pipeline (app, CLI, training, evaluation) starts
here, so that a file looks the same to the model whichever way it arrives.

Output of :func:`decode_image`: ``np.uint8`` array of shape ``(H, W, 3)``,
RGB, values 0..255, EXIF orientation applied. Grayscale sources are
replicated to three channels; colour conversion for the model happens later,
in :mod:`explain.preprocess`. DICOM files are recognised by their header (or a
``.dcm`` name) and handed to :mod:`explain.io.dicom`.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .dicom import read_dicom
from ..errors import ImageDecodeError
from .limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, check_bytes, check_pixels
from .sniff import ACCEPTED_ALL, PIL_FORMATS, has_dicom_suffix, is_dicom

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]


def decode_image(
    source: ImageSource,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode ``source`` into an RGB ``uint8`` array of shape ``(H, W, 3)``.

    ``source`` may be a path, the encoded bytes (any format Pillow reads, or
    DICOM), a PIL image or a numpy array (``(H, W)``, ``(H, W, 1|3|4)``; uint8
    is taken as is, other dtypes are scaled by their finite range, see
    :func:`_scale_to_uint8`). ``max_bytes`` bounds the encoded size and
    ``max_pixels`` the width times height; both are checked before any pixel
    is decoded. Raises :class:`ImageDecodeError` with a message fit to show
    to a person.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        check_pixels(source.size, max_pixels)
        return _from_pil(source)
    data = _read_bytes(source, max_bytes)
    if is_dicom(data) or has_dicom_suffix(source):
        return read_dicom(data, max_pixels=max_pixels)
    # Pillow's exception texts can quote raw chunk bytes, so they go to the
    # chained cause (logs), never into the message shown to the person.
    try:
        # Pillow's own bomb guard warns (or raises) at a fixed size whatever
        # max_pixels says; check_pixels below runs on the header before any
        # decoding and gives a clearer message. The guard stays on for the rest
        # of the process: only its warning is muted here, for this call.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(
            f"The image has more pixels than this reader accepts (over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} "
            f"MP); the limit here is {max_pixels / 1e6:.0f} MP. Upload a smaller image."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            f"This file is not an image that can be read. Accepted: {ACCEPTED_ALL}."
        ) from exc
    except Exception as exc:  # Pillow raises many types for corrupt headers
        raise ImageDecodeError(
            "The image header is damaged. Re-save the image and try again."
        ) from exc
    check_pixels(image.size, max_pixels)
    try:
        image.load()
    except Exception as exc:
        raise ImageDecodeError(
            "The image data is truncated or damaged. Re-save the image and try again."
        ) from exc
    return _from_pil(image)


def _read_bytes(source, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageDecodeError(f"No such image file: {path}")
        check_bytes(path.stat().st_size, max_bytes)
        data = path.read_bytes()
    else:
        raise ImageDecodeError(
            f"Cannot read an image from a {type(source).__name__}; "
            "give a path, bytes, a PIL image or a numpy array."
        )
    if not data:
        raise ImageDecodeError("The file is empty (0 bytes).")
    check_bytes(len(data), max_bytes)
    return data


def _from_pil(image: Image.Image) -> np.ndarray:
    """PIL image of any mode -> (H, W, 3) uint8 RGB."""
    try:
        # Multi-frame GIF/TIFF: the first frame is the image shown. tell()
        # rather than n_frames, which would walk (and trip on) later frames.
        if image.tell() != 0:
            image.seek(0)
        image = ImageOps.exif_transpose(image)
    except Exception as exc:
        raise ImageDecodeError(
            "The image data or its EXIF metadata is damaged. Re-save the image and try again."
        ) from exc
    try:
        return _pil_to_rgb(image)
    except ImageDecodeError:
        raise
    except Exception as exc:
        # Rare modes (LAB, HSV, ...): the person can only re-save the file.
        raise ImageDecodeError(
            f"This image's colour mode ({image.mode}) cannot be converted to RGB. "
            "Re-save it as an 8-bit RGB or greyscale PNG or JPEG."
        ) from exc


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
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
    """(H, W), (H, W, 1|3|4) array of any real dtype -> new (H, W, 3) uint8 array."""
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise ImageDecodeError(
            f"An image array must hold real numbers; got dtype {array.dtype}."
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageDecodeError(
            f"An image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {array.shape}."
        )
    if max_pixels is not None:
        check_pixels((array.shape[1], array.shape[0]), max_pixels)
    if array.ndim == 3 and array.shape[2] == 4 and array.dtype != np.uint8:
        # Alpha is a coverage fraction, not an intensity: stretching it with
        # the colour range would make a half-transparent pixel opaque.
        rgb = _scale_to_uint8(array[:, :, :3])
        alpha = _alpha_to_uint8(array[:, :, 3])
        array = np.concatenate([rgb, alpha[:, :, None]], axis=2)
    elif array.dtype != np.uint8:
        array = _scale_to_uint8(array)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:
        return _composite_on_black(Image.fromarray(np.ascontiguousarray(array), "RGBA"))
    # A copy, so that a caller's array is never aliased by the decoded image.
    return np.array(array, dtype=np.uint8, order="C", copy=True)


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Any real array -> uint8 array of the same shape, stretched to 0..255.

    The finite range maps to 0..255 (16-bit MRI rarely uses the full
    0..65535). +inf saturates to 255, -inf and NaN become 0 (background).
    bool maps False/True to 0/255. A constant image has no range to stretch,
    so it keeps its level relative to the dtype instead (an all-white 16-bit
    image stays white rather than turning black).
    """
    values = array.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise ImageDecodeError("The image holds no finite pixel values (all NaN or infinite).")
    if array.dtype == bool:
        scaled = values
    else:
        low, high = values[finite].min(), values[finite].max()
        if high > low:
            scaled = (values - low) / (high - low)
        else:
            scaled = np.full_like(values, _constant_level(low, array.dtype))
    scaled[np.isnan(values)] = 0.0
    scaled[values == np.inf] = 1.0
    scaled[values == -np.inf] = 0.0
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def _constant_level(value: float, dtype: np.dtype) -> float:
    """0..1 brightness of a constant image: integers against their dtype maximum, floats as 0..1."""
    if np.issubdtype(dtype, np.integer):
        return min(max(value / np.iinfo(dtype).max, 0.0), 1.0)
    return min(max(value, 0.0), 1.0)


def _alpha_to_uint8(alpha: np.ndarray) -> np.ndarray:
    """Alpha plane of any dtype -> uint8: integers against their dtype maximum, floats as 0..1."""
    if alpha.dtype == bool:
        return alpha.astype(np.uint8) * 255
    values = np.nan_to_num(alpha.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    if np.issubdtype(alpha.dtype, np.integer):
        values = values / np.iinfo(alpha.dtype).max
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
