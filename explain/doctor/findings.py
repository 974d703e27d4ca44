"""What every check of the doctor returns: findings, and the intervals behind their numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..metrics import stats

OK, WARNING, ERROR = "OK", "WARNING", "ERROR"
SEVERITIES = (OK, WARNING, ERROR)

#: A better setting or label order must gain at least this much accuracy, with
#: the lower end of its paired bootstrap interval above zero, to be an ERROR; a
#: smaller gain that is still clearly above zero is a WARNING.
CLEAR_GAIN = 0.10
BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class Finding:
    """One line of the report.

    severity: "OK", "WARNING" or "ERROR". check: which check ("input",
    "file", "preprocessing", "color_mode", "labels", "layer", "gradients").
    message: one sentence or two, with the numbers.
    """

    severity: str
    check: str
    message: str

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return f"{self.severity:<8} {self.check:<13} {self.message}"


def interval(values) -> dict:
    """Mean of ``values`` (1-D numbers, e.g. bool correct-or-not per image) with a 95 % bootstrap interval.

    Returns {"mean", "low", "high", "n"} (floats, int), see
    :func:`explain.metrics.stats.bootstrap_mean`.
    """
    return stats.bootstrap_mean(np.asarray(values, np.float64), n_boot=BOOTSTRAP_RESAMPLES)


def paired_gain(better, base) -> dict:
    """Accuracy gained per image by ``better`` over ``base`` (bool (N,) each), with its interval.

    Paired: both are scored on the same images, so the interval of the mean
    difference is much narrower than the two accuracies' intervals suggest.
    Adds "clear": True when the whole interval lies above zero.
    """
    result = interval(np.asarray(better, np.float64) - np.asarray(base, np.float64))
    result["clear"] = bool(result["n"] > 0 and result["low"] > 0.0)
    return result


def severity_of_gain(gain: dict) -> str:
    """ERROR for a clear gain of at least :data:`CLEAR_GAIN`, WARNING for a smaller clear gain, else OK."""
    if not gain["clear"]:
        return OK
    return ERROR if gain["mean"] >= CLEAR_GAIN else WARNING
