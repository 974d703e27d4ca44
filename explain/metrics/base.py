"""What the metric modules share: map resizing, image checks, batched prediction.

Conventions of every metric (:mod:`explain.metrics.faithfulness`, :mod:`explain.metrics.road`,
:mod:`explain.metrics.plausibility`, :mod:`explain.metrics.sanity`):

* ``image``: float32 (h, w, C), a *model input* (already preprocessed). Any
  "removed" value (zeros, the masked part of a product) is therefore 0 in the
  model's input space: black for [0, 1] inputs, mid-grey for [-1, 1] ones.
* ``saliency`` / ``cam``: float (h', w'), any resolution; it is resized
  bilinearly to the image size where the metric needs it. Higher = more
  important.
* ``predict_fn(batch float32 (N, h, w, C)) -> probs (N, K)``: a batched model
  call, e.g. ``CamEngine.predict``. The metrics call it with at most
  ``batch_size`` images at a time.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

PredictFn = Callable[[np.ndarray], np.ndarray]


def resize_map(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h', w') map -> float32 (h, w) by bilinear resize; ``size`` is (h, w).

    Not the display's bicubic :func:`explain.overlay.upsample`, on purpose:
    bilinear stays within its neighbours' values, so it keeps the map's order
    and sign; bicubic rings around every peak and its clipping turns the
    ringing into zeros, pixels the deletion and ROAD curves can no longer rank
    (ties go in raster order). Measured on the eight examples with the
    default model (Grad-CAM, 32 steps; benchmarks/metric_upsampling.py),
    feeding the metrics the display's maps instead would move deletion AUC by
    up to 0.13 per image (mean +0.02), Average Drop by up to 26 points (mean
    +5) and ROAD LeRF by up to 0.22; Score-CAM's smoother maps move less
    (deletion up to 0.05). Bilinear is also what Score-CAM's own masks use,
    and what every committed audit number was computed with.
    """
    saliency = np.asarray(saliency, np.float32)
    if saliency.ndim != 2:
        raise ValueError(f"expected a 2-D map, got shape {saliency.shape}")
    if saliency.shape == tuple(size):
        return saliency.copy()
    return cv2.resize(saliency, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)


def as_image(image) -> np.ndarray:
    """float32 (h, w, C) view of an (h, w) or (h, w, C) image; ValueError for other shapes."""
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"expected an image (h, w, C), got shape {image.shape}")
    return image


def predict_batched(predict_fn: PredictFn, images: np.ndarray, batch_size: int) -> np.ndarray:
    """float64 (N, K): ``predict_fn`` over ``images`` in chunks of ``batch_size``."""
    out = [
        np.asarray(predict_fn(images[i : i + batch_size]), np.float64)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out, axis=0)
