"""Preprocessing and colour mode: run the model under every setting the pipeline knows, and pick one.

Every normalisation of :mod:`explain.preprocess` ("tf" is the same formula as
"xception" and is scored once, under "xception") times both colour modes,
where the model's channels allow it. Per setting:

* labelled sample: accuracy in the claimed label order and in the label
  order that fits best (so a wrong label order does not hide the right
  preprocessing), balanced accuracy, each with a 95 % bootstrap interval;
* always: mean top probability, mean prediction entropy, how the predictions
  spread over the output units (a wrong normalisation typically sends most
  images to one unit), the share of saturated softmax outputs, and the
  BatchNorm shift.

The BatchNorm shift is label-free evidence that does not depend on what the
sample holds: every trainable BatchNormalization layer stores the mean and
variance of its input over the training data, so under the training
preprocessing the sample's statistics match them; [-1, 1] inputs for a model
trained on [0, 1] move them by several standard deviations. It is the mean
over layers and channels of |mean - moving mean| / moving std +
|log(variance / moving variance)| (0 = identical). Frozen layers are left
out: a frozen ImageNet base keeps ImageNet's statistics, which describe the
base's pre-training, not the user's training.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from ..metrics import stats
from ..metrics.classification import balanced_accuracy, confusion_matrix
from ..model.graph import run_intercepted
from ..model.layers import walk
from ..preprocess import COLOR_MODES, NORMALIZATIONS, InputSpec, finish, prepare_pixels
from .findings import (BOOTSTRAP_RESAMPLES, ERROR, OK, WARNING, Finding, interval,
                       paired_gain, severity_of_gain)
from .labels import best_units, hits, reference_units
from .sample import Sample

#: Normalisations that are another name for one already scored.
ALIASES = {"tf": "xception"}
#: What ties go to when nothing is claimed: the pipeline's own defaults.
DEFAULTS = {"preprocessing": "rescale", "color_mode": "grayscale"}
#: A top probability above 1 - this is "saturated": the softmax gradient is
#: p (1 - p) times the logit's, under a thousandth of it.
SATURATION = 1e-3
#: A setting sending at least this share of a sample to one unit has collapsed.
COLLAPSED = 0.9
#: Label-free: a setting whose BatchNorm shift is within FACTOR x best + SLACK
#: is as good as the best; more than GROSS_FACTOR x best + GROSS_SLACK is a
#: grossly wrong normalisation.
BN_FACTOR, BN_SLACK = 1.5, 0.1
BN_GROSS_FACTOR, BN_GROSS_SLACK = 3.0, 0.5
BATCH = 16


def key(preprocessing: str, color_mode: str) -> str:
    """The name of a setting in the report, e.g. "rescale/grayscale"."""
    return f"{preprocessing}/{color_mode}"


def canonical(preprocessing: str | None) -> str | None:
    return ALIASES.get(preprocessing, preprocessing)


def candidate_settings(size, channels: int) -> list[tuple[str, str]]:
    """Every (preprocessing, colour mode) the model's channels allow, aliases left out."""
    out = []
    for color in COLOR_MODES:
        for mode in NORMALIZATIONS:
            if mode in ALIASES:
                continue
            try:
                InputSpec(size=size, channels=channels, color_mode=color, preprocessing=mode)
            except ValueError:
                continue
            out.append((mode, color))
    return out


def to_probabilities(out: np.ndarray) -> np.ndarray:
    """float (N, K) model output -> float64 (N, K) rows summing to 1.

    Softmax outputs pass unchanged; sigmoid outputs are divided by their sum;
    a model that outputs logits gets a softmax.
    """
    out = np.asarray(out, np.float64)
    if np.all(out >= 0.0) and np.all(out <= 1.0):
        total = out.sum(axis=1, keepdims=True)
        return out / np.maximum(total, 1e-12)
    z = out - out.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class ForwardPass:
    """The model's output and the input moments of its trainable BatchNorm layers, one compiled pass.

    model: any Functional/Sequential keras.Model (never modified);
    input_shape: (h, w, C). Traced once; every setting reuses the trace.
    """

    def __init__(self, model, input_shape):
        self.norms = [p.layer for p in walk(model)
                      if isinstance(p.layer, keras.layers.BatchNormalization)
                      and all(layer.trainable for layer in p.layers)
                      and p.layer.axis in (-1, len(input_shape))]

        def moments(store, i):
            def wrap(call):
                def wrapped(x, *args, **kwargs):
                    if i not in store:  # a shared layer: its first call stands for it
                        axes = list(range(len(x.shape) - 1))
                        store[i] = (tf.reduce_mean(x, axes), tf.reduce_mean(tf.square(x), axes))
                    return call(x, *args, **kwargs)
                return wrapped
            return wrap

        def forward(x):
            store = {}
            out = run_intercepted(model, x, {id(layer): moments(store, i) for i, layer in enumerate(self.norms)})
            return out, [store[i] for i in range(len(self.norms)) if i in store]

        self._fn = tf.function(forward, input_signature=[tf.TensorSpec((None, *input_shape), tf.float32)])

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, float | None]:
        """float32 (N, h, w, C) -> (probabilities float64 (N, K), BatchNorm shift or None without BN layers)."""
        outs, sums = [], None
        for start in range(0, len(x), BATCH):
            out, stats = self._fn(x[start:start + BATCH])
            part = len(out)
            outs.append(np.asarray(out))
            values = [(np.asarray(m, np.float64) * part, np.asarray(s, np.float64) * part) for m, s in stats]
            sums = values if sums is None else [(a + c, b + d) for (a, b), (c, d) in zip(sums, values)]
        probs = to_probabilities(np.concatenate(outs))
        if not sums:
            return probs, None
        shifts = []
        for layer, (total, total_sq) in zip(self.norms, sums):
            mean = total / len(x)
            var = np.maximum(total_sq / len(x) - mean ** 2, 0.0)
            ref_mean = np.asarray(layer.moving_mean, np.float64)
            ref_var = np.asarray(layer.moving_variance, np.float64) + layer.epsilon
            shift = np.abs(mean - ref_mean) / np.sqrt(ref_var) + np.abs(np.log((var + layer.epsilon) / ref_var))
            shifts.append(float(np.mean(shift)))
        return probs, float(np.mean(shifts))


@dataclass
class Setting:
    """One setting's outputs on the sample: probs float64 (N, K); bn_shift >= 0 or None."""

    preprocessing: str
    color_mode: str
    probs: np.ndarray
    bn_shift: float | None
    same_as: str | None = None  # grey images: rgb gives the same inputs as grayscale

    @property
    def key(self) -> str:
        return key(self.preprocessing, self.color_mode)


def model_inputs(sample: Sample, spec: InputSpec) -> np.ndarray:
    """float32 (N, h, w, C): the sample as the pipeline feeds it under ``spec``."""
    return np.stack([finish(prepare_pixels(image, spec), spec) for image in sample.images])


def run_settings(forward: ForwardPass, sample: Sample, size, channels: int, on_setting=None) -> dict[str, Setting]:
    """Run the model under every candidate setting; {key: Setting} in candidate order."""
    results: dict[str, Setting] = {}
    grey = sample.colour_files == 0
    for mode, color in candidate_settings(size, channels):
        twin = key(mode, "grayscale")
        if grey and color == "rgb" and twin in results:
            # Luma of R = G = B is that value, so the inputs are identical: no second run.
            done = results[twin]
            results[key(mode, color)] = Setting(mode, color, done.probs, done.bn_shift, same_as=twin)
        else:
            probs, shift = forward(model_inputs(sample, InputSpec(size, channels, color, mode)))
            results[key(mode, color)] = Setting(mode, color, probs, shift)
        if on_setting is not None:
            on_setting()
    return results


def label_free_scores(setting: Setting) -> dict:
    """Scores that need no labels: mean top probability, mean entropy (0..1, / log K), the share of
    predictions per output unit, the largest share, its entropy (0..1), saturated share, BatchNorm shift."""
    probs = setting.probs
    k = probs.shape[1]
    top = probs.max(axis=1)
    entropy = -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(axis=1) / np.log(k)
    shares = np.bincount(probs.argmax(axis=1), minlength=k) / len(probs)
    nonzero = shares[shares > 0]
    return {
        "mean_top_probability": float(top.mean()),
        "mean_entropy": float(entropy.mean()),
        "class_shares": [float(s) for s in shares],
        "largest_class_share": float(shares.max()),
        "spread_entropy": float(-(nonzero * np.log(nonzero)).sum() / np.log(k)),
        "saturated_share": float(np.mean(1.0 - top < SATURATION)),
        "bn_shift": setting.bn_shift,
    }


def resampled_balanced_accuracy(truth, pred, axis: int = -1) -> np.ndarray:
    """Balanced accuracy of every resample at once: int (..., n), int (..., n) -> float64 (...).

    The rule of :func:`sklearn.metrics.balanced_accuracy_score` (mean recall
    over the classes a resample holds), vectorised over leading axes.
    """
    truth, pred = np.moveaxis(np.asarray(truth), axis, -1), np.moveaxis(np.asarray(pred), axis, -1)
    recalls = []
    for k in np.unique(truth):
        support = (truth == k).sum(axis=-1)
        hit = ((truth == k) & (pred == k)).sum(axis=-1)
        recalls.append(np.where(support > 0, hit / np.maximum(support, 1), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def _balanced_interval(truth_units: np.ndarray, pred: np.ndarray, n_units: int) -> dict:
    point = balanced_accuracy(confusion_matrix(truth_units, pred, n_units))
    if len(pred) < 2 or np.all(truth_units == pred):
        return {"mean": point, "low": point, "high": point, "n": int(len(pred))}
    low, high = stats.bootstrap_interval(lambda idx: resampled_balanced_accuracy(truth_units[idx], pred[idx]),
                                         len(pred), BOOTSTRAP_RESAMPLES)
    return {"mean": point, "low": float(low), "high": float(high), "n": int(len(pred))}


def labelled_scores(setting: Setting, sample: Sample, labels: list[str] | None) -> tuple[dict, np.ndarray]:
    """Accuracy in the claimed order (None if it cannot be scored) and in the best order, balanced
    accuracy in the best order; returns (scores, bool (N,) hits in the best order)."""
    n_units = setting.probs.shape[1]
    pred = setting.probs.argmax(axis=1)
    truth, n_classes = sample.truth, len(sample.classes)
    best = best_units(truth, pred, n_classes, n_units)
    ref = reference_units(sample.classes, labels, n_units)
    best_hits = hits(truth, pred, best)
    assigned = best[truth] >= 0
    scores = {
        "accuracy": interval(hits(truth, pred, ref)) if ref is not None else None,
        "accuracy_best_order": interval(best_hits),
        "balanced_accuracy": _balanced_interval(best[truth][assigned], pred[assigned], n_units),
    }
    return scores, best_hits


def _preference(setting: Setting, preferred: tuple[str, str]) -> tuple[int, int]:
    return (int(setting.preprocessing == preferred[0]), int(setting.color_mode == preferred[1]))


def choose(results: dict[str, Setting], acceptable: list[str], preferred: tuple[str, str], rank) -> str:
    """Among ``acceptable`` keys (as good as the best), the one closest to ``preferred``, then best by ``rank``."""
    return max(acceptable, key=lambda k: (*_preference(results[k], preferred), rank(k)))


def evaluate(results: dict[str, Setting], sample: Sample, claims) -> dict:
    """Score every setting, recommend one, and judge the claims.

    Returns {"by_setting", "recommended": (preprocessing, colour mode),
    "findings": [preprocessing Finding, colour-mode Finding], "evidence"}.
    """
    by_setting, best_hits = {}, {}
    for k, s in results.items():
        entry = {"preprocessing": s.preprocessing, "color_mode": s.color_mode, "same_as": s.same_as,
                 "label_free": label_free_scores(s)}
        if sample.labelled and s.same_as:
            best_hits[k] = best_hits[s.same_as]  # same inputs, same scores: skip the bootstrap
            entry.update({name: by_setting[s.same_as][name]
                          for name in ("accuracy", "accuracy_best_order", "balanced_accuracy")})
        elif sample.labelled:
            scores, best_hits[k] = labelled_scores(s, sample, claims.labels)
            entry.update(scores)
        by_setting[k] = entry
    given_p, given_c = canonical(claims.preprocessing), claims.color_mode
    valid_modes = {s.preprocessing for s in results.values()}
    valid_colors = {s.color_mode for s in results.values()}
    preferred = (given_p if given_p in valid_modes else DEFAULTS["preprocessing"],
                 given_c if given_c in valid_colors else DEFAULTS["color_mode"])
    use_bn = all(s.bn_shift is not None for s in results.values())
    if sample.labelled:
        evidence = "labels"
        rank = lambda k: by_setting[k]["accuracy_best_order"]["mean"]  # noqa: E731
        best = max(results, key=rank)
        acceptable = [k for k in results if not paired_gain(best_hits[best], best_hits[k])["clear"]]
    elif use_bn:
        evidence = "batchnorm"
        rank = lambda k: -results[k].bn_shift  # noqa: E731
        low = min(s.bn_shift for s in results.values())
        acceptable = [k for k, s in results.items() if s.bn_shift <= BN_FACTOR * low + BN_SLACK]
    else:
        evidence = "predictions"
        rank = lambda k: by_setting[k]["label_free"]["spread_entropy"]  # noqa: E731
        acceptable = [k for k in results if not _collapsed(by_setting[k], len(sample))] or list(results)
    chosen = choose(results, acceptable, preferred, rank)
    rec = (results[chosen].preprocessing, results[chosen].color_mode)
    for alias, target in ALIASES.items():
        for color in COLOR_MODES:
            if key(target, color) in by_setting:
                by_setting[key(alias, color)] = {**by_setting[key(target, color)], "same_as": key(target, color)}
    judge = _Judge(results, by_setting, best_hits, sample, evidence, claims.channels)
    findings = [
        judge.verdict("preprocessing", claims.preprocessing, rec, key(given_p, rec[1]) if given_p else None),
        judge.verdict("color_mode", given_c, rec, key(rec[0], given_c) if given_c else None),
    ]
    recommended_p = claims.preprocessing if canonical(claims.preprocessing) == rec[0] else rec[0]
    return {"by_setting": by_setting, "recommended": (recommended_p, rec[1]), "findings": findings,
            "evidence": evidence}


def _collapsed(entry: dict, n: int) -> bool:
    return n >= 10 and entry["label_free"]["largest_class_share"] >= COLLAPSED


class _Judge:
    """Writes the finding of one claim (preprocessing or colour mode) against the recommendation."""

    def __init__(self, results, by_setting, best_hits, sample, evidence, channels):
        self.results, self.by_setting, self.best_hits = results, by_setting, best_hits
        self.sample, self.evidence, self.channels = sample, evidence, channels

    def describe(self, k: str) -> str:
        entry = self.by_setting[k]
        if self.evidence == "labels":
            return f"{k}: accuracy {stats.format_interval(entry['accuracy_best_order'])}"
        free = entry["label_free"]
        text = (f"{k}: largest class {free['largest_class_share']:.0%}, mean top probability "
                f"{free['mean_top_probability']:.2f}")
        return text + (f", BatchNorm shift {free['bn_shift']:.2f}" if free["bn_shift"] is not None else "")

    def verdict(self, check: str, claimed: str | None, rec: tuple[str, str], given_key: str | None) -> Finding:
        rec_key = key(*rec)
        value = rec[0] if check == "preprocessing" else rec[1]
        option = "--preprocessing" if check == "preprocessing" else "--color-mode"
        n = len(self.sample)
        basis = (f"{n} labelled images, label order that fits best" if self.evidence == "labels"
                 else f"{n} unlabelled images")
        if claimed is not None and given_key not in self.results:
            return Finding(ERROR, check, f"{claimed!r} cannot feed this model's {self.channels}-channel input; "
                                         f"{self.describe(rec_key)} ({basis}). Use {option} {value}.")
        if check == "color_mode" and self.channels == 3 and self.sample.colour_files == 0:
            return Finding(OK, check, f"{claimed or value}: the images are grey, so both colour modes give the "
                                      "model the same input.")
        if claimed is None:
            return self._found(check, value, option, rec_key, basis)
        if given_key == rec_key:
            return Finding(OK, check, f"{claimed} is the best setting: {self.describe(rec_key)} ({basis}).")
        severity = self._severity(given_key, rec_key)
        return Finding(severity, check, f"the given {claimed!r} is not the best setting: {self.describe(given_key)}"
                                        f" vs {self.describe(rec_key)} ({basis}). Use {option} {value}.")

    def _found(self, check, value, option, rec_key, basis) -> Finding:
        severity = OK
        text = f"not given; found {value}: {self.describe(rec_key)} ({basis})."
        entry = self.by_setting[rec_key]
        if self.evidence == "labels" and entry["accuracy_best_order"]["mean"] < 0.5:
            severity, text = WARNING, text + " No setting reaches accuracy 0.5: is this the right model for the images?"
        return Finding(severity, check, text + f" Use {option} {value}.")

    def _severity(self, given_key: str, rec_key: str) -> str:
        if self.evidence == "labels":
            return severity_of_gain(paired_gain(self.best_hits[rec_key], self.best_hits[given_key]))
        if self.evidence == "batchnorm":
            given, best = self.results[given_key].bn_shift, self.results[rec_key].bn_shift
            gross = given > BN_GROSS_FACTOR * best + BN_GROSS_SLACK
            n = len(self.sample)
            # The statistics and the predictions disagree when the "best" setting collapses and the
            # given one does not: say so, but do not call it an error without labels.
            conflict = _collapsed(self.by_setting[rec_key], n) and not _collapsed(self.by_setting[given_key], n)
            return ERROR if gross and not conflict else WARNING
        return WARNING
