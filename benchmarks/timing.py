"""Timing and report tools of the benchmark: work counts, ABBA-interleaved medians, result rows,
the printed table and the JSON file.

Timing method: warm-up calls first, then the median of repeated calls timed
with ``time.perf_counter``; the two sides of a ratio are called in turn, in
ABBA order, so that machine noise (and any drift) hits both sides equally.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable


@dataclass
class Counts:
    """How much work each measurement does (see ``--quick``)."""

    repeats: int = 20           # timed calls per side of an engine ratio
    warmup: int = 3             # untimed calls before timing
    requests: int = 500         # app requests for the memory measurement
    latency_requests: int = 40  # app requests per latency scenario (1 client, 8 clients)
    app_warmup: int = 10        # app requests before latency and memory are measured
    import_repeats: int = 2     # timed `import ...` subprocesses (after one untimed)
    scorecam_repeats: int = 1   # timed Score-CAM calls
    scorecam_channels: int = 128  # Score-CAM max_channels cap for wider layers (cost ~ channels)


QUICK = Counts(repeats=3, warmup=1, requests=20, latency_requests=8, app_warmup=2,
               import_repeats=1, scorecam_repeats=1, scorecam_channels=32)


@dataclass
class Row:
    """One line of the result table."""

    model: str
    metric: str
    value: float | None
    unit: str
    target: str = ""
    passed: bool | None = None  # None: no target, or not measured
    note: str = ""


@dataclass
class Report:
    """Rows of the table, free-text notes (skips, failures) and raw samples for the JSON file."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def note(self, text: str) -> None:
        print(f"note: {text}", flush=True)
        self.notes.append(text)

    def add(self, row: Row) -> None:
        # Plain Python types for the JSON file (numpy scalars are not serialisable).
        row.value = None if row.value is None else float(row.value)
        row.passed = None if row.passed is None else bool(row.passed)
        print(f"  {row.model:<10} {row.metric:<44} {_fmt(row.value, row.unit):>14}", flush=True)
        self.rows.append(row)


# -- timing -----------------------------------------------------------------------

def interleaved(funcs: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, calls taken in turn (ABBA order).

    Reversing the order every round keeps a fixed "A right after B" effect
    (caches, thermal or scheduler drift) from favouring one side.
    """
    for _ in range(warmup):
        for fn in funcs.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in funcs}
    order = list(funcs)
    for i in range(max(1, repeats)):
        for name in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            funcs[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def ratio_row(model: str, metric: str, times: dict[str, float], top: str, bottom: str,
              limit: float | None = None, at_most: bool = True) -> Row:
    """Row for times[top] / times[bottom], checked against ``limit`` if one is given."""
    ratio = times[top] / times[bottom]
    note = f"{times[top] * 1e3:.1f} ms / {times[bottom] * 1e3:.1f} ms"
    if limit is None:
        return Row(model, metric, ratio, "x", note=note)
    passed = ratio <= limit if at_most else ratio >= limit
    return Row(model, metric, ratio, "x", f"{'<=' if at_most else '>='} {limit:g}", passed, note)


# -- output -----------------------------------------------------------------------

def _fmt(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value * 100:.0f} %"
    if unit == "x":
        return f"{value:.2f} x"
    if unit in ("", "errors"):
        return f"{value:g}"
    return f"{value:.1f} {unit}" if abs(value) < 1e4 else f"{value:.0f} {unit}"


def print_table(rows: list[Row]) -> None:
    header = f"{'model':<10} {'metric':<44} {'value':>14}  {'target':<26} {'result':<6} note"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        result = "-" if r.passed is None else ("pass" if r.passed else "FAIL")
        print(f"{r.model:<10} {r.metric:<44} {_fmt(r.value, r.unit):>14}  {r.target:<26} {result:<6} {r.note}")


def environment() -> dict:
    import gradio
    import gradio_client
    import keras
    import numpy as np
    import tensorflow as tf

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu,
        "platform": platform.platform(),
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "gradio": gradio.__version__,
                     "gradio_client": gradio_client.__version__, "numpy": np.__version__},
    }


def write_json(path: Path, env: dict, counts: Counts, args, report: Report) -> None:
    payload = {**env, "quick": args.quick, "counts": asdict(counts),
               "rows": [asdict(r) for r in report.rows], "notes": report.notes, "details": report.details}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")


def write_report(lines: list[str], out: str | None) -> None:
    """Print a benchmark's text report and, with ``out``, write the same text there (folders made)."""
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
