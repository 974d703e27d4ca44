"""The images the doctor runs the model on, with their class when the folder says it.

``DIR`` holds images (PNG, JPEG, ..., DICOM), either directly or in one
sub-folder per class (folder name = class name, images found recursively
below it). With two or more class folders the sample is *labelled* and the
doctor can measure accuracy; otherwise it uses label-free evidence only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..__main__ import collect
from ..evaluation.audit import spread
from ..io.decode import decode_image
from ..errors import ExplainError


@dataclass
class Sample:
    """Decoded images and, for a labelled sample, their classes.

    images: list of N (H, W, 3) uint8 RGB arrays, as :func:`explain.io.decode.decode_image` gives them.
    paths: the N files.
    classes: sorted class-folder names (empty for an unlabelled sample).
    truth: int64 (N,) index into ``classes``, or None for an unlabelled sample.
    failed: (file, message) for every file that could not be decoded.
    """

    folder: Path
    paths: list[Path]
    images: list[np.ndarray]
    classes: list[str] = field(default_factory=list)
    truth: np.ndarray | None = None
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return self.truth is not None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def colour_files(self) -> int:
        """How many images are not grey (R, G and B differ somewhere)."""
        return sum(1 for im in self.images if not _is_grey(im))

    def counts(self) -> dict[str, int]:
        """Images per class (labelled sample), in ``classes`` order."""
        if self.truth is None:
            return {}
        return {c: int(np.sum(self.truth == k)) for k, c in enumerate(self.classes)}


def _is_grey(rgb: np.ndarray) -> bool:
    # R = G = B exactly: luma equals that value, so "grayscale" and "rgb" feed the same input.
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def list_images(folder, limit: int | None = None) -> tuple[list[Path], list[str], list[int] | None]:
    """Files to use: (paths, class names, class index per path or None when unlabelled).

    ``limit`` keeps at most that many, spread evenly over the sorted list, so
    every class keeps about its share.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExplainError(f"--images {folder} is not a folder.")
    per_class = {d.name: collect([str(d)]) for d in sorted(folder.iterdir()) if d.is_dir()}
    per_class = {name: files for name, files in per_class.items() if files}
    if len(per_class) >= 2:
        classes = sorted(per_class)
        pairs = [(path, k) for k, name in enumerate(classes) for path in per_class[name]]
        pairs = spread(pairs, limit)
        return [p for p, _ in pairs], classes, [k for _, k in pairs]
    paths = spread(collect([str(folder)]), limit)
    if not paths:
        raise ExplainError(f"No images found in {folder} (searched recursively for PNG, JPEG, BMP, TIFF, "
                           "WebP, GIF and DICOM files).")
    return paths, [], None


def load_sample(paths: list[Path], classes: list[str], truth: list[int] | None, folder,
                on_image=None) -> Sample:
    """Decode ``paths`` (from :func:`list_images`); files that fail are recorded, not fatal.

    on_image: called once per file (progress).
    """
    images, kept, kept_truth, failed = [], [], [], []
    for i, path in enumerate(paths):
        try:
            images.append(decode_image(path))
            kept.append(path)
            if truth is not None:
                kept_truth.append(truth[i])
        except ExplainError as exc:
            failed.append((path, str(exc)))
        if on_image is not None:
            on_image()
    if not images:
        raise ExplainError(f"None of the {len(paths)} images in {folder} could be decoded: {failed[0][1]}")
    return Sample(Path(folder), kept, images, list(classes),
                  np.asarray(kept_truth, np.int64) if truth is not None else None, failed)
