"""Faithfulness: does the model's score follow the map?

:func:`deletion_auc`, :func:`insertion_auc` (Petsiuk et al., RISE, 2018) and
:func:`average_drop_and_increase` (Chattopadhyay et al., Grad-CAM++, 2018).
Conventions (image, saliency, predict_fn): see :mod:`explain.metrics.base`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# The neutral fill lives in the runtime: the page's region check removes regions the same way.
from ..perturb import blur_image
from .base import PredictFn, as_image, predict_batched, resize_map

#: Steps of the deletion/insertion curves (RISE uses one step per 224 px row).
DEFAULT_STEPS = 32
DEFAULT_BATCH = 32


def _pixel_order(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # Most salient first. A stable sort on the negated map makes ties (flat
    # regions, upsampled blocks) resolve in raster order, so the curve is
    # reproducible.
    flat = resize_map(saliency, size).reshape(-1)
    flat = np.nan_to_num(flat, nan=-np.inf)
    return np.argsort(-flat, kind="stable")


def _curve(
    start: np.ndarray,
    finish: np.ndarray,
    saliency: np.ndarray,
    predict_fn: PredictFn,
    class_idx: int,
    steps: int,
    batch_size: int,
) -> np.ndarray:
    """Scores of class ``class_idx`` while pixels move from ``start`` to ``finish``, most salient first.

    Returns float64 (steps + 1,): point i has round(i * n / steps) of the n
    pixels taken from ``finish``.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    h, w, c = start.shape
    n = h * w
    order = _pixel_order(saliency, (h, w))
    counts = np.round(np.linspace(0, n, steps + 1)).astype(np.int64)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    # Pixel p is already replaced at step i iff rank[p] < counts[i]; build all
    # steps + 1 images at once so predict_fn sees full batches.
    replaced = rank[None, :] < counts[:, None]  # (steps + 1, n)
    images = np.where(replaced.reshape(-1, h, w, 1), finish[None], start[None]).astype(np.float32)
    probs = predict_batched(predict_fn, images, batch_size)
    return probs[:, int(class_idx)]


def auc(scores: np.ndarray) -> float:
    """Trapezoid area under ``scores`` (n,) sampled evenly on [0, 1]; in [0, 1] for scores in [0, 1]."""
    scores = np.asarray(scores, np.float64)
    if scores.size < 2:
        raise ValueError("need at least two points")
    return float(np.trapezoid(scores, dx=1.0 / (scores.size - 1)))


def deletion_curve(
    image, saliency, predict_fn: PredictFn, class_idx: int, steps: int = DEFAULT_STEPS,
    substrate: str = "zeros", batch_size: int = DEFAULT_BATCH, blur_sigma: float | None = None,
) -> np.ndarray:
    """Class probability (steps + 1,) float64 as the most salient pixels are removed.

    substrate: what a removed pixel becomes: "zeros" (RISE's deletion; 0 in
        the model's input space) or "blur" (the blurred image, see
        :func:`blur_image`; stays closer to the training distribution).
    """
    image = as_image(image)
    if substrate == "zeros":
        finish = np.zeros_like(image)
    elif substrate == "blur":
        finish = blur_image(image, blur_sigma)
    else:
        raise ValueError(f"substrate must be 'zeros' or 'blur', not {substrate!r}")
    return _curve(image, finish, saliency, predict_fn, class_idx, steps, batch_size)


def deletion_auc(
    image, saliency, predict_fn: PredictFn, class_idx: int, steps: int = DEFAULT_STEPS,
    substrate: str = "zeros", batch_size: int = DEFAULT_BATCH, blur_sigma: float | None = None,
) -> float:
    """Deletion AUC in [0, 1] (RISE): lower is better.

    image: float32 (h, w, C) model input; saliency: (h', w') map, any scale.
    The most salient pixels are replaced first, ``n / steps`` per step, by
    ``substrate`` ("zeros", the RISE default, or "blur"); the area under the
    class probability curve over the removed fraction [0, 1] is returned.
    """
    curve = deletion_curve(image, saliency, predict_fn, class_idx, steps, substrate, batch_size, blur_sigma)
    return auc(curve)


def insertion_curve(
    image, saliency, predict_fn: PredictFn, class_idx: int, steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH, blur_sigma: float | None = None,
) -> np.ndarray:
    """Class probability (steps + 1,) float64 as the most salient pixels are revealed on a blurred copy."""
    image = as_image(image)
    return _curve(blur_image(image, blur_sigma), image, saliency, predict_fn, class_idx, steps, batch_size)


def insertion_auc(
    image, saliency, predict_fn: PredictFn, class_idx: int, steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH, blur_sigma: float | None = None,
) -> float:
    """Insertion AUC in [0, 1] (RISE): higher is better.

    Starts from the blurred image (RISE: a zero start would be far out of
    distribution and every curve would jump at the end) and copies the
    original's pixels back, most salient first.
    """
    return auc(insertion_curve(image, saliency, predict_fn, class_idx, steps, batch_size, blur_sigma))


def explanation_images(images, maps) -> np.ndarray:
    """Grad-CAM++'s "explanation map": image * upsampled map.

    images: float32 (N, h, w, C); maps: (N, h', w') in [0, 1].
    Returns float32 (N, h, w, C).
    """
    images = np.asarray(images, np.float32)
    maps = np.asarray(maps, np.float32)
    if images.ndim != 4 or maps.ndim != 3 or len(images) != len(maps):
        raise ValueError(
            f"expected (N, h, w, C) images and (N, h', w') maps, got {images.shape}, {maps.shape}"
        )
    h, w = images.shape[1:3]
    up = np.stack([np.clip(resize_map(m, (h, w)), 0.0, 1.0) for m in maps])
    return images * up[..., None]


def average_drop_and_increase(
    images, maps, predict_fn: PredictFn, classes: Sequence[int], batch_size: int = DEFAULT_BATCH,
) -> tuple[float, float]:
    """Average Drop % and Increase in Confidence % (Grad-CAM++ paper, section 6.1).

    images: float32 (N, h, w, C) model inputs; maps: (N, h', w') in [0, 1];
    classes: N class indices. With Y the probability on the image and O the
    probability on :func:`explanation_images`:

        Average Drop = 100 / N * sum max(0, Y - O) / Y        (lower is better)
        Increase     = 100 / N * sum [O > Y]                  (higher is better)

    Returns (average_drop, increase), floats in [0, 100].
    """
    images = np.asarray(images, np.float32)
    classes = np.asarray(classes, np.int64).reshape(-1)
    if len(classes) != len(images):
        raise ValueError(f"{len(classes)} classes for {len(images)} images")
    rows = np.arange(len(images))
    y = predict_batched(predict_fn, images, batch_size)[rows, classes]
    o = predict_batched(predict_fn, explanation_images(images, maps), batch_size)[rows, classes]
    # Y = 0 would divide by zero; such a sample cannot drop, max(0, -O) = 0.
    drop = np.maximum(0.0, y - o) / np.maximum(y, 1e-12)
    return float(100.0 * drop.mean()), float(100.0 * (o > y).mean())
