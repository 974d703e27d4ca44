"""Does a heatmap land on the lesion? Plain metrics on a map and a lesion mask, and baselines.

Every function takes ``heatmap``: (H, W) float in [0, 1] at the ORIGINAL
image's resolution (as ``Explanation.heatmap``), and ``mask``: (H, W) bool,
True on the lesion (``explain.evaluation.lesions.box_mask``).
"""

from __future__ import annotations

import cv2
import numpy as np

from .faithfulness import blur_image
from .plausibility import center_gaussian_map
from .base import PredictFn

TOLERANCES_PX = (0, 8)
TOP_FRACTIONS = (0.05, 0.10, 0.20)
#: Blur of the "bright blob" baseline, as a fraction of the image's shorter side.
BLOB_SIGMA_FRAC = 0.04
#: Model-level scores of :func:`lesion_reliance`.
RELIANCE_METRICS = ("p_true", "p_true_lesion_blurred", "lesion_drop", "leaves_class")
METRICS = ("pointing_0px", "pointing_8px", "box_energy", "box_energy_ratio", "iou_top5", "iou_top10", "iou_top20")


def pointing_game(heatmap: np.ndarray, mask: np.ndarray, tolerance_px: int = 0) -> float:
    """1.0 if the maximum of ``heatmap`` lies inside ``mask`` grown by ``tolerance_px``, else 0.0.

    With ties, the share of the maximal pixels that lie inside: the chance
    that a random choice among them hits. A uniform map thus scores the
    (grown) mask's share of the image, not a free 1.0.
    """
    grown = mask
    if tolerance_px > 0:
        size = 2 * tolerance_px + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        grown = cv2.dilate(mask.astype(np.uint8), kernel) > 0
    peaks = heatmap >= heatmap.max()
    return float(np.count_nonzero(peaks & grown) / np.count_nonzero(peaks))


def box_energy(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the heatmap's mass inside ``mask``, in [0, 1] (0 for an all-zero map)."""
    total = float(heatmap.sum())
    return float(heatmap[mask].sum()) / total if total > 0 else 0.0


def box_energy_ratio(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """:func:`box_energy` over the mask's share of the image: 1.0 = no better than a uniform map."""
    share = float(mask.mean())
    return box_energy(heatmap, mask) / share if share > 0 else float("nan")


def top_iou(heatmap: np.ndarray, mask: np.ndarray, fraction: float) -> float:
    """IoU of the ``fraction`` highest pixels of the map (ties by stable rank) with ``mask``."""
    k = max(1, int(round(fraction * heatmap.size)))
    order = np.argsort(-heatmap.ravel(), kind="stable")[:k]
    top = np.zeros(heatmap.size, bool)
    top[order] = True
    top = top.reshape(heatmap.shape)
    union = np.logical_or(top, mask).sum()
    return float(np.logical_and(top, mask).sum() / union) if union else 0.0


def lesion_scores(heatmap: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Every lesion metric of one map, under the names of :data:`METRICS`."""
    heatmap = np.asarray(heatmap, np.float32)
    scores = {f"pointing_{t}px": pointing_game(heatmap, mask, t) for t in TOLERANCES_PX}
    scores["box_energy"] = box_energy(heatmap, mask)
    scores["box_energy_ratio"] = box_energy_ratio(heatmap, mask)
    scores.update({f"iou_top{round(f * 100)}": top_iou(heatmap, mask, f) for f in TOP_FRACTIONS})
    return scores


def uniform_map(shape: tuple[int, int]) -> np.ndarray:
    return np.ones(shape, np.float32)


def centre_map(shape: tuple[int, int]) -> np.ndarray:
    return center_gaussian_map(shape)


def bright_blob_map(rgb: np.ndarray) -> np.ndarray:
    """A naive "bright blob" detector: the grey image Gaussian-blurred, scaled to [0, 1].

    Peaks at the brightest smoothed region (enhancing tumours are often
    bright on T1 with contrast; so are fat and the skull's marrow). rgb:
    (H, W, 3) uint8. Returns (H, W) float32.
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    sigma = BLOB_SIGMA_FRAC * min(grey.shape)
    blurred = cv2.GaussianBlur(grey, (0, 0), sigma)
    span = float(blurred.max() - blurred.min())
    return (blurred - blurred.min()) / span if span > 0 else np.zeros_like(blurred)


def baseline_maps(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The three baselines for one image, at its resolution."""
    shape = rgb.shape[:2]
    return {"uniform": uniform_map(shape), "centre": centre_map(shape), "bright blob": bright_blob_map(rgb)}


def lesion_reliance(x: np.ndarray, mask: np.ndarray, predict_fn: PredictFn, cls: int) -> dict[str, float]:
    """Does the model's score need the lesion? Class ``cls``'s probability on the model input
    ``x`` (h, w, C) float32 and on ``x`` with the lesion replaced by the Gaussian blur that
    starts the insertion curve (:func:`explain.metrics.faithfulness.blur_image`; the lesion-guided
    training removes lesions by inpainting, a different fill); ``mask`` (H, W) bool at the
    original image's resolution, mapped to the input by area (edge pixels blend).

    Returns ``p_true``, ``p_true_lesion_blurred``, ``lesion_drop`` (their difference, in
    [-1, 1]) and ``leaves_class`` (1.0 if the blurred image is no longer predicted ``cls``).
    A model whose evidence is the lesion loses most of its confidence; one that reads
    the class from slice context keeps it.
    """
    x = np.asarray(x, np.float32)
    h, w = x.shape[:2]
    cover = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)[..., None]
    blurred = x * (1.0 - cover) + blur_image(x) * cover
    probs = np.asarray(predict_fn(np.stack([x, blurred])), np.float64)
    return {"p_true": float(probs[0, cls]), "p_true_lesion_blurred": float(probs[1, cls]),
            "lesion_drop": float(probs[0, cls] - probs[1, cls]),
            "leaves_class": float(np.argmax(probs[1]) != cls)}
