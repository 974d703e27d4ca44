"""Performance benchmark of the Grad-CAM engine and the Gradio app, on this machine's CPU.

    python benchmarks/bench.py                      # everything, about 10 minutes on 2 cores
    python benchmarks/bench.py --quick              # smoke run with small counts
    python benchmarks/bench.py --skip-app --json out.json

Everything runs in one process (the app in a child process), so the figures
are ratios taken side by side under the same machine load. Two models are
measured: the default bundle (models/default, or --model) and an untrained
``keras.applications.Xception`` at 299x299 with 4 softmax outputs.

Timing method: warm-up calls first, then the median of repeated calls timed
with ``time.perf_counter``; the two sides of a ratio are called in turn, in
ABBA order, so that machine noise (and any drift) hits both sides equally.
Times are seconds unless a row says otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))  # `python benchmarks/bench.py` puts only benchmarks/ on the path

from benchmarks.app_bench import run_app_metrics  # noqa: E402
from benchmarks.engine_bench import engine_metrics, load_models, test_image  # noqa: E402
from benchmarks.timing import QUICK, Counts, Report, environment, print_table, write_json  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="bundle to measure as the default model (default: models/default)")
    p.add_argument("--skip-app", action="store_true", help="engine metrics only, no app process")
    p.add_argument("--skip-xception", action="store_true", help="only the default bundle")
    p.add_argument("--quick", action="store_true", help="smoke run: small counts, numbers not meaningful")
    p.add_argument("--repeats", type=int, help="timed calls per side of an engine ratio (default 20)")
    p.add_argument("--requests", type=int, help="app requests for the memory growth (default 500)")
    p.add_argument("--latency-requests", type=int,
                   help="app requests per latency scenario, 1 and 8 clients (default 40)")
    p.add_argument("--json", default=str(HERE / "results.json"), help="where to write the results")
    return p.parse_args(argv)


def counts_from(args) -> Counts:
    counts = Counts(**asdict(QUICK)) if args.quick else Counts()
    for name in ("repeats", "requests", "latency_requests"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise SystemExit(f"error: --{name.replace('_', '-')} must be at least 1")
            setattr(counts, name, value)
    return counts


def main(argv=None) -> int:
    args = parse_args(argv)
    counts = counts_from(args)
    report = Report()
    env = environment()
    print(f"{env['date']}  {env['cpu']}  {env['cpu_count']} CPUs  "
          + "  ".join(f"{k} {v}" for k, v in env["versions"].items()), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        image = test_image(work)
        report.details["image"] = str(image)
        models = load_models(args, report)
        for name, bundle, _ in models:
            engine_metrics(name, bundle, image, counts, report)
        if args.skip_app:
            report.note("app metrics skipped (--skip-app)")
        elif models:
            run_app_metrics(models, image, work, counts, report)
    print_table(report.rows)
    for text in report.notes:
        print(f"note: {text}")
    write_json(Path(args.json), env, counts, args, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
