"""Label order: does output unit j really mean the class the labels name for it?

With class folders, the confusion matrix of folder class against output unit
shows it: the assignment of classes to units with the most correct images
(optimal assignment, :func:`scipy.optimize.linear_sum_assignment`) is the
order the model learned. Keras' ``flow_from_directory`` and
``image_dataset_from_directory`` number classes in sorted folder order, so a
hand-typed label list is the usual way to get it wrong.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..metrics.classification import confusion_matrix
from ..metrics.stats import format_interval
from .findings import OK, WARNING, Finding, interval, paired_gain, severity_of_gain
from .sample import Sample


def best_units(truth, pred, n_classes: int, n_units: int) -> np.ndarray:
    """int64 (n_classes,): the output unit of each folder class under the assignment with the most hits.

    With fewer units than classes, unassigned classes get -1 (never correct).
    """
    cm = confusion_matrix(truth, pred, n_classes, n_units)
    rows, cols = linear_sum_assignment(-cm)
    units = np.full(n_classes, -1, np.int64)
    units[rows] = cols
    return units


def reference_units(classes: list[str], labels: list[str] | None, n_units: int) -> np.ndarray | None:
    """int64 (n_classes,): the unit the claimed labels give each folder class, or None if they cannot say.

    Without claimed labels and with one folder per unit, the reference is the
    sorted folder order, which is what Keras' directory loaders use.
    """
    if labels is None:
        return np.arange(len(classes), dtype=np.int64) if len(classes) == n_units else None
    if not set(classes) <= set(labels):
        return None
    return np.asarray([labels.index(c) for c in classes], np.int64)


def hits(truth, pred, units: np.ndarray) -> np.ndarray:
    """bool (N,): the predicted unit is the unit of the image's folder class."""
    return np.asarray(pred) == units[np.asarray(truth)]


def labels_in_unit_order(classes: list[str], units: np.ndarray, fallback: list[str] | None,
                         n_units: int) -> list[str]:
    """Class names in output order from a class -> unit assignment; units no folder class took keep
    their ``fallback`` name where it is free, else ``class_<j>``."""
    names: list[str | None] = [None] * n_units
    for k, unit in enumerate(units):
        if unit >= 0:
            names[int(unit)] = classes[k]
    for j in range(n_units):
        if names[j] is None:
            candidate = fallback[j] if fallback is not None else None
            names[j] = candidate if candidate and candidate not in names else f"class_{j}"
    return names  # type: ignore[return-value]


def check_labels(probs: np.ndarray, sample: Sample, given: list[str] | None, n_units: int):
    """The label-order check at the recommended setting.

    probs: float (N, K) model outputs on ``sample`` at the recommended setting.
    Returns (recommended labels or None, JSON-ready info, Finding).
    """
    info = {"given": given, "recommended": given}
    if not sample.labelled:
        if given is None:
            names = [f"class_{j}" for j in range(n_units)]
            info["recommended"] = names
            return names, info, Finding(WARNING, "labels", "no labels given and no class folders to find them "
                                        "from: the outputs are named class_0 ...; put the images in one "
                                        "folder per class to check the order.")
        return given, info, Finding(OK, "labels", "not checked: the images are not in class folders "
                                    f"(given order: {', '.join(given)}).")
    pred = probs.argmax(axis=1)
    truth, classes = sample.truth, sample.classes
    cm = confusion_matrix(truth, pred, len(classes), n_units)
    best = best_units(truth, pred, len(classes), n_units)
    best_hits = hits(truth, pred, best)
    ref = reference_units(classes, given, n_units)
    columns = given if given is not None else [f"unit_{j}" for j in range(n_units)]
    info["confusion_matrix"] = {"rows (folder class)": classes, "columns (output unit)": columns,
                                "counts": cm.tolist()}
    info["accuracy_recommended_order"] = interval(best_hits)
    fitted = labels_in_unit_order(classes, best, given, n_units)
    n = len(sample)
    if ref is None:
        info["recommended"] = fitted
        info["accuracy_given_order"] = None
        why = ("no labels given" if given is None else
               f"the folder names ({', '.join(classes)}) are not all among the given labels")
        severity = OK if given is None else WARNING
        accuracy = format_interval(info["accuracy_recommended_order"])
        return fitted, info, Finding(severity, "labels", f"{why}; the order that fits the folders is "
                                     f"{', '.join(fitted)} (accuracy {accuracy} on {n} labelled images).")
    ref_hits = hits(truth, pred, ref)
    gain = paired_gain(best_hits, ref_hits)
    info["accuracy_given_order"] = interval(ref_hits)
    info["gain"] = gain
    severity = severity_of_gain(gain)
    reference = given if given is not None else labels_in_unit_order(classes, ref, None, n_units)
    source = "given order" if given is not None else "sorted folder order"
    if severity == OK:
        info["recommended"] = reference
        given_acc, best_acc = (format_interval(info[k]) for k in ("accuracy_given_order", "accuracy_recommended_order"))
        return reference, info, Finding(OK, "labels", f"{source} {', '.join(reference)} fits: accuracy {given_acc}, "
                                        f"no reordering does clearly better (best {best_acc}; {n} images).")
    info["recommended"] = fitted
    if given is None:
        severity = OK  # nothing was claimed, so nothing is wrong: the doctor found the order
    moved = sum(a != b for a, b in zip(reference, fitted))
    return fitted, info, Finding(severity, "labels", (
        f"{source} {', '.join(reference)} gives accuracy {format_interval(info['accuracy_given_order'])}; the order "
        f"{', '.join(fitted)} gives {format_interval(info['accuracy_recommended_order'])} (+{format_interval(gain)}, "
        f"{moved} of {n_units} names move; {n} images). "
        f"Use --labels {','.join(fitted)}."))
