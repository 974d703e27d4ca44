"""The out-of-distribution corpus of the input-check benchmark: nothing downloaded.

Every member is either a file that ships inside an installed package
(pydicom's test DICOMs of other body parts and modalities, the sample photos
of matplotlib, scikit-learn and Gradio) or an image generated here from a
fixed seed (noise, patterns, text, shapes). :func:`members` lists them with
what each is and where it comes from; :func:`load` gives the source that
:func:`explain.io.decode.decode_image` reads (a path or an RGB uint8 array).

``REFERENCE`` members are real MRI from other sources: they are scored and
reported, but are not counted as out-of-distribution (a sagittal head MRI is
the kind of slice the model was trained on).

    python benchmarks/ood_corpus.py --write-test-set tests/data/non_mri   # the committed test set (generated only)
"""

from __future__ import annotations

import argparse
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

SIZE = 224


@dataclass(frozen=True)
class Member:
    name: str
    what: str
    source: str  # "pydicom", "matplotlib", "scikit-learn", "gradio" or "generated"
    make: Callable[[], object]  # -> a path or an (H, W, 3) uint8 array
    reference: bool = False  # a real MRI from another source: reported, not counted as OOD


def _pydicom(name: str) -> Callable[[], Path]:
    def make() -> Path:
        import pydicom

        return Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files" / name
    return make


def _package_file(package: str, *parts: str) -> Callable[[], Path]:
    def make() -> Path:
        import importlib

        return Path(os.path.dirname(importlib.import_module(package).__file__)).joinpath(*parts)
    return make


def _grey(array: np.ndarray) -> np.ndarray:
    """float (H, W) -> (H, W, 3) uint8 rescaled to its own range."""
    array = np.asarray(array, np.float64)
    span = array.max() - array.min()
    levels = (array - array.min()) / (span if span > 0 else 1.0)
    return np.repeat(np.rint(255 * levels).astype(np.uint8)[..., None], 3, axis=2)


def _sample_npz(name: str, key: str) -> Callable[[], np.ndarray]:
    def make() -> np.ndarray:
        import matplotlib

        with np.load(Path(matplotlib.get_data_path()) / "sample_data" / name) as data:
            return _grey(data[key])
    return make


def _sagittal_head_mri() -> np.ndarray:
    import matplotlib

    raw = gzip.open(Path(matplotlib.get_data_path()) / "sample_data" / "s1045.ima.gz").read()
    return _grey(np.frombuffer(raw, "<u2").reshape(256, 256))


# -- generated images (fixed seeds) ------------------------------------------------------
def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def noise_grey() -> np.ndarray:
    return np.repeat(_rng(1).integers(0, 256, (SIZE, SIZE, 1), dtype=np.uint8), 3, axis=2)


def noise_colour() -> np.ndarray:
    return _rng(2).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def clouds() -> np.ndarray:
    import cv2

    return _grey(cv2.GaussianBlur(_rng(3).normal(size=(SIZE, SIZE)), (0, 0), 8))


def checkerboard() -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE] // 28
    return _grey((yy + xx) % 2)


def grating() -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return _grey(np.sin(2 * np.pi * (xx + 0.5 * yy) / 19))


def gradient() -> np.ndarray:
    return _grey(np.tile(np.linspace(0, 1, SIZE), (SIZE, 1)))


def blank() -> np.ndarray:
    return np.zeros((SIZE, SIZE, 3), np.uint8)


def disk_phantom() -> np.ndarray:
    """A bright ellipse on black: a head's outline without any anatomy."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    inside = ((yy - SIZE / 2) / (0.42 * SIZE)) ** 2 + ((xx - SIZE / 2) / (0.34 * SIZE)) ** 2 <= 1
    return _grey(inside * 0.7 + _rng(4).normal(0, 0.03, (SIZE, SIZE)) * inside)


def _text(lines, fg, bg) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (SIZE, SIZE), bg)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((8, 8 + 14 * i), line, fill=fg)
    return np.asarray(image)


_WORDS = ("the patient was referred for imaging of the left knee after a fall report attached "
          "findings impression no acute fracture soft tissue swelling follow up in two weeks").split()


def text_page() -> np.ndarray:
    """Black text on white: a scanned report."""
    rng = _rng(5)
    lines = [" ".join(rng.choice(_WORDS, 5)) for _ in range(14)]
    return _text(lines, (0, 0, 0), (255, 255, 255))


def terminal() -> np.ndarray:
    """Light text on black: a terminal screenshot."""
    rng = _rng(6)
    lines = [f"$ {' '.join(rng.choice(_WORDS, 3))} --{rng.integers(100)}" for _ in range(14)]
    return _text(lines, (200, 255, 200), (0, 0, 0))


def shapes() -> np.ndarray:
    """Coloured rectangles and ellipses on a coloured ground: clip art."""
    from PIL import Image, ImageDraw

    rng = _rng(7)
    image = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for i in range(12):
        box = sorted(rng.integers(0, SIZE, 2)), sorted(rng.integers(0, SIZE, 2))
        xy = (box[0][0], box[1][0], box[0][1], box[1][1])
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.rectangle if i % 2 else draw.ellipse)(xy, fill=colour)
    return np.asarray(image)


def table() -> np.ndarray:
    """A spreadsheet: grid lines and numbers."""
    rng = _rng(8)
    image = _text(["  ".join(f"{v:5.1f}" for v in rng.uniform(0, 99, 4)) for _ in range(14)],
                  (0, 0, 0), (255, 255, 255)).copy()
    image[::14, :] = 120
    image[:, ::52] = 120
    return image


def salt_and_pepper() -> np.ndarray:
    return _grey(_rng(9).random((SIZE, SIZE)) > 0.97)


GENERATED = (
    Member("noise_grey", "uniform grey noise, 224 x 224", "generated", noise_grey),
    Member("noise_colour", "uniform RGB noise", "generated", noise_colour),
    Member("clouds", "smoothed Gaussian noise (sigma 8 px)", "generated", clouds),
    Member("checkerboard", "8 x 8 black and white checkerboard", "generated", checkerboard),
    Member("grating", "oblique sine grating", "generated", grating),
    Member("gradient", "left-to-right grey ramp", "generated", gradient),
    Member("blank", "all black", "generated", blank),
    Member("disk_phantom", "bright ellipse on black, a head's outline without anatomy", "generated", disk_phantom),
    Member("text_page", "black text on white, like a scanned report", "generated", text_page),
    Member("terminal", "green text on black, like a terminal screenshot", "generated", terminal),
    Member("shapes", "coloured rectangles and ellipses (clip art)", "generated", shapes),
    Member("table", "a spreadsheet: grid lines and numbers", "generated", table),
    Member("salt_and_pepper", "sparse white dots on black", "generated", salt_and_pepper),
)

PACKAGED = (
    Member("ct_thorax", "CT slice at a thoracic vertebra (pydicom CT_small.dcm)", "pydicom", _pydicom("CT_small.dcm")),
    Member("ct_head_1", "axial head CT, brain window (pydicom J2K_pixelrep_mismatch.dcm)", "pydicom",
           _pydicom("J2K_pixelrep_mismatch.dcm")),
    Member("ct_head_2", "axial head CT, narrow window (pydicom 693_J2KI.dcm)", "pydicom", _pydicom("693_J2KI.dcm")),
    Member("nm_bone_scan", "nuclear-medicine whole-body bone scan (pydicom JPEG2000.dcm)", "pydicom",
           _pydicom("JPEG2000.dcm")),
    Member("mr_abdomen", "axial abdominal MR with the liver (pydicom examples_overlay.dcm)", "pydicom",
           _pydicom("examples_overlay.dcm")),
    Member("us_doppler", "colour-Doppler ultrasound with on-screen text (pydicom examples_rgb_color.dcm)",
           "pydicom", _pydicom("examples_rgb_color.dcm")),
    Member("us_cardiac", "cardiac ultrasound (pydicom examples_ybr_color.dcm)", "pydicom",
           _pydicom("examples_ybr_color.dcm")),
    Member("us_small", "small ultrasound frame, mostly yellow (pydicom ExplVR_BigEnd.dcm)", "pydicom",
           _pydicom("ExplVR_BigEnd.dcm")),
    Member("liver_mask", "binary liver segmentation mask (pydicom liver_1frame.dcm)", "pydicom",
           _pydicom("liver_1frame.dcm")),
    Member("colour_bars", "RGB colour-bar test pattern (pydicom SC_rgb_rle.dcm)", "pydicom",
           _pydicom("SC_rgb_rle.dcm")),
    Member("fractal_squares", "grey nested squares test image (pydicom image_dfl.dcm)", "pydicom",
           _pydicom("image_dfl.dcm")),
    Member("rt_dose", "10 x 10 radiotherapy dose grid (pydicom rtdose_1frame.dcm)", "pydicom",
           _pydicom("rtdose_1frame.dcm")),
    Member("photo_portrait", "photo of Grace Hopper (matplotlib sample_data)", "matplotlib",
           _package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")),
    Member("photo_package", "photo of a blue gift box (matplotlib sample_data)", "matplotlib",
           _package_file("matplotlib", "mpl-data", "sample_data", "Minduka_Present_Blue_Pack.png")),
    Member("logo", "matplotlib logo (sample_data logo2.png)", "matplotlib",
           _package_file("matplotlib", "mpl-data", "sample_data", "logo2.png")),
    Member("elevation_map", "terrain elevation grid in grey (matplotlib jacksboro_fault_dem.npz)", "matplotlib",
           _sample_npz("jacksboro_fault_dem.npz", "elevation")),
    Member("photo_temple", "photo of a Chinese temple (scikit-learn china.jpg)", "scikit-learn",
           _package_file("sklearn", "datasets", "images", "china.jpg")),
    Member("photo_flower", "photo of a flower (scikit-learn flower.jpg)", "scikit-learn",
           _package_file("sklearn", "datasets", "images", "flower.jpg")),
    Member("photo_cheetah", "photo of a cheetah (Gradio media_assets)", "gradio",
           _package_file("gradio", "media_assets", "images", "cheetah.jpg")),
    Member("photo_lion", "photo of a lion (Gradio media_assets)", "gradio",
           _package_file("gradio", "media_assets", "images", "lion.jpg")),
    Member("photo_tower", "photo of a tower (Gradio media_assets)", "gradio",
           _package_file("gradio", "media_assets", "images", "tower.jpg")),
    Member("hf_logo", "Hugging Face logo on transparency (Gradio media_assets)", "gradio",
           _package_file("gradio", "media_assets", "images", "hf-logo_transpng.png")),
)

REFERENCE = (
    Member("mri_head_sagittal", "sagittal T1 head MRI, 256 x 256 (matplotlib sample_data s1045.ima.gz)",
           "matplotlib", _sagittal_head_mri, reference=True),
    Member("mri_small", "64 x 64 MR crop of unstated anatomy (pydicom MR_small.dcm)", "pydicom",
           _pydicom("MR_small.dcm"), reference=True),
)


def members(include_reference: bool = True) -> list[Member]:
    """Every member, the out-of-distribution ones first."""
    return list(GENERATED + PACKAGED + (REFERENCE if include_reference else ()))


def load(member: Member):
    """The member's source for ``decode_image``: a path that exists or an RGB uint8 array."""
    source = member.make()
    if isinstance(source, Path) and not source.is_file():
        raise FileNotFoundError(f"{member.name}: {source} is not installed")
    return source


#: The committed test set: generated members only (no third-party files), small PNGs.
TEST_SET = ("noise_colour", "clouds", "checkerboard", "grating", "text_page", "terminal", "shapes", "table")


def write_test_set(folder: Path, size: int = 96) -> list[Path]:
    """Write the :data:`TEST_SET` members as ``size`` x ``size`` PNGs into ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    by_name = {m.name: m for m in GENERATED}
    written = []
    for name in TEST_SET:
        path = folder / f"{name}.png"
        Image.fromarray(by_name[name].make()).resize((size, size), Image.Resampling.LANCZOS).save(path, optimize=True)
        written.append(path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-test-set", type=Path, required=True, help="folder to write the PNGs into")
    for written in write_test_set(parser.parse_args().write_test_set):
        print(written)
