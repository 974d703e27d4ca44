"""Input and file checks: the model's input against the images, the saving Keras against this one."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

from .findings import OK, WARNING, Finding
from .sample import Sample

#: Resizing stretches an image whose aspect ratio differs from the input's by more than this.
ASPECT_TOLERANCE = 0.10
#: Images this many times smaller than the input (per side) are mostly interpolation after resizing.
UPSAMPLE_WARNING = 2.0


def saved_keras_version(model_file) -> str | None:
    """The Keras version recorded in a .keras file (metadata.json) or an .h5 file (root attribute), or None."""
    path = Path(model_file)
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("metadata.json")).get("keras_version")
        import h5py

        with h5py.File(path, "r") as handle:
            value = handle.attrs.get("keras_version")
            return value.decode() if isinstance(value, bytes) else (str(value) if value is not None else None)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _major_minor(version: str) -> tuple[int, int] | None:
    try:
        parts = [int(p) for p in version.split(".")[:2]]
    except ValueError:
        return None
    return (parts[0], parts[1]) if len(parts) == 2 else None


def check_file(model_file) -> tuple[dict, Finding]:
    """Keras version that saved ``model_file`` against the installed one.

    WARNING when the major versions differ (Keras 2 files load through a
    compatibility path that has changed layer behaviour before) or the file
    is from a newer minor version than the one installed.
    """
    import keras

    saved, installed = saved_keras_version(model_file), keras.__version__
    info = {"model_file": str(model_file), "saved_with_keras": saved, "installed_keras": installed}
    if saved is None:
        return info, Finding(OK, "file", f"{Path(model_file).name} does not record the Keras version that saved it; "
                                         f"installed Keras {installed} loaded it.")
    s, i = _major_minor(saved), _major_minor(installed)
    if s is not None and i is not None and (s[0] != i[0] or s > i):
        return info, Finding(WARNING, "file", f"saved with Keras {saved}, loaded with Keras {installed}: "
                                              "if results look wrong, re-save the model with this version.")
    return info, Finding(OK, "file", f"saved with Keras {saved}, installed Keras {installed}.")


def check_input(size: tuple[int, int], channels: int, sample: Sample) -> tuple[dict, Finding]:
    """The model's (h, w, C) input against the sample's image sizes and colour."""
    h, w = size
    sizes = Counter((im.shape[0], im.shape[1]) for im in sample.images)
    colour = sample.colour_files
    info = {"model_input": [h, w, channels],
            "image_sizes": {f"{a}x{b}": n for (a, b), n in sizes.most_common()},
            "colour_files": colour, "grey_files": len(sample) - colour,
            "undecodable": [{"file": str(p), "error": e} for p, e in sample.failed]}
    common = ", ".join(f"{a}x{b} ({n})" for (a, b), n in sizes.most_common(3))
    text = (f"model input {h}x{w}x{channels}; {len(sample)} images, {common}"
            f"{', ...' if len(sizes) > 3 else ''}; {colour} colour, {len(sample) - colour} grey files")
    problems = []
    stretched = sum(n for (a, b), n in sizes.items() if abs((b / a) / (w / h) - 1.0) > ASPECT_TOLERANCE)
    if stretched:
        problems.append(f"{stretched} images have another aspect ratio than the input and are stretched by "
                        "the resize (crop or pad them as in training)")
    small = sum(n for (a, b), n in sizes.items() if a * UPSAMPLE_WARNING <= h or b * UPSAMPLE_WARNING <= w)
    if small:
        problems.append(f"{small} images are at most half the input size and are upsampled")
    if sample.failed:
        problems.append(f"{len(sample.failed)} files could not be decoded (first: {sample.failed[0][0].name}: "
                        f"{sample.failed[0][1]})")
    if problems:
        return info, Finding(WARNING, "input", text + "; " + "; ".join(problems) + ".")
    return info, Finding(OK, "input", text + ".")
