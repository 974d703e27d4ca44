"""Does the decision need the red region? Remove it, run the model again, compare with a random region.

The map's top region is the smallest set of pixels holding half of the
map's mass (:data:`MASS_SHARE`), capped at :data:`MAX_SHARE` of the image.
It is replaced by the blurred image (:func:`explain.perturb.blur_image`, the
fill the faithfulness audit uses), and so is, as a yardstick, a region of
the same shape and area moved to another place inside the head. Both go
through the model in one batch: one extra forward pass per request.
"""

from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

from ..overlay import upsample
from ..perturb import blur_image

#: The region holds this share of the map's total mass...
MASS_SHARE = 0.5
#: ...but never more than this share of the image's pixels.
MAX_SHARE = 0.2
#: The random region must lie this much inside the head and overlap the top region at most 1 - this.
INSIDE_HEAD, APART = 0.9, 0.9
#: Random placements tried for the yardstick (deterministic: seeded per image).
TRIES = 64


def top_region(heatmap: np.ndarray) -> np.ndarray:
    """(h, w) float map (higher = more important) -> bool (h, w) mask of its top region.

    Ties are broken in raster order (stable sort), so the mask is reproducible.
    An all-zero map gives an empty mask.
    """
    flat = np.clip(np.asarray(heatmap, np.float64).reshape(-1), 0.0, None)
    total = flat.sum()
    mask = np.zeros(flat.shape, bool)
    if total <= 0:
        return mask.reshape(np.shape(heatmap))
    order = np.argsort(-flat, kind="stable")
    count = int(np.searchsorted(np.cumsum(flat[order]), MASS_SHARE * total)) + 1
    mask[order[:min(count, int(MAX_SHARE * flat.size))]] = True
    return mask.reshape(np.shape(heatmap))


def head_mask(image: np.ndarray) -> np.ndarray:
    """float (h, w, C) model input -> bool (h, w): the bright foreground (Otsu on the smoothed grey).

    Any normalisation works: the grey image is rescaled to its own range first.
    A flat image, or a foreground smaller than a tenth of the image, gives the whole image.
    """
    grey = np.asarray(image, np.float32).mean(axis=-1)
    span = float(grey.max() - grey.min())
    if span <= 1e-6:
        return np.ones(grey.shape, bool)
    levels = np.rint(255 * (grey - grey.min()) / span).astype(np.uint8)
    levels = cv2.GaussianBlur(levels, (0, 0), 2.0)
    _, fore = cv2.threshold(levels, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fore = fore.astype(bool)
    return fore if fore.mean() >= 0.1 else np.ones(grey.shape, bool)


def random_region(mask: np.ndarray, head: np.ndarray, seed: int = 0) -> np.ndarray:
    """The same region (bool (h, w)) moved by a random shift to lie inside ``head``, away from itself.

    Shifts wrap around the borders, so the area is exactly the same. The first
    of :data:`TRIES` seeded shifts with >= 90 % inside the head and <= 10 %
    overlap wins; if none does, the best of them (inside share minus overlap).
    """
    area = max(int(mask.sum()), 1)
    rng = np.random.default_rng(seed)
    h, w = mask.shape
    best, best_score = mask, -np.inf
    for dy, dx in zip(rng.integers(0, h, TRIES), rng.integers(0, w, TRIES)):
        moved = np.roll(mask, (int(dy), int(dx)), axis=(0, 1))
        inside = (moved & head).sum() / area
        overlap = (moved & mask).sum() / area
        if inside >= INSIDE_HEAD and overlap <= 1 - APART:
            return moved
        if inside - overlap > best_score:
            best, best_score = moved, inside - overlap
    return best


def _removed(image: np.ndarray, fill: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask[..., None], fill, image).astype(np.float32)


def region_checks(predict: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray, cams: np.ndarray,
                  classes: Sequence[int], probs: np.ndarray, empty: Sequence[bool],
                  labels: Sequence[str]) -> list[dict]:
    """One result per image, from one call of ``predict`` on all the altered images.

    predict: float32 (N, h, w, C) -> (N, K) probabilities (e.g. ``CamEngine.predict``).
    inputs: float32 (B, h, w, C) model inputs; cams: (B, h', w') maps in [0, 1];
    classes: the class each map explains; probs: (B, K) probabilities before.
    Returns dicts with ``p_before``, ``p_after``, ``class_after``,
    ``p_after_random``, ``class_after_random``, ``removed_share``; for an empty
    map the ``after`` fields are None and ``note`` says there is no region to test.
    """
    results, altered, tested = [], [], []
    for i, x in enumerate(inputs):
        k = int(classes[i])
        result = {"p_before": round(float(probs[i][k]), 4), "p_after": None, "class_after": None,
                  "p_after_random": None, "class_after_random": None, "removed_share": 0.0}
        mask = top_region(upsample(cams[i], x.shape[:2])) if not empty[i] else None
        if mask is None or not mask.any():
            result["note"] = "empty map: no region to test"
        else:
            fill = blur_image(x)
            altered += [_removed(x, fill, mask), _removed(x, fill, random_region(mask, head_mask(x)))]
            result["removed_share"] = round(float(mask.mean()), 4)
            tested.append(i)
        results.append(result)
    if tested:
        after = np.asarray(predict(np.stack(altered)))
        for j, i in enumerate(tested):
            k = int(classes[i])
            real, rand = after[2 * j], after[2 * j + 1]
            results[i].update(p_after=round(float(real[k]), 4), class_after=labels[int(np.argmax(real))],
                              p_after_random=round(float(rand[k]), 4),
                              class_after_random=labels[int(np.argmax(rand))])
    return results


def region_sentence(result: dict, explained: str, predicted: str) -> str:
    """One plain sentence for the page: what removing the region did, against the random yardstick."""
    if not result or result.get("p_after") is None:
        return "The map is empty: there is no highlighted region to test."
    after = result["class_after"]
    sentence = (f"Without the highlighted region: p({explained}) {result['p_before']:.2f} -> "
                f"{result['p_after']:.2f}, {'still ' + after if after == explained else 'now ' + after}")
    if explained != predicted:
        sentence += "."
    elif after != explained:
        sentence += ": the highlighted region carries the decision."
    else:
        sentence += ": the decision also rests on the rest of the slice."
    sentence += f" Without a random region of the same size inside the head: {result['p_after_random']:.2f}"
    if result.get("class_after_random") not in (None, explained) and explained == predicted:
        sentence += f", now {result['class_after_random']}: the model reacts to any removal"
    return sentence + "."
