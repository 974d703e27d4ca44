"""Confusion counts and the scores read off them, for the doctor, the audit and the evaluation.

The counting is scikit-learn's (:mod:`sklearn.metrics`); this module fixes the
conventions around it, which differ from scikit-learn's defaults.

* ``y_true``: int (N,) class indices in ``0..K-1``; ``y_pred``: int (N,) predicted indices.
* ``cm``: int64 confusion matrix, rows = true class, columns = predicted.

Undefined values follow one rule: a class with no true images has recall
``nan`` (there is nothing to recall) and is left out of the macro averages,
so a bootstrap resample that happens to miss a small class does not count it
as a zero. A class that is never predicted has precision 0. (scikit-learn
replaces every 0/0 by one ``zero_division`` value and averages over all the
``labels`` it is given; :func:`per_class` and :func:`macro_f1` apply the rule
above on top of it.)
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support


def confusion_matrix(y_true, y_pred, num_classes: int, num_predicted: int | None = None) -> np.ndarray:
    """int (N,), int (N,) -> int64 (num_classes, num_predicted); entry [i, j] counts true class i predicted as j.

    ``num_predicted`` (default ``num_classes``) allows a rectangular matrix, e.g.
    folder classes against a model's output units; ``y_true`` must lie in
    ``0..num_classes-1`` and ``y_pred`` in ``0..num_predicted-1``.
    """
    cols = num_classes if num_predicted is None else num_predicted
    y_true = np.asarray(y_true, np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.size} labels but {y_pred.size} predictions")
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or y_true.max() >= num_classes
                        or y_pred.max() >= cols):
        raise ValueError(f"class index out of range (true 0..{num_classes - 1}, predicted 0..{cols - 1})")
    if not y_true.size:  # scikit-learn refuses empty input
        return np.zeros((num_classes, cols), np.int64)
    # labels= fixes the size and order (by default scikit-learn uses the classes
    # present, so a resample missing a class would shrink the matrix). It also
    # drops out-of-range indices silently, hence the check above.
    square = max(num_classes, cols)
    cm = _sk_confusion_matrix(y_true, y_pred, labels=np.arange(square))
    return cm[:num_classes, :cols].astype(np.int64)


def _cells(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int (K, K) -> the matrix as weighted samples: true int (K*K,), predicted int (K*K,), count float64 (K*K,).

    One (true, predicted) pair per cell, weighted by its count: scikit-learn's
    metrics of these pairs with ``sample_weight`` are exactly those of the
    images the matrix counts, without expanding them back into N labels.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"need a square confusion matrix, got shape {cm.shape}")
    k = cm.shape[0]
    return np.repeat(np.arange(k), k), np.tile(np.arange(k), k), cm.reshape(-1).astype(np.float64)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """int (N,), int (N,) -> fraction of exact matches (nan for N = 0)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else math.nan


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """int (K, K) confusion matrix -> float64 (K,) ``precision``, ``recall``, ``f1``, int64 ``support``.

    Recall (and so F1) is nan for a class with no true images; precision is 0
    for a class that is never predicted.
    """
    true, pred, weight = _cells(cm)
    k = len(cm)
    if not weight.any():  # scikit-learn refuses all-zero weights: nothing to score
        nan = np.full(k, np.nan)
        return {"precision": np.zeros(k), "recall": nan, "f1": nan.copy(), "support": np.zeros(k, np.int64)}
    # zero_division=0 gives the precision of a never-predicted class; it would
    # also make recall and F1 of a class with no true images 0 (F1 even when the
    # class was predicted: scikit-learn computes 2 tp / (2 tp + fp + fn)), so
    # those are set to nan below.
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=np.arange(k), sample_weight=weight, average=None, zero_division=0.0)
    absent = support == 0
    recall = np.where(absent, np.nan, recall).astype(np.float64)
    f1 = np.where(absent, np.nan, f1).astype(np.float64)
    return {"precision": np.asarray(precision, np.float64), "recall": recall, "f1": f1,
            "support": np.rint(support).astype(np.int64)}


def class_mean(values: np.ndarray) -> float:
    """float (K,) per-class values, nan for classes with no true images -> their mean over the others."""
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else math.nan


def balanced_accuracy(cm: np.ndarray) -> float:
    """int (K, K) -> mean recall over the classes that have true images.

    The same rule and value as :func:`sklearn.metrics.balanced_accuracy_score`
    (which also leaves such classes out, with a warning); taken from
    :func:`per_class` so that a bootstrap resample runs scikit-learn once.
    """
    return class_mean(per_class(cm)["recall"])


def macro_f1(cm: np.ndarray) -> float:
    """int (K, K) -> mean F1 over the classes that have true images.

    Not ``f1_score(average="macro")``: with ``labels`` that averages over all K
    classes, counting an absent class as ``zero_division``.
    """
    return class_mean(per_class(cm)["f1"])
