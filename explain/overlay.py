"""Render a CAM over the original image.

All functions take and return numpy arrays; colours are RGB (OpenCV's
colormaps are BGR, and forgetting to swap them is why so many Grad-CAM
demos show important regions in blue).
"""

from __future__ import annotations

import cv2
import numpy as np


def upsample(cam: np.ndarray, size: tuple[int, int], blur_sigma: float = 0.0) -> np.ndarray:
    """(h, w) float map in [0, 1] -> (H, W) float32 in [0, 1] for ``size`` = (H, W).

    Bicubic interpolation (smooth, unlike nearest-neighbour blocks or
    bilinear's diamond-shaped ridges), clipped because bicubic overshoots; an
    optional Gaussian blur, sigma in pixels of the output. For display only:
    the metrics upsample bilinearly (:func:`explain.metrics.base.resize_map`,
    whose docstring says why the two differ).
    """
    height, width = size
    out = cv2.resize(np.asarray(cam, np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    if blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur_sigma)
    return np.clip(out, 0.0, 1.0)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """(H, W) float in [0, 1] -> (H, W, 3) uint8 RGB with the JET colormap (red = high)."""
    levels = np.clip(np.rint(np.asarray(heatmap) * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def blend(rgb: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """(H, W, 3) uint8 image + (H, W) map in [0, 1] -> (H, W, 3) uint8 RGB.

    ``alpha`` is the heatmap's opacity: 0 shows the image only, 1 the heatmap only.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colour = colorize(heatmap).astype(np.float32)
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
