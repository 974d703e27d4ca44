"""Test-time augmentation (TTA) smoothing of CAMs.

A map is computed for each augmented copy of the image (horizontal flip x
small brightness changes), moved back to the original geometry and averaged:
evidence that survives a flip and a brightness change stays, the rest is
averaged down. The class is fixed beforehand from the unaugmented image, so
every copy explains the same class, and the probabilities shown stay those of
the unaugmented image.

The augmentation set is closed under the flip, so the smoothed map of a
mirrored image is exactly the mirrored smoothed map, which a single map is
not (strided "same" padding is not symmetric).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .preprocess import InputSpec, finish

#: (batch (N, h, w, C) float32 model inputs, classes list of N ints) ->
#: (maps (N, h', w') float32 in [0, 1], empty (N,) bool).
MapFn = Callable[[np.ndarray, list], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Augmentation:
    """One copy: ``flip`` mirrors left-right, ``brightness`` scales pixel values (clipped to 255)."""

    flip: bool = False
    brightness: float = 1.0

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """(h, w, c) pixels in [0, 255] -> float32 (h, w, c) augmented, in [0, 255]."""
        out = np.clip(np.asarray(pixels, np.float32) * self.brightness, 0.0, 255.0)
        return out[:, ::-1] if self.flip else out

    def undo_map(self, cam: np.ndarray) -> np.ndarray:
        """(h', w') map of the augmented copy -> the same map in the original's geometry."""
        return cam[:, ::-1] if self.flip else cam


FLIPS = (False, True)
BRIGHTNESS = (0.9, 1.0, 1.1)
DEFAULT_AUGMENTATIONS: tuple[Augmentation, ...] = tuple(
    Augmentation(flip, b) for flip in FLIPS for b in BRIGHTNESS
)
#: How many copies a TTA map averages (the CAM cost is this many times one map).
TTA_COPIES = len(DEFAULT_AUGMENTATIONS)


def augment(pixels: np.ndarray, spec: InputSpec,
            augmentations: Sequence[Augmentation] = DEFAULT_AUGMENTATIONS) -> np.ndarray:
    """(h, w, 1|3) pixels in [0, 255] (``prepare_pixels`` output) -> float32 (A, h, w, C) model inputs."""
    return np.stack([finish(a.apply(pixels), spec) for a in augmentations])


def merge(maps: np.ndarray, augmentations: Sequence[Augmentation] = DEFAULT_AUGMENTATIONS
          ) -> tuple[np.ndarray, bool]:
    """(A, h', w') maps in [0, 1] of the copies -> ((h', w') float32 in [0, 1], empty).

    Each map is undone and the mean rescaled so its maximum is 1; an all-zero
    mean (no copy had positive evidence) stays zero and is reported empty.
    """
    if len(maps) != len(augmentations):
        raise ValueError(f"{len(maps)} maps for {len(augmentations)} augmentations")
    mean = np.mean([a.undo_map(m) for a, m in zip(augmentations, maps)], axis=0).astype(np.float32)
    peak = float(mean.max()) if mean.size else 0.0
    if not np.isfinite(peak) or peak <= 0.0:
        return np.zeros_like(mean), True
    return mean / peak, False


def smoothed_maps(map_fn: MapFn, pixels: Sequence[np.ndarray], spec: InputSpec, classes,
                  augmentations: Sequence[Augmentation] = DEFAULT_AUGMENTATIONS
                  ) -> tuple[np.ndarray, np.ndarray]:
    """TTA maps of several images in one call of ``map_fn``.

    pixels: per image (h, w, 1|3) in [0, 255]; classes: one resolved class
    index (>= 0) per image, explained in every copy.
    Returns (maps float32 (B, h', w') in [0, 1], empty bool (B,)).
    """
    classes = [int(c) for c in classes]
    if len(classes) != len(pixels):
        raise ValueError(f"{len(pixels)} images but {len(classes)} classes")
    if any(c < 0 for c in classes):
        raise ValueError("TTA needs resolved class indices (>= 0), not -1")
    if not augmentations:
        raise ValueError("TTA needs at least one augmentation")
    batch = np.concatenate([augment(p, spec, augmentations) for p in pixels])
    copies = len(augmentations)
    maps, _ = map_fn(batch, [c for c in classes for _ in range(copies)])
    merged = [merge(maps[i * copies:(i + 1) * copies], augmentations) for i in range(len(pixels))]
    return (np.stack([m for m, _ in merged]).astype(np.float32),
            np.array([e for _, e in merged], dtype=bool))
