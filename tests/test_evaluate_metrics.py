"""Metric functions of explain.metrics.classification and training.metrics on small hand-computed and synthetic cases (no data, no model)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq
from sklearn.metrics import balanced_accuracy_score

from explain.metrics import classification as C
from training import metrics as M

LABELS = ["a", "b", "c"]


def probs_with_confidence(conf: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """float (N,) top probability, int (N,) predicted class -> float64 (N, K) rows summing to 1."""
    conf = np.asarray(conf, np.float64)
    probs = np.tile(((1.0 - conf) / (k - 1))[:, None], (1, k))
    probs[np.arange(len(conf)), pred] = conf
    return probs


# -- counts ---------------------------------------------------------------------
def test_rectangular_confusion_matrix_counts_classes_against_units():
    # 2 folder classes against a model with 3 output units (the doctor's case)
    cm = C.confusion_matrix([0, 0, 1, 1, 1], [2, 0, 1, 1, 2], 2, 3)
    assert cm.tolist() == [[1, 0, 1], [0, 2, 1]]
    with pytest.raises(ValueError, match="out of range"):
        C.confusion_matrix([2], [0], 2, 3)  # a true index must be a class
    assert C.confusion_matrix([], [], 2, 3).shape == (2, 3)


def test_confusion_matrix_rows_are_true_classes():
    cm = C.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert cm.dtype == np.int64


def test_confusion_matrix_rejects_out_of_range():
    # scikit-learn with labels= would drop the pair silently.
    with pytest.raises(ValueError):
        C.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError):
        C.confusion_matrix([0, 1], [0, -1], 3)


def test_confusion_matrix_keeps_every_class_when_some_are_missing():
    # A resample holding only class 0: still K x K, in class order (scikit-learn's
    # default would return the 1 x 1 matrix of the classes present).
    assert C.confusion_matrix([0, 0], [0, 0], 3).tolist() == [[2, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert C.confusion_matrix([2], [1], 3).tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 0]]
    assert C.confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]


def test_per_class_and_balanced_accuracy_by_hand():
    # true a: 8 of 10 right; true b: 1 of 2 right; true c: 3 of 4 right.
    cm = np.array([[8, 2, 0],
                   [1, 1, 0],
                   [0, 1, 3]])
    pc = C.per_class(cm)
    np.testing.assert_allclose(pc["recall"], [0.8, 0.5, 0.75])
    np.testing.assert_allclose(pc["precision"], [8 / 9, 1 / 4, 3 / 3])
    f1_a = 2 * (8 / 9) * 0.8 / (8 / 9 + 0.8)
    f1_b = 2 * 0.25 * 0.5 / 0.75
    f1_c = 2 * 1.0 * 0.75 / 1.75
    np.testing.assert_allclose(pc["f1"], [f1_a, f1_b, f1_c])
    assert pc["support"].tolist() == [10, 2, 4]
    assert C.balanced_accuracy(cm) == pytest.approx((0.8 + 0.5 + 0.75) / 3)
    assert C.macro_f1(cm) == pytest.approx((f1_a + f1_b + f1_c) / 3)
    # Plain accuracy differs from balanced: the big class dominates.
    assert 12 / 16 != pytest.approx(C.balanced_accuracy(cm))


def test_absent_class_is_left_out_not_counted_as_zero():
    cm = np.array([[3, 1, 0],
                   [0, 0, 0],
                   [0, 0, 2]])
    pc = C.per_class(cm)
    assert math.isnan(pc["recall"][1]) and math.isnan(pc["f1"][1])
    assert pc["precision"][1] == 0.0  # predicted once, wrongly
    assert C.balanced_accuracy(cm) == pytest.approx((0.75 + 1.0) / 2)


def test_never_predicted_class_has_zero_precision_and_f1():
    pc = C.per_class(np.array([[2, 0], [3, 0]]))
    assert pc["precision"][1] == 0.0 and pc["recall"][1] == 0.0 and pc["f1"][1] == 0.0


def test_class_neither_true_nor_predicted_is_nan_and_left_out():
    # Class c does not occur at all: recall and F1 nan (scikit-learn: 0), precision 0.
    cm = np.array([[3, 1, 0],
                   [1, 2, 0],
                   [0, 0, 0]])
    pc = C.per_class(cm)
    assert math.isnan(pc["recall"][2]) and math.isnan(pc["f1"][2]) and pc["precision"][2] == 0.0
    assert pc["support"].tolist() == [4, 3, 0] and pc["support"].dtype == np.int64
    f1_a, f1_b = 2 * 0.75 * 0.75 / 1.5, 2 * (2 / 3) * (2 / 3) / (4 / 3)
    assert C.macro_f1(cm) == pytest.approx((f1_a + f1_b) / 2)
    assert C.balanced_accuracy(cm) == pytest.approx((0.75 + 2 / 3) / 2)


def test_no_images_gives_nan_not_an_error():
    pc = C.per_class(np.zeros((3, 3), np.int64))
    assert np.all(np.isnan(pc["recall"])) and np.all(np.isnan(pc["f1"])) and np.all(pc["precision"] == 0)
    assert math.isnan(C.balanced_accuracy(np.zeros((3, 3)))) and math.isnan(C.macro_f1(np.zeros((3, 3))))


def test_balanced_accuracy_is_scikit_learns_with_absent_classes_left_out():
    rng = np.random.default_rng(3)
    for _ in range(50):
        y, pred = rng.integers(0, 4, 12), rng.integers(0, 4, 12)
        y[y == 3] = 0  # class 3 never true, often predicted
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
            expected = balanced_accuracy_score(y, pred)
        assert C.balanced_accuracy(C.confusion_matrix(y, pred, 4)) == pytest.approx(expected, abs=1e-12)


def test_accuracy():
    assert C.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75


# -- probabilities ----------------------------------------------------------------
def test_softmax_is_stable_and_nll_from_logits_is_exact_when_saturated():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    p = M.softmax(logits)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[1], 1 / 3)
    # Wrong with margin 1000: probability underflows to 0, the logit NLL stays exact.
    assert M.nll_from_logits(logits[:1], [1]) == pytest.approx(1000.0)
    assert M.nll_from_logits(logits[1:], [2]) == pytest.approx(math.log(3))
    assert M.negative_log_likelihood(p[1:], [2]) == pytest.approx(math.log(3))


def test_reliability_bins_edges_are_right_closed():
    # 0.2 is exactly the upper edge of bin 2 of 15 (0.1333, 0.2]; 0.9 is inside bin 13.
    probs = np.array([[0.2, 0.2, 0.2, 0.2, 0.2], [0.9, 0.1, 0, 0, 0], [1.0, 0, 0, 0, 0]])
    bins = M.reliability_bins(probs, np.array([0, 1, 0]), 15)
    assert bins["count"].tolist() == [0, 0, 1] + [0] * 10 + [1, 1]
    assert bins["accuracy"][13] == 0.0 and bins["accuracy"][14] == 1.0
    assert bins["confidence"][14] == 1.0
    assert math.isnan(bins["accuracy"][0])


def test_reliability_bins_every_edge_and_rounding_overshoot():
    # Each of the 16 edges k/15 (as linspace computes them) goes to the bin below it, 0 to
    # the first; a top probability a rounding error above 1 goes to the last bin.
    n_bins = 15
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    conf = np.append(edges, 1.0 + 4e-16)
    probs = np.stack([conf, np.zeros_like(conf)], axis=1)  # top class 0, top probability conf
    bins = M.reliability_bins(probs, np.zeros(len(conf), np.int64), n_bins)
    assert bins["count"].tolist() == [2] + [1] * 13 + [2]
    np.testing.assert_array_equal(bins["confidence"][1:14], edges[2:15])
    assert bins["confidence"][0] == edges[1] / 2 and bins["confidence"][14] == 1.0
    assert np.all(bins["accuracy"] == 1.0)


def test_reliability_bins_of_no_images_are_empty():
    bins = M.reliability_bins(np.zeros((0, 3)), np.zeros(0, np.int64))
    assert bins["count"].tolist() == [0] * M.ECE_BINS and np.all(np.isnan(bins["accuracy"]))
    assert math.isnan(M.expected_calibration_error(np.zeros((0, 3)), np.zeros(0, np.int64)))


def test_ece_hand_computed_two_bins():
    # Bin of 0.95: 4 images, 3 right (gap 0.2). Bin of 0.55: 6 images, 3 right (gap 0.05).
    conf = np.array([0.95] * 4 + [0.55] * 6)
    pred = np.zeros(10, int)
    y = np.array([0, 0, 0, 1] + [0, 0, 0, 1, 1, 1])
    ece = M.expected_calibration_error(probs_with_confidence(conf, pred, 3), y)
    assert ece == pytest.approx(0.4 * 0.2 + 0.6 * 0.05)


def test_ece_zero_when_exactly_calibrated():
    conf = np.full(10, 0.9)
    y = np.array([0] * 9 + [1])
    assert M.expected_calibration_error(probs_with_confidence(conf, np.zeros(10, int), 4), y) == pytest.approx(0.0)


def test_ece_calibrated_small_overconfident_large():
    rng = np.random.default_rng(0)
    n, k = 20000, 4
    conf = rng.uniform(0.3, 1.0, n)
    pred = rng.integers(0, k, n)
    # Calibrated: correct with probability equal to the stated confidence.
    correct = rng.random(n) < conf
    wrong = (pred + rng.integers(1, k, n)) % k
    y = np.where(correct, pred, wrong)
    calibrated = M.expected_calibration_error(probs_with_confidence(conf, pred, k), y)
    assert calibrated < 0.02
    # Overconfident: same outcomes, but every stated confidence pushed up to 0.99.
    over = M.expected_calibration_error(probs_with_confidence(np.full(n, 0.99), pred, k), y)
    assert over == pytest.approx(0.99 - correct.mean(), abs=1e-9)
    assert over > 0.3


# -- temperature --------------------------------------------------------------------
@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_fit_temperature_recovers_known_temperature(t_true):
    rng = np.random.default_rng(1)
    n, k = 20000, 4
    z = rng.normal(0.0, 3.0, size=(n, k))
    p = M.softmax(z, t_true)
    y = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    t = M.fit_temperature(z, y)
    assert t == pytest.approx(t_true, rel=0.05)
    assert M.nll_from_logits(z, y, t) <= M.nll_from_logits(z, y, 1.0)
    # The search result is a true minimum: small steps either way do not improve it.
    for step in (0.999, 1.001):
        assert M.nll_from_logits(z, y, t) <= M.nll_from_logits(z, y, t * step) + 1e-12
    # And it is the stationary point, found independently: with s = 1/T the NLL's
    # derivative is mean(E_softmax(s z)[z] - z[true]), increasing in s (convexity).
    def slope(s):
        p = M.softmax(z, 1.0 / s)
        return float(np.mean((p * z).sum(axis=1) - z[np.arange(n), y]))

    s_root = brentq(slope, 1.0 / M.TEMPERATURE_BOUNDS[1], 1.0 / M.TEMPERATURE_BOUNDS[0], xtol=1e-14)
    assert t == pytest.approx(1.0 / s_root, rel=1e-6)


def test_fit_temperature_hits_upper_bound_for_uninformative_logits():
    rng = np.random.default_rng(2)
    z = rng.normal(0.0, 3.0, size=(2000, 3))
    y = rng.integers(0, 3, 2000)  # labels independent of the logits: flattest softmax is best
    assert M.fit_temperature(z, y) == pytest.approx(M.TEMPERATURE_BOUNDS[1], rel=1e-3)


# -- bootstrap ------------------------------------------------------------------------
def synthetic(n: int, seed: int, k: int = 3, acc: float = 0.8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    correct = rng.random(n) < acc
    pred = np.where(correct, y, (y + rng.integers(1, k, n)) % k)
    conf = rng.uniform(0.5, 0.95, n)
    return y, probs_with_confidence(conf, pred, k)


def test_bootstrap_interval_contains_point_and_narrows_with_more_images():
    y_small, p_small = synthetic(150, 3)
    y_big, p_big = synthetic(3000, 3)
    small = M.bootstrap_intervals(y_small, p_small, LABELS, n_boot=300, seed=0)
    big = M.bootstrap_intervals(y_big, p_big, LABELS, n_boot=300, seed=0)
    for name in ("accuracy", "balanced_accuracy", "macro_f1", "recall/a", "recall/b", "recall/c"):
        for y, p, iv in ((y_small, p_small, small), (y_big, p_big, big)):
            point = M.scalar_metrics(y, p, LABELS)[name]
            assert iv[name][0] <= point <= iv[name][1], name
            assert iv[name][0] < iv[name][1], name
        # Width shrinks roughly as 1/sqrt(n): 20x the images, about 4.5x narrower.
        assert (big[name][1] - big[name][0]) < 0.5 * (small[name][1] - small[name][0]), name
    assert set(small) == set(M.scalar_metrics(y_small, p_small, LABELS))


def test_bootstrap_accuracy_interval_matches_binomial_width():
    y, p = synthetic(2000, 4, acc=0.8)
    iv = M.bootstrap_intervals(y, p, LABELS, n_boot=1000, seed=0)["accuracy"]
    acc = M.scalar_metrics(y, p, LABELS)["accuracy"]
    expected = 2 * 1.96 * math.sqrt(acc * (1 - acc) / 2000)
    assert (iv[1] - iv[0]) == pytest.approx(expected, rel=0.15)


def test_bootstrap_is_seeded():
    y, p = synthetic(200, 5)
    a = M.bootstrap_intervals(y, p, LABELS, n_boot=50, seed=7)
    b = M.bootstrap_intervals(y, p, LABELS, n_boot=50, seed=7)
    c = M.bootstrap_intervals(y, p, LABELS, n_boot=50, seed=8)
    assert a == b
    assert a != c


def test_bootstrap_ignores_resamples_missing_a_class():
    # One image of class c: many resamples lack it, and those must not count as recall 0.
    y = np.array([0] * 30 + [1] * 30 + [2])
    p = probs_with_confidence(np.full(61, 0.9), y, 3)  # every prediction right
    iv = M.bootstrap_intervals(y, p, LABELS, n_boot=200, seed=0)
    assert iv["recall/c"] == (1.0, 1.0)
    assert iv["balanced_accuracy"] == (1.0, 1.0)


# -- report --------------------------------------------------------------------------
def test_evaluate_is_json_ready_and_consistent():
    y, p = synthetic(120, 6)
    out = M.evaluate(y, p, LABELS, n_boot=20, seed=0)
    text = json.dumps(out, allow_nan=False)  # raises on nan/inf or numpy scalars
    assert json.loads(text) == out
    assert out["n_images"] == 120
    assert np.array(out["confusion_matrix"]).sum() == 120
    assert out["metrics"]["accuracy"]["value"] == pytest.approx(C.accuracy(y, p.argmax(1)))
    assert sum(out["reliability"]["count"]) == 120
    assert out["per_class"]["b"]["support"] == int((y == 1).sum())
    assert M.evaluate(y, p, LABELS, n_boot=0)["metrics"]["accuracy"]["ci95"] is None
