"""Read one DICOM image into the same display array as every other format.

:func:`read_dicom` is called by :func:`explain.io.decode.decode_image` when the
bytes carry the DICOM marker (or the file is named ``.dcm``); it is not meant
to be the only DICOM viewer a site needs, only to show a slice the way a
radiologist's default window would.

pydicom is imported inside the function so that installing it is only needed
by people who actually upload DICOM.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np

from ..errors import ImageDecodeError
from .limits import check_pixels
from .sniff import ACCEPTED, is_dicom

#: Percentiles of the fallback window, used when the file names none. Clipping
#: the extreme 0.5 % on each side keeps one hot pixel from darkening the slice.
PERCENTILE_WINDOW = (0.5, 99.5)

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_GREY = ("MONOCHROME1", "MONOCHROME2")
_ACCEPTED_DICOM = f"Accepted: uncompressed DICOM images, or {ACCEPTED}."
_DAMAGED_HEADER = "The DICOM header is damaged and could not be read. Re-export the image and try again."


def read_dicom(data: bytes, *, max_pixels: int | None = None, frame: int | None = None) -> np.ndarray:
    """Decode the DICOM file ``data`` into an RGB ``uint8`` array of shape ``(H, W, 3)``.

    Greyscale (MONOCHROME1/2): the modality rescale (RescaleSlope/Intercept,
    or a Modality LUT) is applied, then the first WindowCenter/WindowWidth
    pair, or a 0.5-99.5 percentile window when the file has none;
    MONOCHROME1 is inverted so that high values are bright. Colour (RGB,
    YBR as converted by pydicom) passes through, scaled by BitsStored when
    above 8 bits. Multi-frame files give their middle frame (the only one
    decoded), or frame number ``frame`` (0-based) when it is given. ``max_pixels`` bounds Rows x Columns and is checked before the
    pixel data is decoded. Raises :class:`ImageDecodeError` with a message
    fit to show to a person.
    """
    return DicomFile(data).frame(frame, max_pixels=max_pixels)


class DicomFile:
    """A DICOM file parsed once; :meth:`frame` decodes one frame's pixels when asked.

    ``frames`` comes from the header alone (NumberOfFrames), so a caller can refuse a
    file that declares too many frames before any pixel is decoded, and a multi-frame
    file is not parsed again for every frame.
    """

    def __init__(self, data: bytes):
        try:
            import pydicom
        except ImportError as exc:
            raise ImageDecodeError(
                "DICOM files need the 'pydicom' package, which is not installed here. "
                "Convert the slice to PNG, or install pydicom."
            ) from exc
        self.has_magic = is_dicom(data)
        self.ds = _parse(pydicom, data, force=not self.has_magic)
        try:
            self.frames = max(1, _int(self.ds.get("NumberOfFrames")) or 1)
        except Exception as exc:
            raise ImageDecodeError(_DAMAGED_HEADER) from exc

    def frame(self, index: int | None = None, *, max_pixels: int | None = None) -> np.ndarray:
        """Frame ``index`` (0-based; None: the middle one) as (H, W, 3) uint8; see :func:`read_dicom`."""
        from pydicom.pixels import apply_modality_lut, pixel_array

        try:
            # pydicom warns about every oddity it tolerates; what it cannot
            # tolerate becomes the one error below, so the warnings are noise.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return _to_rgb(self.ds, self.has_magic, max_pixels, pixel_array, apply_modality_lut, index)
        except ImageDecodeError:
            raise
        except Exception as exc:
            # pydicom converts elements lazily, so a damaged element surfaces on
            # first access, anywhere below; all of them mean the same to a person.
            raise ImageDecodeError(_DAMAGED_HEADER) from exc


def _to_rgb(ds, has_magic: bool, max_pixels: int | None, pixel_array,
            apply_modality_lut, index: int | None = None) -> np.ndarray:
    """Parsed dataset -> (H, W, 3) uint8; see :func:`read_dicom`."""
    if not any(tag in ds for tag in _PIXEL_TAGS):
        if not has_magic:
            raise ImageDecodeError(f"This file is not a readable DICOM image. {_ACCEPTED_DICOM}")
        # Damage in the header can also end pydicom's lenient parse early.
        raise ImageDecodeError(
            "This DICOM file holds no image (no pixel data): it is a report or other "
            f"non-image object, or damaged. {_ACCEPTED_DICOM}"
        )
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    if rows is None or columns is None:
        raise ImageDecodeError("This DICOM file does not state its image size (Rows/Columns).")
    if max_pixels is not None:
        check_pixels((columns, rows), max_pixels)

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    samples = _int(ds.get("SamplesPerPixel")) or 1
    if photometric == "PALETTE COLOR" or (samples == 1 and photometric not in _GREY):
        raise ImageDecodeError(
            f"DICOM images with photometric interpretation '{_printable(photometric, 20)}' are not "
            "supported. Accepted: MONOCHROME1, MONOCHROME2 or RGB."
        )

    syntax = _ensure_transfer_syntax(ds)
    frames = _int(ds.get("NumberOfFrames")) or 1
    if index is not None and not 0 <= index < frames:
        raise ImageDecodeError(f"This DICOM file has {frames} frame(s); frame {index} does not exist.")
    try:
        frame = pixel_array(ds, index=frames // 2 if index is None else index)
    except Exception as exc:
        if not syntax.is_transfer_syntax:
            raise ImageDecodeError(
                f"This DICOM file names an unknown transfer syntax ({_printable(syntax, 64)}); "
                f"it may be damaged. {_ACCEPTED_DICOM}"
            ) from exc
        if syntax.is_compressed:
            raise ImageDecodeError(
                f"The DICOM pixel data is compressed ({_printable(syntax.name, 60)}) and could "
                f"not be decoded here. {_ACCEPTED_DICOM}"
            ) from exc
        raise ImageDecodeError(
            "The DICOM pixel data is truncated or damaged. Re-export the image and try again."
        ) from exc

    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return _colour_to_uint8(frame, _int(ds.get("BitsStored")))
    if frame.ndim != 2:
        raise ImageDecodeError(
            f"This DICOM image has an unsupported layout ({samples} samples per pixel)."
        )
    values = _modality(ds, frame, apply_modality_lut)
    grey = _window(values, _first_number(ds.get("WindowCenter")),
                   _first_number(ds.get("WindowWidth")),
                   str(ds.get("VOILUTFunction", "LINEAR")).strip().upper())
    if photometric == "MONOCHROME1":
        grey = 1.0 - grey
    grey[~np.isfinite(values)] = 0.0
    out = np.clip(np.rint(grey * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(out[:, :, None], 3, axis=2)


def _parse(pydicom, data: bytes, *, force: bool):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(io.BytesIO(data), force=force)
    except Exception as exc:
        if not force:
            raise ImageDecodeError(_DAMAGED_HEADER) from exc
        raise ImageDecodeError(f"This file is not a readable DICOM image. {_ACCEPTED_DICOM}") from exc


def _ensure_transfer_syntax(ds):
    """The dataset's Transfer Syntax UID, filled in from how it was parsed if absent."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        # Files without a meta header (no preamble, raw dataset) are native;
        # pydicom already guessed the encoding while parsing them.
        implicit, little = ds.original_encoding
        if implicit is None or implicit or little is None:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    return meta.TransferSyntaxUID


def _printable(text, limit: int) -> str:
    """``text`` from the file, made safe to quote: printable ASCII only, at most ``limit`` chars."""
    text = "".join(c if " " <= c <= "~" else "?" for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _modality(ds, frame: np.ndarray, apply_modality_lut) -> np.ndarray:
    """Stored values -> modality units (float64), the space the window is given in."""
    if ds.get("ModalityLUTSequence"):
        return np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
    values = frame.astype(np.float64)
    # Each is applied on its own: files with only one of the two exist.
    slope = _first_number(ds.get("RescaleSlope"))
    intercept = _first_number(ds.get("RescaleIntercept"))
    if slope is not None and slope != 0:
        values = values * slope
    if intercept is not None:
        values = values + intercept
    return values


def _window(values: np.ndarray, center: float | None, width: float | None,
            function: str) -> np.ndarray:
    """Modality values -> float64 display values in 0..1 (DICOM PS3.3 C.11.2.1.2)."""
    if center is None or width is None or width <= 0:
        return _percentile_window(values)
    if function == "SIGMOID":
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        low, high = center - width / 2.0, center + width / 2.0
    else:
        # LINEAR: the standard's half-unit offsets, so that integer data with
        # width W spreads over exactly W levels.
        low, high = center - 0.5 - (width - 1.0) / 2.0, center - 0.5 + (width - 1.0) / 2.0
    if high <= low:  # width 1: a threshold
        return (values > low).astype(np.float64)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _percentile_window(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ImageDecodeError("The DICOM image holds no finite pixel values.")
    low, high = np.percentile(finite, PERCENTILE_WINDOW)
    if high <= low:  # over 99 % of one value: fall back to the full range
        low, high = finite.min(), finite.max()
    if high <= low:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _colour_to_uint8(frame: np.ndarray, bits_stored: int | None) -> np.ndarray:
    """(H, W, 3) RGB of any integer depth -> (H, W, 3) uint8."""
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    bits = bits_stored or 8 * frame.dtype.itemsize
    scaled = frame.astype(np.float64) * (255.0 / (2.0**bits - 1.0))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _first_number(value) -> float | None:
    """First value of a possibly multi-valued numeric element, or None if absent/unusable."""
    if value is None:
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value) -> int | None:
    number = _first_number(value)
    return None if number is None or number < 1 else int(number)
