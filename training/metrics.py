"""Evaluation summaries, calibration and bootstrap intervals.

Confusion counts and the scores read off them are :mod:`explain.metrics.classification`
(shared with the doctor); calibration bins are scikit-learn's
(:func:`sklearn.calibration.calibration_curve`) and the temperature search
scipy's (:func:`scipy.optimize.minimize_scalar`).

Conventions used throughout:

* ``y_true``: int (N,) class indices in ``0..K-1``.
* ``y_pred``: int (N,) predicted class indices.
* ``probs``: float (N, K) class probabilities, rows summing to 1.
* ``logits``: float (N, K) pre-softmax scores.
* ``cm``: int64 (K, K) confusion matrix, rows = true class, columns = predicted.

Undefined values follow the rule of :mod:`explain.metrics.classification` (recall nan
for a class with no true images, left out of the macro averages).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.calibration import calibration_curve

from explain.metrics.classification import accuracy, class_mean, confusion_matrix, per_class
from explain.metrics.stats import percentile_interval, resamples

#: Bins of the expected calibration error (Guo et al., 2017 use 15).
ECE_BINS = 15
#: Search range of the temperature.
TEMPERATURE_BOUNDS = (0.05, 20.0)
#: Final tolerance of the temperature search in log T (1e-8: T to 1e-6 %).
TEMPERATURE_TOL = 1e-8


# -- probabilities ------------------------------------------------------------
def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """float (N, K) logits -> float64 (N, K) log softmax(logits / T), stable for large logits."""
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """float (N, K) logits -> float64 (N, K) softmax(logits / T)."""
    return np.exp(log_softmax(logits, temperature))


def negative_log_likelihood(probs: np.ndarray, y_true: np.ndarray, eps: float = 1e-12) -> float:
    """float (N, K), int (N,) -> mean -log p[true class] in nats.

    ``eps`` keeps a confidently wrong float32 probability of exactly 0 finite;
    prefer :func:`nll_from_logits` when logits are at hand.
    """
    probs = np.asarray(probs, np.float64)
    y_true = np.asarray(y_true, np.int64)
    picked = probs[np.arange(len(y_true)), y_true]
    return float(-np.mean(np.log(np.maximum(picked, eps))))


def nll_from_logits(logits: np.ndarray, y_true: np.ndarray, temperature: float = 1.0) -> float:
    """float (N, K), int (N,) -> mean -log softmax(logits / T)[true class], exact for any logit size."""
    y_true = np.asarray(y_true, np.int64)
    return float(-np.mean(log_softmax(logits, temperature)[np.arange(len(y_true)), y_true]))


def reliability_bins(probs: np.ndarray, y_true: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Equal-width bins on the top-class probability.

    float (N, K), int (N,) -> dict of (n_bins,) arrays: ``lower``/``upper``
    edges (float64), ``count`` (int64), ``confidence`` (mean top probability)
    and ``accuracy`` (fraction correct), both float64 and nan in empty bins.
    Bins are right-closed, (lower, upper], with the first also holding 0.

    The means are :func:`sklearn.calibration.calibration_curve` (``strategy=
    "uniform"``) of "top class correct" against the top probability. Its
    binning is exactly this one: ``searchsorted`` of the value against the
    inner edges of the same ``linspace(0, 1, n_bins + 1)``, so a value equal
    to an edge goes to the bin below it, with no float rounding from
    ``confidence * n_bins``. It returns only the non-empty bins and not their
    counts, which the ECE weights need, so the counts come from that same
    ``searchsorted`` line here, and place its means in their bins.
    """
    probs = np.asarray(probs, np.float64)
    y_true = np.asarray(y_true, np.int64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    count = np.zeros(n_bins, np.int64)
    mean_conf, mean_acc = np.full(n_bins, np.nan), np.full(n_bins, np.nan)
    if len(y_true):  # calibration_curve refuses empty input
        # calibration_curve refuses values outside [0, 1]; a sum-to-one float
        # row can overshoot 1 by a rounding error (it belongs in the top bin).
        confidence = np.clip(probs.max(axis=1), 0.0, 1.0)
        correct = (probs.argmax(axis=1) == y_true).astype(np.int64)
        count = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=n_bins).astype(np.int64)
        accuracy, confidence_mean = calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform",
                                                      pos_label=1)
        used = count > 0
        if used.sum() != len(accuracy):  # only if scikit-learn changed its binning
            raise RuntimeError("calibration_curve's bins differ from reliability_bins' counts")
        mean_acc[used], mean_conf[used] = accuracy, confidence_mean
    return {"lower": edges[:-1], "upper": edges[1:], "count": count,
            "confidence": mean_conf, "accuracy": mean_acc}


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """float (N, K), int (N,) -> sum over bins of (bin share) * |accuracy - confidence|, in [0, 1]."""
    bins = reliability_bins(probs, y_true, n_bins)
    total = bins["count"].sum()
    if total == 0:
        return math.nan
    used = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][used] - bins["confidence"][used])
    return float(np.sum(bins["count"][used] / total * gaps))


# -- temperature scaling --------------------------------------------------------
def fit_temperature(logits: np.ndarray, y_true: np.ndarray, bounds=TEMPERATURE_BOUNDS,
                    tol: float = TEMPERATURE_TOL) -> float:
    """float (N, K) logits, int (N,) -> the T in ``bounds`` minimising NLL of softmax(logits / T).

    Bounded scalar minimisation on log T (:func:`scipy.optimize.minimize_scalar`,
    ``method="bounded"``: Brent's method, golden-section steps with parabolic
    interpolation). The local minimum it finds is the global one because the
    NLL is convex in 1/T (a log-sum-exp of functions linear in 1/T minus a
    linear term), hence unimodal in log T, which is a monotone function of 1/T.
    ``tol`` is the absolute tolerance (``xatol``) in log T.
    """
    logits = np.asarray(logits, np.float64)
    y_true = np.asarray(y_true, np.int64)
    if logits.ndim != 2 or len(logits) != len(y_true) or len(y_true) == 0:
        raise ValueError(f"need logits (N, K) and N labels, got {logits.shape} and {len(y_true)}")
    lo, hi = math.log(bounds[0]), math.log(bounds[1])

    def loss(log_t):
        return nll_from_logits(logits, y_true, math.exp(log_t))

    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": tol, "maxiter": 500})
    if not res.success:
        raise RuntimeError(f"temperature search did not converge: {res.message}")
    # The bounded method never evaluates the bounds themselves; compare them too so a
    # minimum on the boundary (e.g. logits carrying no information) is returned exactly.
    candidates = [(loss(lo), lo), (loss(hi), hi), (float(res.fun), float(res.x))]
    return float(math.exp(min(candidates)[1]))


# -- summaries ----------------------------------------------------------------
def scalar_metrics(y_true: np.ndarray, probs: np.ndarray, labels: list[str],
                   n_bins: int = ECE_BINS) -> dict[str, float]:
    """int (N,), float (N, K) -> the scalar metrics that get bootstrap intervals.

    Keys: ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``ece``, ``nll``
    and ``recall/<label>`` for every label.
    """
    probs = np.asarray(probs, np.float64)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    classes = per_class(cm)  # once: balanced_accuracy(cm) and macro_f1(cm) would each recompute it
    recall = classes["recall"]
    out = {
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": class_mean(recall),
        "macro_f1": class_mean(classes["f1"]),
        "ece": expected_calibration_error(probs, y_true, n_bins),
        "nll": negative_log_likelihood(probs, y_true),
    }
    out.update({f"recall/{label}": float(r) for label, r in zip(labels, recall)})
    return out


def bootstrap_intervals(y_true: np.ndarray, probs: np.ndarray, labels: list[str], n_boot: int = 1000,
                        seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap: resample the N images with replacement ``n_boot`` times.

    int (N,), float (N, K) -> {metric name: (low, high)} for every key of
    :func:`scalar_metrics`, the central ``level`` interval. Resamples in which
    a metric is undefined (a class drawn zero times) are ignored for that
    metric. Deterministic for a given ``seed``.
    """
    y_true = np.asarray(y_true, np.int64)
    probs = np.asarray(probs, np.float64)
    n = len(y_true)
    if n == 0 or n_boot < 1:
        raise ValueError("bootstrap needs at least one image and one resample")
    samples: dict[str, list[float]] = {}
    for idx in resamples(n, n_boot, seed):
        for name, value in scalar_metrics(y_true[idx], probs[idx], labels).items():
            samples.setdefault(name, []).append(value)
    return {name: percentile_interval(values, level) for name, values in samples.items()}


def evaluate(y_true: np.ndarray, probs: np.ndarray, labels: list[str], n_boot: int = 1000,
             seed: int = 0, n_bins: int = ECE_BINS) -> dict:
    """Everything reported for one split, as JSON-ready Python values.

    int (N,), float (N, K) -> {``n_images``, ``metrics`` {name: {``value``,
    ``ci95`` [low, high] or None}}, ``per_class`` {label: {precision, recall,
    f1, support}}, ``confusion_matrix`` (K lists of K ints, rows true),
    ``reliability`` (the bins of :func:`reliability_bins` as lists)}.
    ``n_boot`` = 0 skips the intervals.
    """
    y_true = np.asarray(y_true, np.int64)
    probs = np.asarray(probs, np.float64)
    point = scalar_metrics(y_true, probs, labels, n_bins)
    intervals = bootstrap_intervals(y_true, probs, labels, n_boot, seed) if n_boot else {}
    cm = confusion_matrix(y_true, probs.argmax(axis=1), len(labels))
    classes = per_class(cm)
    bins = reliability_bins(probs, y_true, n_bins)
    return {
        "n_images": int(len(y_true)),
        "metrics": {name: {"value": _num(value),
                           "ci95": [_num(v) for v in intervals[name]] if name in intervals else None}
                    for name, value in point.items()},
        "per_class": {label: {key: _num(classes[key][k]) for key in ("precision", "recall", "f1", "support")}
                      for k, label in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
        "reliability": {key: [_num(v) for v in bins[key]] for key in bins},
        "bootstrap": {"resamples": int(n_boot), "seed": int(seed), "method": "percentile"},
    }


def _num(value):
    """numpy scalar -> int/float for JSON; nan -> None (JSON has no nan)."""
    if isinstance(value, (np.integer, int)):
        return int(value)
    value = float(value)
    return None if math.isnan(value) else value
