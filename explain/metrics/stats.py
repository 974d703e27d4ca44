"""Percentile-bootstrap intervals, one implementation for the audit, the doctor and the evaluation.

Resamples are drawn one at a time with ``numpy.random.default_rng(seed)``:
``rng.integers(0, n, size=n)`` per resample, so a given seed gives the same
resamples wherever they are used. (Drawn at once, ``rng.integers(0, n, (n_boot, n))``,
they are the same index arrays: the doctor's balanced-accuracy intervals, once
``scipy.stats.bootstrap(..., paired=True, method="percentile")``, are unchanged
on this implementation.)
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np


def resamples(n: int, n_boot: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``n_boot`` index arrays (n,) int64, each n draws with replacement from range(n)."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n, size=n)


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Central ``level`` interval of ``values`` (NaN ignored); (nan, nan) if none are left."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Central ``level`` percentile-bootstrap interval of ``statistic`` over ``n`` paired observations.

    statistic: index array (n,) int64 -> float, the statistic of that resample
    (index every paired array with it). Resamples where it is NaN are ignored.
    """
    return percentile_interval([statistic(idx) for idx in resamples(n, n_boot, seed)], level)


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
    low, high = bootstrap_interval(lambda idx: data[idx].mean(), data.size, n_boot, seed, level)
    return {"mean": mean, "low": low, "high": high, "n": int(data.size)}


def format_interval(stat: dict | None, digits: int = 2) -> str:
    """"0.95 [0.88, 1.00]" for a :func:`bootstrap_mean`-style dict ({"mean", "low", "high"}); "n/a" for None."""
    if stat is None:
        return "n/a"
    return f"{stat['mean']:.{digits}f} [{stat['low']:.{digits}f}, {stat['high']:.{digits}f}]"
