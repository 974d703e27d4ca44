"""One bootstrap (explain.metrics.stats) for the audit, the doctor and the evaluation, with unchanged results.

The oracle: a seed's resamples are the rows of
``numpy.random.default_rng(seed).integers(0, n, (n_boot, n))`` and the interval
is ``numpy.percentile`` (linear) of the statistic over them at 2.5 and 97.5.
The pinned numbers were computed by the code before the doctor's balanced
accuracy moved from ``scipy.stats.bootstrap`` onto this implementation.
"""

import numpy as np
import pytest

from explain.metrics import stats

TRUTH = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 0, 1, 2, 3, 0])
PRED = np.array([0, 0, 1, 1, 1, 2, 1, 2, 2, 0, 3, 3, 1, 3, 3, 0, 1, 2, 2, 0])


def _oracle(statistic, n, n_boot, seed):
    rows = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    return tuple(np.percentile([statistic(idx) for idx in rows], [2.5, 97.5]))


@pytest.mark.parametrize("n, n_boot, seed", [(2, 50, 0), (11, 200, 3), (51, 100, 9)])
def test_intervals_are_the_percentiles_of_the_stated_resamples(n, n_boot, seed):
    values = np.random.default_rng(n).normal(size=n)
    expected = _oracle(lambda idx: values[idx].mean(), n, n_boot, seed)
    assert stats.bootstrap_interval(lambda idx: values[idx].mean(), n, n_boot, seed) == pytest.approx(expected)
    result = stats.bootstrap_mean(values, n_boot=n_boot, seed=seed)
    assert (result["low"], result["high"]) == pytest.approx(expected) and result["n"] == n


def test_a_known_resample_set():
    # Two values: every resample mean is 0, 0.5 or 1, so the 95 % interval spans [0, 1] once both extremes occur.
    assert stats.bootstrap_interval(lambda idx: np.array([0.0, 1.0])[idx].mean(), 2, 200) == (0.0, 1.0)
    assert stats.bootstrap_mean([3.0]) == {"mean": 3.0, "low": 3.0, "high": 3.0, "n": 1}
    assert np.isnan(stats.bootstrap_interval(lambda idx: np.nan, 5, 10)).all()  # undefined everywhere: no interval


def test_results_are_unchanged():
    from explain.doctor.findings import interval
    from explain.doctor.settings import _balanced_interval
    from training.metrics import bootstrap_intervals

    assert _balanced_interval(TRUTH, PRED, 4) == {
        "mean": pytest.approx(0.7541666666666667), "low": pytest.approx(0.5311979166666667),
        "high": pytest.approx(0.9583333333333334), "n": 20}
    assert interval(TRUTH == PRED) == {"mean": 0.75, "low": pytest.approx(0.55), "high": pytest.approx(0.95), "n": 20}
    assert stats.bootstrap_mean(np.arange(10.0) ** 2, n_boot=200, seed=3) == {
        "mean": 28.5, "low": pytest.approx(12.575), "high": pytest.approx(42.5), "n": 10}
    probs = np.eye(4)[PRED] * 0.7 + 0.075
    got = bootstrap_intervals(TRUTH, probs, list("abcd"), n_boot=100, seed=1)
    assert got["accuracy"] == pytest.approx((0.5, 0.9))
    assert got["balanced_accuracy"] == pytest.approx((0.5230381944444445, 0.9163194444444442))
    assert got["nll"] == pytest.approx((0.4884297412104939, 1.4225797075373081))


def test_the_doctor_interval_is_the_one_scipy_gave():
    """The doctor's balanced accuracy used scipy.stats.bootstrap (paired, percentile, seed 0): same numbers."""
    scipy_stats = pytest.importorskip("scipy.stats")
    from explain.doctor.findings import BOOTSTRAP_RESAMPLES
    from explain.doctor.settings import _balanced_interval, resampled_balanced_accuracy

    rng = np.random.default_rng(5)
    for n in (7, 20, 63):
        truth = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 3, n))
        old = scipy_stats.bootstrap((truth, pred), resampled_balanced_accuracy, paired=True, vectorized=True,
                                    method="percentile", n_resamples=BOOTSTRAP_RESAMPLES,
                                    rng=np.random.default_rng(0)).confidence_interval
        new = _balanced_interval(truth, pred, 3)
        assert (new["low"], new["high"]) == pytest.approx((old.low, old.high), abs=1e-12)


def test_one_interval_format():
    assert stats.format_interval({"mean": 0.951, "low": 0.876, "high": 1.0}) == "0.95 [0.88, 1.00]"
    assert stats.format_interval({"mean": 12.34, "low": 1.0, "high": 20.0}, 1) == "12.3 [1.0, 20.0]"
    assert stats.format_interval(None) == "n/a"
