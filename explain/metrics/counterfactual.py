"""Counterfactual images: the lesion removed, or a same-size region elsewhere in the head removed.

A heatmap on the tumour only matters if the class comes from the tumour. Removing the
lesion and predicting again asks that directly; removing a region of the same size
elsewhere in the head (the *control*) tells a model that reads the lesion from one that
has merely learnt "a smoothed patch means no tumour".

Removal methods (every one fills ``region`` from the image around it):

* ``inpaint_telea`` / ``inpaint_ns``: OpenCV inpainting (Telea 2004; Navier-Stokes,
  Bertalmio 2001), radius 3 px;
* ``blur``: the region replaced by a strong Gaussian blur of the image
  (sigma = max(h, w) / 16, about 32 px at 512 px);
* ``ring_fill``: the region's mean ring intensity plus Gaussian noise of the ring's spread
  (needs a generator).

The lesion-guided training (``training.lesion_finetune``) removes with ``TRAIN_REMOVALS``; the
audit measures with ``AUDIT_REMOVALS``, which training never uses.

Images are float32 (h, w, C) in [0, 255] with identical channels (grey replicated), as
the training pipeline and the app's decoded images hold them; regions are (h, w) bool.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from ..perturb import blur_image

TRAIN_REMOVALS = ("inpaint_telea", "ring_fill")
AUDIT_REMOVALS = ("inpaint_ns", "blur")
REMOVALS = TRAIN_REMOVALS + AUDIT_REMOVALS
#: Blur sigma of ``blur`` as a fraction of the image's longer side.
BLUR_SIGMA_FRAC = 1.0 / 16.0
INPAINT_RADIUS = 3
#: Width of the ring around the region that ``ring_fill`` reads, in px.
RING_PX = 4


def grow(region: np.ndarray, px: int) -> np.ndarray:
    """(h, w) bool grown by ``px`` pixels (a square dilation); ``px`` 0 returns a copy."""
    region = np.asarray(region, bool)
    if px <= 0:
        return region.copy()
    return cv2.dilate(region.astype(np.uint8), np.ones((2 * px + 1,) * 2, np.uint8)) > 0


def remove_region(image: np.ndarray, region: np.ndarray, method: str,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """``image`` (h, w, C) float32 in [0, 255] with ``region`` (h, w) bool filled by ``method``
    (one of :data:`REMOVALS`) from its surroundings; same shape and dtype, pixels outside the
    region unchanged. ``ring_fill`` draws its noise from ``rng``."""
    image = np.asarray(image, np.float32)
    grey = np.clip(image[..., 0], 0, 255)
    region = np.asarray(region, bool)
    if not region.any():
        return image.copy()
    if method in ("inpaint_telea", "inpaint_ns"):
        flag = cv2.INPAINT_TELEA if method == "inpaint_telea" else cv2.INPAINT_NS
        filled = cv2.inpaint(grey.astype(np.uint8), region.astype(np.uint8), INPAINT_RADIUS, flag)
        filled = filled.astype(np.float32)
    elif method == "blur":
        filled = blur_image(grey, max(grey.shape) * BLUR_SIGMA_FRAC)[..., 0]
    elif method == "ring_fill":
        if rng is None:
            raise ValueError("ring_fill needs a random generator")
        ring = grow(region, RING_PX) & ~region
        values = grey[ring] if ring.any() else grey[region]
        filled = rng.normal(values.mean(), values.std(), grey.shape).astype(np.float32)
    else:
        raise ValueError(f"unknown removal {method!r}; one of {', '.join(REMOVALS)}")
    out = np.where(region, np.clip(filled, 0, 255), grey).astype(np.float32)
    return np.repeat(out[..., None], image.shape[-1], axis=-1)


def bounding_box(region: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, x0, y1, x1), half-open, of the True pixels of ``region``; None if there are none."""
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return None
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


def control_region(lesion: np.ndarray, head: np.ndarray, rng: np.random.Generator,
                   margin: int = 2) -> np.ndarray | None:
    """A rectangle of the lesion's bounding-box size that lies wholly inside ``head`` and
    does not touch ``lesion`` grown by ``margin`` px, at a uniformly drawn position;
    (h, w) bool, or None where no such position exists. ``lesion``, ``head``: (h, w) bool."""
    box = bounding_box(lesion)
    if box is None:
        return None
    bh, bw = box[2] - box[0], box[3] - box[1]
    h, w = lesion.shape
    if bh >= h or bw >= w:
        return None
    # Sums over every bh x bw window from integral images: inside the head means the
    # window's head count is its area; away from the lesion means its lesion count is 0.
    head_sum = _window_sums(np.asarray(head, bool), bh, bw)
    near_sum = _window_sums(grow(lesion, margin), bh, bw)
    ys, xs = np.nonzero((head_sum == bh * bw) & (near_sum == 0))
    if ys.size == 0:
        return None
    k = int(rng.integers(ys.size))
    out = np.zeros_like(lesion, dtype=bool)
    out[ys[k]:ys[k] + bh, xs[k]:xs[k] + bw] = True
    return out


def _window_sums(mask: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """(h - bh + 1, w - bw + 1) int: the count of True pixels in each bh x bw window."""
    table = cv2.integral(mask.astype(np.uint8))  # (h + 1, w + 1), int32
    return table[bh:, bw:] - table[:-bh, bw:] - table[bh:, :-bw] + table[:-bh, :-bw]


def key_rng(key: str) -> np.random.Generator:
    """A generator seeded by the SHA-256 of ``key``: the same control region for the same image
    on every run, independent of the order images are visited in."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))


#: Growth of the lesion box before the audit removes it, in original-image px.
AUDIT_GROW_PX = 4
#: Per-image scores of :func:`lesion_counterfactuals`, for each method of AUDIT_REMOVALS.
COUNTERFACTUAL_METRICS = tuple(f"{name}_{m}" for m in AUDIT_REMOVALS
                               for name in ("kept", "no_tumour", "p_true", "control_kept"))


def lesion_counterfactuals(rgb: np.ndarray, lesion: np.ndarray, head: np.ndarray, to_input, predict_fn,
                           cls: int, no_tumour: int, key: str) -> dict[str, float]:
    """Predictions with the lesion removed and with a control region removed, by each
    method of :data:`AUDIT_REMOVALS` (training never uses them).

    rgb (H, W, 3) uint8 original image; lesion, head (H, W) bool; ``to_input``: (H, W, 3)
    uint8 -> (h, w, C) float32 model input (the app's preprocessing); ``predict_fn``:
    (B, h, w, C) -> (B, K) probabilities; ``cls`` the true class, ``no_tumour`` the
    "no tumour" class index; ``key`` seeds the control position (:func:`key_rng`).

    Returns, per method m: ``kept_m`` / ``no_tumour_m`` (1.0 if the lesion-removed image is
    still predicted ``cls`` / is predicted "no tumour"), ``p_true_m`` (its probability of
    ``cls``) and ``control_kept_m`` (1.0 if the control-removed image keeps ``cls``; NaN
    where no head region of the lesion's size clears the lesion).
    """
    image = rgb.astype(np.float32)
    region = grow(lesion, AUDIT_GROW_PX)
    control = control_region(region, head, key_rng(key), margin=AUDIT_GROW_PX)
    batch = []
    for method in AUDIT_REMOVALS:
        batch.append(remove_region(image, region, method))
        if control is not None:
            batch.append(remove_region(image, control, method))
    probs = np.asarray(predict_fn(np.stack([to_input(np.round(b).astype(np.uint8)) for b in batch])), np.float64)
    out, row = {}, 0
    for method in AUDIT_REMOVALS:
        p = probs[row]
        row += 1
        out[f"kept_{method}"] = float(np.argmax(p) == cls)
        out[f"no_tumour_{method}"] = float(np.argmax(p) == no_tumour)
        out[f"p_true_{method}"] = float(p[cls])
        out[f"control_kept_{method}"] = float("nan")
        if control is not None:
            out[f"control_kept_{method}"] = float(np.argmax(probs[row]) == cls)
            row += 1
    return out
