"""The neutral fill: what a "removed" region of a model input becomes.

One Gaussian blur of the whole model input, shared by the faithfulness audit
(:mod:`explain.metrics.faithfulness`: deletion and insertion curves) and the
run-time region check (:mod:`explain.checks.region`), so that "removing a
region" means the same thing in the audit's figures and on the page.
"""

from __future__ import annotations

import cv2
import numpy as np


def blur_image(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """float32 (h, w) or (h, w, C) model input -> Gaussian-blurred copy, shape (h, w, C), float32.

    sigma: in pixels; default max(h, w) / 32 (about 9 px at 299 px). RISE's
    11 px, sigma 5 kernel at 224 px is milder; a brain MRI keeps its tumour
    visible through that, so we blur harder. Edges are reflected, so the
    border does not darken.
    """
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"expected an image (h, w, C), got shape {image.shape}")
    if sigma is None:
        sigma = max(image.shape[:2]) / 32.0
    sigma = max(float(sigma), 0.5)
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return blurred.reshape(image.shape).astype(np.float32)
