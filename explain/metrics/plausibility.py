"""Plausibility: is the map where a person expects it (inside the head)?

:func:`head_mask`, :func:`energy_inside`, :func:`head_energy`, and the
baselines a real map should beat: :func:`random_map`, :func:`center_gaussian_map`.
Conventions: see :mod:`explain.metrics.base`.
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import as_image, resize_map

def head_mask(
    image, threshold: float | None = None, close_frac: float = 0.03, open_frac: float = 0.01
) -> np.ndarray:
    """Bool (h, w) mask of the head (the largest bright object, holes filled).

    image: (h, w) or (h, w, C), any value range (min-max scaled to 0..255).
    threshold: None for Otsu's threshold on the log-compressed grey image,
        else a fixed threshold in [0, 1] of the min-max scaled grey range.
    close_frac: size of the elliptic closing kernel as a fraction of
        max(h, w); closing joins the skull ring to the brain across dark CSF.
    open_frac: size of the opening kernel (at least 3 px) applied before
        the closing; it removes bright structures thinner than itself.
    A constant image has no object and gives an all-False mask.
    """
    image = as_image(image)
    grey = image.mean(axis=-1)
    low, high = float(grey.min()), float(grey.max())
    if high - low <= 1e-12:
        return np.zeros(grey.shape, bool)
    unit = (grey - low) / (high - low)
    if threshold is None:
        # Otsu on log-compressed intensities: on a linear scale the tissue
        # classes dominate the histogram and Otsu often splits bright fat from
        # darker brain (sagittal T1), leaving a broken ring; the log stretches
        # the dark range so the largest split is background vs tissue.
        log8 = np.round(np.log1p(255.0 * unit) / np.log(256.0) * 255.0).astype(np.uint8)
        _, binary = cv2.threshold(log8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    else:
        binary = np.where(unit > float(threshold), 255, 0).astype(np.uint8)
    # Opening first removes thin bright lines (text, a frame) that would
    # otherwise join into one component whose filled outline is the whole
    # image; a frame on the image edge is cleared outright, since the opening
    # cannot remove a line thicker than its kernel.
    k_open = max(3, int(round(open_frac * max(grey.shape))) | 1)
    binary[:k_open], binary[-k_open:], binary[:, :k_open], binary[:, -k_open:] = 0, 0, 0, 0
    opener = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_open, k_open))
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, opener)
    k = max(3, int(round(close_frac * max(grey.shape))) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return np.zeros(grey.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    component = (labels == largest).astype(np.uint8)
    # Filling the outer contour fills every hole (ventricles, dark lesions).
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(component)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def energy_inside(saliency, mask) -> float:
    """Fraction in [0, 1] of the map's positive mass inside ``mask``.

    saliency: (h', w') map, resized to the mask; negative values count as 0.
    mask: bool (h, w). A map with no positive mass returns 0.0 (no evidence
    inside, so it never passes a threshold).
    """
    mask = np.asarray(mask, bool)
    cam = np.maximum(np.nan_to_num(resize_map(saliency, mask.shape)), 0.0).astype(np.float64)
    total = cam.sum()
    if total <= 0.0:
        return 0.0
    return float(cam[mask].sum() / total)


def head_energy(image, saliency, threshold: float | None = None) -> float:
    """:func:`energy_inside` of :func:`head_mask` (image): the map's share inside the head, in [0, 1]."""
    image = as_image(image)
    return energy_inside(saliency, head_mask(image, threshold))


def random_map(shape: tuple[int, int], seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Uniform random float32 (h, w) map in [0, 1)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.random(tuple(shape)).astype(np.float32)


def center_gaussian_map(shape: tuple[int, int], sigma_frac: float = 0.25) -> np.ndarray:
    """float32 (h, w) Gaussian centred on the image, peak 1, in (0, 1].

    sigma_frac: standard deviation as a fraction of each side. Beating this
    baseline shows a map knows more than "tumours are near the middle".
    """
    h, w = int(shape[0]), int(shape[1])
    y = (np.arange(h) - (h - 1) / 2.0) / max(sigma_frac * h, 1e-6)
    x = (np.arange(w) - (w - 1) / 2.0) / max(sigma_frac * w, 1e-6)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)
