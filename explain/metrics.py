"""Faithfulness and plausibility metrics for heatmaps (plain numpy + OpenCV).

Conventions shared by every function:

* ``image``: float32 (h, w, C), a *model input* (already preprocessed). Any
  "removed" value (zeros, the masked part of a product) is therefore 0 in the
  model's input space: black for [0, 1] inputs, mid-grey for [-1, 1] ones.
* ``saliency`` / ``cam``: float (h', w'), any resolution; it is resized
  bilinearly to the image size where the metric needs it. Higher = more
  important.
* ``predict_fn(batch float32 (N, h, w, C)) -> probs (N, K)``: a batched model
  call, e.g. ``CamEngine.predict``. The metrics call it with at most
  ``batch_size`` images at a time.

Faithfulness (does the model's score follow the map?): :func:`deletion_auc`,
:func:`insertion_auc` (Petsiuk et al., RISE, 2018) and
:func:`average_drop_and_increase` (Chattopadhyay et al., Grad-CAM++, 2018),
:func:`road_scores` (Rong et al., ROAD, 2022).
Plausibility (is the map where a human expects?): :func:`head_mask`,
:func:`energy_inside`, :func:`head_energy`. Baselines a real map should beat:
:func:`random_map`, :func:`center_gaussian_map`. Sanity check (Adebayo et al.,
2018): :func:`spearman` between maps of the trained model and of
:func:`randomize_layers` clones.
"""

from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

PredictFn = Callable[[np.ndarray], np.ndarray]

#: Steps of the deletion/insertion curves (RISE uses one step per 224 px row).
DEFAULT_STEPS = 32
DEFAULT_BATCH = 32


# -- helpers -----------------------------------------------------------------
def resize_map(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h', w') map -> float32 (h, w) by bilinear resize; ``size`` is (h, w)."""
    saliency = np.asarray(saliency, np.float32)
    if saliency.ndim != 2:
        raise ValueError(f"expected a 2-D map, got shape {saliency.shape}")
    if saliency.shape == tuple(size):
        return saliency.copy()
    return cv2.resize(saliency, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)


def blur_image(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """float32 (h, w, C) -> Gaussian-blurred copy, same shape and dtype.

    sigma: in pixels; default max(h, w) / 32 (about 9 px at 299 px). RISE's
    11 px, sigma 5 kernel at 224 px is milder; a brain MRI keeps its tumour
    visible through that, so we blur harder.
    """
    image = _as_image(image)
    if sigma is None:
        sigma = max(image.shape[:2]) / 32.0
    sigma = max(float(sigma), 0.5)
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return blurred.reshape(image.shape).astype(np.float32)


def _as_image(image) -> np.ndarray:
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"expected an image (h, w, C), got shape {image.shape}")
    return image


def _predict_batched(predict_fn: PredictFn, images: np.ndarray, batch_size: int) -> np.ndarray:
    out = [
        np.asarray(predict_fn(images[i : i + batch_size]), np.float64)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out, axis=0)


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
    probs = _predict_batched(predict_fn, images, batch_size)
    return probs[:, int(class_idx)]


def auc(scores: np.ndarray) -> float:
    """Trapezoid area under ``scores`` (n,) sampled evenly on [0, 1]; in [0, 1] for scores in [0, 1]."""
    scores = np.asarray(scores, np.float64)
    if scores.size < 2:
        raise ValueError("need at least two points")
    return float(np.trapezoid(scores, dx=1.0 / (scores.size - 1)))


# -- faithfulness --------------------------------------------------------------
def deletion_curve(
    image, saliency, predict_fn: PredictFn, class_idx: int, steps: int = DEFAULT_STEPS,
    substrate: str = "zeros", batch_size: int = DEFAULT_BATCH, blur_sigma: float | None = None,
) -> np.ndarray:
    """Class probability (steps + 1,) float64 as the most salient pixels are removed.

    substrate: what a removed pixel becomes: "zeros" (RISE's deletion; 0 in
        the model's input space) or "blur" (the blurred image, see
        :func:`blur_image`; stays closer to the training distribution).
    """
    image = _as_image(image)
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
    image = _as_image(image)
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
    y = _predict_batched(predict_fn, images, batch_size)[rows, classes]
    o = _predict_batched(predict_fn, explanation_images(images, maps), batch_size)[rows, classes]
    # Y = 0 would divide by zero; such a sample cannot drop, max(0, -O) = 0.
    drop = np.maximum(0.0, y - o) / np.maximum(y, 1e-12)
    return float(100.0 * drop.mean()), float(100.0 * (o > y).mean())


# -- ROAD ------------------------------------------------------------------------
#: Neighbour weights of ROAD's linear imputation: 1/6 for the 4 direct, 1/12 for
#: the 4 diagonal neighbours.
_IMPUTE_KERNEL = np.array([[1, 2, 1], [2, 0, 2], [1, 2, 1]], np.float32) / 12.0
ROAD_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _neighbour_sum(values: np.ndarray) -> np.ndarray:
    # Zero padding: a pixel on the border simply has fewer neighbours.
    out = cv2.filter2D(values, -1, _IMPUTE_KERNEL, borderType=cv2.BORDER_CONSTANT)
    return out.reshape(values.shape)


def linear_impute(image, removed, tol: float = 1e-5, max_iter: int = 2000) -> np.ndarray:
    """Fill the ``removed`` pixels of ``image`` from their neighbours (ROAD's linear imputation).

    image: float32 (h, w, C); removed: bool (h, w), True = value unknown.
    Each removed pixel becomes the weighted mean of its 8 neighbours (1/6
    direct, 1/12 diagonal), known or imputed, which is one sparse symmetric
    positive-definite system; it is solved by conjugate gradients on all
    channels at once, with no matrix built. A removed region that touches no
    known pixel (everything removed) has no information and becomes the
    image mean. Returns float32 (h, w, C); known pixels are untouched.
    """
    image = _as_image(image)
    removed = np.asarray(removed, bool)
    if removed.shape != image.shape[:2]:
        raise ValueError(f"mask {removed.shape} does not match image {image.shape[:2]}")
    out = image.astype(np.float64)
    if not removed.any():
        return image.copy()
    if removed.all():
        return np.full_like(image, float(image.mean()))
    hole = removed[..., None].astype(np.float64)
    known = out * (1.0 - hole)
    degree = _neighbour_sum(np.ones(removed.shape, np.float64))[..., None]

    def apply(v):  # A v for v living on the removed pixels
        return hole * (degree * v - _neighbour_sum(v * hole))

    b = hole * _neighbour_sum(known)
    # Start from the mean of the known neighbours (cheap and close).
    weight = _neighbour_sum(1.0 - hole[..., 0])[..., None]
    x = hole * np.where(weight > 0, b / np.maximum(weight, 1e-12), out[~removed].mean())
    r = b - apply(x)
    p = r.copy()
    rs = float((r * r).sum())
    stop = tol * tol * max(float((b * b).sum()), 1e-30)
    for _ in range(max_iter):
        if rs <= stop:
            break
        ap = apply(p)
        alpha = rs / max(float((p * ap).sum()), 1e-300)
        x += alpha * p
        r -= alpha * ap
        rs_new = float((r * r).sum())
        p = r + (rs_new / rs) * p
        rs = rs_new
    return (known + hole * x).astype(np.float32)


def noisy_linear_impute(image, removed, noise: float = 0.01, seed: int | np.random.Generator | None = 0,
                        tol: float = 1e-3):
    """:func:`linear_impute` plus Gaussian noise on the imputed pixels (ROAD's NoisyLinearImputer).

    noise: standard deviation as a fraction of the image's value range, so
    the same setting fits [0, 1] and [-1, 1] inputs. The noise keeps the
    model from reading the removal pattern off perfectly smooth fills.
    tol: the solver's relative residual; at 1e-3 its error (under 1 % of the
    range, measured on 128 px maps) is below the noise and it runs twice as fast as at 1e-5.
    """
    image = _as_image(image)
    filled = linear_impute(image, removed, tol=tol)
    rng = np.random.default_rng(seed)
    scale = noise * float(image.max() - image.min())
    jitter = rng.normal(0.0, scale, filled.shape).astype(np.float32) if scale > 0 else 0.0
    return np.where(np.asarray(removed, bool)[..., None], filled + jitter, filled).astype(np.float32)


def road_curves(
    image, saliency, predict_fn: PredictFn, class_idx: int, fractions: Sequence[float] = ROAD_FRACTIONS,
    noise: float = 0.01, seed: int = 0, batch_size: int = DEFAULT_BATCH,
) -> dict[str, np.ndarray]:
    """ROAD (Rong et al., 2022): class probability after removing a fraction of pixels and imputing them.

    Returns {"morf": (F,), "lerf": (F,)} float64: probabilities with the most
    (MoRF) or least (LeRF) salient ``fractions`` of pixels imputed by
    :func:`noisy_linear_impute`. Imputing from the neighbours instead of
    blacking out keeps the images close to the training distribution, so a
    drop measures lost evidence rather than the shock of a black hole; ROAD
    also showed that the removal shape leaks class information through
    plain masks, which the noisy fill avoids.
    """
    image = _as_image(image)
    h, w = image.shape[:2]
    order = _pixel_order(saliency, (h, w))
    rank = np.empty(h * w, np.int64)
    rank[order] = np.arange(h * w)
    images = []
    for kind in ("morf", "lerf"):
        for i, frac in enumerate(fractions):
            k = int(round(float(frac) * h * w))
            removed = rank < k if kind == "morf" else rank >= h * w - k
            images.append(noisy_linear_impute(image, removed.reshape(h, w), noise, seed + i))
    probs = _predict_batched(predict_fn, np.stack(images), batch_size)[:, int(class_idx)]
    n = len(fractions)
    return {"morf": probs[:n], "lerf": probs[n:]}


def road_scores(image, saliency, predict_fn: PredictFn, class_idx: int, **kwargs) -> dict[str, float]:
    """Means of :func:`road_curves`: "road_morf" (lower is better) and "road_lerf" (higher is better)."""
    curves = road_curves(image, saliency, predict_fn, class_idx, **kwargs)
    return {"road_morf": float(curves["morf"].mean()), "road_lerf": float(curves["lerf"].mean())}


# -- plausibility ----------------------------------------------------------------
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
    image = _as_image(image)
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
    image = _as_image(image)
    return energy_inside(saliency, head_mask(image, threshold))


# -- baselines -------------------------------------------------------------------
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


# -- sanity checks -----------------------------------------------------------------
def rankdata(values) -> np.ndarray:
    """Ranks 1..n (float64) of a 1-D array, ties given their average rank (scipy's "average")."""
    values = np.asarray(values).reshape(-1)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    # Start index of each run of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    average = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1 .. ends
    ranks = np.empty(values.size, np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation in [-1, 1] between two maps of the same shape.

    Ties get average ranks. Returns NaN when either map is constant (the
    correlation is undefined; use ``np.nanmean`` to aggregate).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    ra = rankdata(a)
    rb = rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    if denom == 0.0:
        return float("nan")
    return float(np.clip((ra * rb).sum() / denom, -1.0, 1.0))


SANITY_PASS_BELOW = 0.5


def cascade_steps(model, max_steps: int = 8) -> list[tuple[str, list[str]]]:
    """Cumulative layer groups for cascading randomisation, output first.

    Weighted layers (nested models expanded) are taken from the output
    backwards and grouped into runs that share the name prefix before the
    first ``_`` (``block14_sepconv2``, ``block14_sepconv1_bn`` -> ``block14``),
    so a step resets one block as Adebayo et al. did. With more than
    ``max_steps`` groups, evenly spaced cuts are kept; the first step is
    always the output layer's group and the last always resets every layer.

    Returns [(group name, every layer path reset up to and including it)].
    """
    import keras

    from .layers import walk

    weighted = [p for p in walk(model) if p.layer.weights and not isinstance(p.layer, keras.Model)]
    groups: list[tuple[str, list[str]]] = []
    for path in reversed(weighted):
        prefix = path.layer.name.split("_")[0]
        if groups and groups[-1][0] == prefix:
            groups[-1][1].append(path.name)
        else:
            groups.append((prefix, [path.name]))
    if not groups:
        return []
    if len(groups) > max_steps >= 2:
        keep = sorted({round(i * (len(groups) - 1) / (max_steps - 1)) for i in range(max_steps)})
    else:
        keep = range(len(groups))
    steps, reset = [], []
    for i, (name, layers) in enumerate(groups):
        reset = reset + layers
        if i in keep:
            steps.append((name, list(reset)))
    return steps


def sanity_passes(correlations: Sequence[float], below: float = SANITY_PASS_BELOW) -> bool:
    """Cascading-randomisation verdict for one method.

    correlations: mean Spearman(trained map, randomised map) per cascade step,
    output layer first, the whole network last. The original-vs-original
    value is 1; a method passes when the fully randomised model's maps keep
    less than ``below`` of that rank agreement. Guided Backprop, the method
    Adebayo et al. caught, stays near 1 all the way down; a method that only
    reacts once the early layers are reset shows it in the first steps,
    which the audit reports beside the verdict.
    """
    values = [float(v) for v in correlations]
    if not values or any(not np.isfinite(v) for v in values):
        return False
    return values[-1] < below


def randomize_layers(model, layer_names: Sequence[str], seed: int = 0):
    """A clone of ``model`` with the weights of ``layer_names`` re-initialised.

    For the cascading randomisation test, call it with the top k layer names
    for k = 1, 2, ...: a faithful method's maps must change (low
    :func:`spearman` with the trained model's maps) as more layers are reset.

    model: a Functional or Sequential Keras model; it is never modified: the
        clone is built with ``keras.models.clone_model`` (nested models are
        rebuilt too, so no variable is shared with the original) and gets a
        copy of the weights before the named layers are reset.
    layer_names: bare layer names (found at any depth, must be unique) or
        paths such as ``"xception/block14_sepconv2"``.
    seed: makes the re-initialisation reproducible.

    Every variable of a named layer is redrawn from the layer's own
    initializer for it (``kernel_initializer`` for ``kernel``,
    ``depthwise_initializer`` for ``depthwise_kernel``, ...), so biases and
    BatchNorm statistics go back to their defaults; a variable with no
    matching initializer gets Glorot-uniform (2-D and up) or zeros. Layers
    without weights are left as they are.
    """
    import keras

    from .layers import walk

    # recursive=True: nested models must be rebuilt, not reused, or resetting a
    # layer of a transfer-learning base would reset the original's too.
    clone = keras.models.clone_model(model, recursive=True)
    clone.set_weights(model.get_weights())
    paths = list(walk(clone))
    for i, name in enumerate(layer_names):
        matches = [p for p in paths if p.name == name or p.layer.name == name]
        if not matches:
            raise ValueError(f"No layer named {name!r} in model {model.name!r}")
        if len(matches) > 1:
            raise ValueError(f"Layer name {name!r} is ambiguous: {', '.join(p.name for p in matches)}")
        layer = matches[0].layer
        for j, variable in enumerate(layer.weights):
            init = _initializer_for(layer, variable, seed=seed * 100003 + i * 1009 + j)
            variable.assign(init(tuple(variable.shape), dtype=variable.dtype))
    return clone


def _initializer_for(layer, variable, seed: int):
    import keras

    short = variable.name.split("/")[-1].split(":")[0]
    candidates = [f"{short}_initializer"]
    if short.endswith("_kernel"):
        # SeparableConv2D: depthwise_kernel -> depthwise_initializer.
        candidates.append(short[: -len("_kernel")] + "_initializer")
    init = None
    for attr in candidates:
        if getattr(layer, attr, None) is not None:
            init = keras.initializers.get(getattr(layer, attr))
            break
    if init is None:
        init = keras.initializers.GlorotUniform() if len(variable.shape) >= 2 else keras.initializers.Zeros()
    config = init.get_config()
    if "seed" in config:
        # A fresh seeded copy: the layer's own initializer object may be
        # unseeded (different draws each run) or shared between variables.
        config["seed"] = seed
        init = init.__class__.from_config(config)
    return init


def bootstrap_mean(values, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of ``values`` with a percentile-bootstrap interval.

    values: 1-D numbers (NaN ignored). Returns {"mean", "low", "high", "n"} as floats/int;
    with n_boot < 1 or fewer than 2 values the interval collapses to the mean.
    """
    data = np.asarray(values, np.float64)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    mean = float(data.mean())
    if n_boot < 1 or data.size < 2:
        return {"mean": mean, "low": mean, "high": mean, "n": int(data.size)}
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_boot, data.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return {"mean": mean, "low": float(low), "high": float(high), "n": int(data.size)}
