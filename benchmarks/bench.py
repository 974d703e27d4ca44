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
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))

LABELS = ["glioma", "meningioma", "notumor", "pituitary"]
XCEPTION_SIZE = 299
SLICE_SIZE = 224  # the dataset's slices are 224x224
THROUGHPUT_BATCHES = (1, 4, 16)
CLIENTS = 8
PREDICTED = "Predicted class"  # app.PREDICTED; not imported, app.py imports gradio
IMPORT_CMD = "import gradio, tensorflow, keras; import explain.pipeline"
MB = 1e6


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


# -- timing helpers -----------------------------------------------------------

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


# -- models and inputs ----------------------------------------------------------

def xception_bundle():
    """Untrained Xception 299x299x3 with a 4-way softmax head, as a Bundle (xception preprocessing)."""
    import keras

    from explain.bundle import from_model

    keras.utils.set_random_seed(0)
    model = keras.applications.Xception(weights=None, input_shape=(XCEPTION_SIZE, XCEPTION_SIZE, 3),
                                        classes=len(LABELS), classifier_activation="softmax")
    return from_model(model, labels=LABELS, preprocessing="xception",
                      metadata={"note": "untrained Xception for benchmarking"})


def test_image(folder: Path) -> Path:
    """The first example slice if examples/ has one, else a synthetic grey PNG of the same size.

    The dataset's slices are 224x224 greyscale JPEGs; the size matters for the
    per-request decode, rendering and PNG work, so the fallback matches it.
    """
    images = sorted((ROOT / "examples").glob("*.jpg"))
    if images:
        return images[0]
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SLICE_SIZE, :SLICE_SIZE]
    centre, radius = SLICE_SIZE / 2, SLICE_SIZE * 0.4
    head = ((yy - centre) ** 2 + ((xx - centre) * 1.2) ** 2) <= radius**2  # skull-like ellipse
    noise = rng.normal(0, 25, head.shape)
    pixels = np.where(head, 90 + noise, 5 + noise / 8)
    path = folder / "synthetic_slice.png"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


# -- engine measurements (in this process) ------------------------------------------------

def engine_metrics(name: str, bundle, image: Path, counts: Counts, report: Report) -> None:
    """Metrics 1-4 and Score-CAM on the compiled engine, batch of the one test image."""
    from explain.pipeline import Explainer

    explainer = Explainer(bundle)
    engine = explainer.engine()
    _, x = explainer.load(image)
    batch = x[None]
    print(f"[{name}] engine: input {engine.input_shape}, layer {engine.target}, map {engine.map_shape}",
          flush=True)

    times = interleaved({"cam": lambda: engine.explain(batch), "forward": lambda: engine.predict(batch)},
                        counts.repeats, counts.warmup)
    report.add(ratio_row(name, "predict+Grad-CAM / forward pass (batch 1)", times, "cam", "forward",
                         1.10, at_most=True))
    keras_io_ratio(name, bundle.model, engine, batch, counts, report)
    times = interleaved({"all": lambda: engine.explain_all(batch), "one": lambda: engine.explain(batch)},
                        counts.repeats, counts.warmup)
    report.add(ratio_row(name, f"all {engine.num_classes} class maps / one map", times, "all", "one",
                         1.15, at_most=True))
    throughput(name, engine, batch, counts, report)
    request_work(name, explainer, image, counts, report)
    scorecam_ratio(name, engine, batch, counts, report)


def keras_io_ratio(name, model, engine, batch, counts: Counts, report: Report) -> None:
    """Metric 2: the keras.io tutorial's make_gradcam_heatmap / our engine, same model and image."""
    from keras_io_gradcam import make_gradcam_heatmap

    # The tutorial calls the rebuilt model on a bare tensor where Keras expects a
    # list of inputs; Keras warns about it on every call, which would flood the output.
    warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
    if len(engine.target.layers) > 1:
        report.note(f"{name}: keras.io comparison skipped, target {engine.target} is in a nested "
                    "model (the tutorial's model.get_layer cannot reach it)")
        return
    layer = engine.target.layer.name
    times = interleaved({"keras_io": lambda: make_gradcam_heatmap(batch, model, layer),
                         "ours": lambda: engine.explain(batch)}, counts.repeats, counts.warmup)
    report.add(ratio_row(name, "keras.io Grad-CAM / ours (batch 1)", times, "keras_io", "ours",
                         6.0, at_most=False))


def throughput(name, engine, batch, counts: Counts, report: Report) -> None:
    """Metric 4: images per second of engine.explain at several batch sizes (no target)."""
    batches = {b: np.repeat(batch, b, axis=0) for b in THROUGHPUT_BATCHES}
    funcs = {b: (lambda data=data: engine.explain(data)) for b, data in batches.items()}
    # Large batches cost seconds per call on 2 cores: fewer rounds, still a median.
    times = interleaved(funcs, max(3, counts.repeats // 4), max(1, counts.warmup // 2))
    for b, seconds in times.items():
        report.add(Row(name, f"throughput, batch {b}", b / seconds, "img/s",
                       note=f"{seconds * 1e3:.1f} ms per batch"))


def request_work(name, explainer, image: Path, counts: Counts, report: Report) -> None:
    """The app's per-request work done in-process, in phases (milliseconds, no target).

    Same steps as app.predict: Explainer.explain (decode, preprocess, engine,
    upsample), then heatmap and overlay rendering, then the three PNG encodes
    Gradio does for the gallery (PIL defaults, as gradio.processing_utils).
    Compared with the 1-client latency, it shows what the web layer adds.
    """
    import io

    from PIL import Image

    def encode(array) -> int:
        with io.BytesIO() as buf:
            Image.fromarray(array).save(buf, "png")
            return buf.tell()

    phases: dict[str, list[float]] = {"explain": [], "render": [], "png": []}
    for i in range(counts.warmup + counts.repeats):
        t0 = time.perf_counter()
        exp = explainer.explain(image)
        t1 = time.perf_counter()
        pictures = [exp.image, exp.heatmap_rgb(), exp.overlay(0.4)]
        t2 = time.perf_counter()
        for picture in pictures:
            encode(picture)
        t3 = time.perf_counter()
        if i >= counts.warmup:
            for key, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
                phases[key].append(seconds)
    medians = {key: statistics.median(v) * 1e3 for key, v in phases.items()}
    h, w = exp.image.shape[:2]
    report.add(Row(name, "in-process work of one app request", sum(medians.values()), "ms",
                   note=", ".join(f"{k} {v:.1f} ms" for k, v in medians.items()) + f"; image {w}x{h}"))


def scorecam_ratio(name, engine, batch, counts: Counts, report: Report) -> None:
    """Score-CAM time / Grad-CAM time, if the method is registered (one forward per channel)."""
    from explain import methods

    if "scorecam" not in getattr(methods, "METHODS", {}):
        report.note(f"{name}: Score-CAM not registered in explain.methods.METHODS, skipped")
        return
    channels = int(engine.target.layer.output.shape[-1])
    cap = counts.scorecam_channels if channels > counts.scorecam_channels else None
    scorecam = methods.METHODS["scorecam"](max_channels=cap)
    # Warm up the activation probe with a cheap run (2 channels). The measured
    # instance still traces its own small mask function on its first call:
    # well under 1% of a Score-CAM run, so no full-cost warm-up is spent on it.
    methods.compute_maps(engine, batch, method=methods.METHODS["scorecam"](max_channels=2))

    def gradcam():
        for _ in range(5):  # one Grad-CAM call is short: average 5 to steady the ratio's denominator
            engine.explain(batch)

    times = interleaved({"scorecam": lambda: methods.compute_maps(engine, batch, method=scorecam),
                         "gradcam": gradcam}, counts.scorecam_repeats, 0)
    times["gradcam"] /= 5
    row = ratio_row(name, "Score-CAM / Grad-CAM (batch 1)", times, "scorecam", "gradcam")
    if cap:
        # Cost is one forward pass per scored channel, so the full method scales by channels / cap.
        scored = (f"{cap} of {channels} channels (max_channels); all channels would be "
                  f"~{row.value * channels / cap:.0f} x")
    else:
        scored = f"all {channels} channels"
    row.note = f"{row.note}; {scored}"
    report.add(row)


# -- app measurements (child process) ---------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def import_seconds(counts: Counts) -> float:
    """Median wall seconds of a fresh `python -c "import gradio, tensorflow, keras; ..."`.

    One untimed run first, so that the timed ones see the same warm file cache
    as the app start that follows.
    """
    def once() -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORT_CMD], cwd=ROOT, env=child_env(),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(max(1, counts.import_repeats)))


def child_env(temp: Path | None = None) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1",
               GRADIO_ANALYTICS_ENABLED="False")  # no network calls from an offline benchmark
    env.pop("BRAIN_MRI_AUTH", None)  # the benchmark client does not log in
    if temp is not None:
        env["GRADIO_TEMP_DIR"] = str(temp)  # uploads and outputs of thousands of requests, removed after
    return env


class AppServer:
    """``python app.py --model BUNDLE --port P`` as a child process, stopped on exit."""

    def __init__(self, bundle_dir: Path, work: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = work / "app.log"
        self.work = work
        self.bundle_dir = bundle_dir

    def __enter__(self):
        self.log = open(self.log_path, "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--model", str(self.bundle_dir), "--port", str(self.port)],
            cwd=ROOT, env=child_env(self.work / "gradio"), stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_http(self, timeout: float) -> float:
        """Seconds from process start until the web server answers."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"app did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def rss(self) -> float:
        """Resident memory of the app process, bytes."""
        import psutil

        return float(psutil.Process(self.proc.pid).memory_info().rss)


def make_client(url: str, downloads: Path | bool):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False,
                  download_files=str(downloads) if downloads else False)


def call_predict(client, image: Path) -> None:
    from gradio_client import handle_file

    client.predict(handle_file(str(image)), PREDICTED, 0.4, api_name="/predict")


def request_images(image: Path, folder: Path, count: int = 64) -> list[Path]:
    """``count`` PNG files with the pixels of ``image``, each with other bytes.

    The app keeps its last few explanations by file content (so the opacity
    slider only re-blends); requests that cycle through more distinct files
    than it keeps each run the whole pipeline, as a new upload does.
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(image) as src:
        pixels = src.convert("RGB") if src.mode not in ("L", "RGB") else src.copy()
    paths = []
    for i in range(count):
        info = PngInfo()
        info.add_text("request", str(i))
        path = folder / f"request_{i:03d}.png"
        pixels.save(path, pnginfo=info)
        paths.append(path)
    return paths


def timed_requests(client, images: list[Path], n: int, errors: list[str], offset: int = 0) -> list[float]:
    """Seconds of each of ``n`` sequential /predict calls, cycling through ``images`` from ``offset``.

    Failures go to ``errors``, not timed.
    """
    latencies = []
    for i in range(n):
        start = time.perf_counter()
        try:
            call_predict(client, images[(offset + i) % len(images)])
        except Exception as exc:  # any failure counts: the app must answer every request
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        latencies.append(time.perf_counter() - start)
    return latencies


def concurrent_requests(url: str, images: list[Path], clients: int, total: int, downloads: Path):
    """``total`` requests split over ``clients`` threads, each with its own Client.

    Returns (latencies in seconds, error messages). Clients connect first and
    start together, so the queue really holds ``clients`` requests at once.
    """
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)
    share = [total // clients + (i < total % clients) for i in range(clients)]
    offsets = [sum(share[:i]) for i in range(clients)]  # no two requests send the same file

    def worker(index: int, n: int) -> None:
        mine_err: list[str] = []
        try:
            client = make_client(url, downloads / f"client{index}")
        except Exception as exc:
            mine_err.append(f"connect: {exc}")
            client = None
        start.wait()
        mine = timed_requests(client, images, n, mine_err, offsets[index]) if client else []
        with lock:
            latencies.extend(mine)
            errors.extend(mine_err)

    threads = [threading.Thread(target=worker, args=(i, n)) for i, n in enumerate(share)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


def app_metrics(name: str, bundle_dir: Path, image: Path, imports: float, counts: Counts,
                report: Report) -> None:
    """Metrics 5-7 on one freshly started app process."""
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        work = Path(tmp)
        downloads = work / "downloads"
        with AppServer(bundle_dir, work) as app:
            http_s = app.wait_http(timeout=300)
            call_predict(make_client(app.url, downloads), image)
            cold = time.perf_counter() - app.started
            report.add(Row(name, "app cold start to first /predict", cold, "s", "<= 20",
                           cold <= 20, f"web server up at {http_s:.1f} s"))
            report.add(Row(name, "  share spent importing", imports / cold, "%",
                           note=f"imports {imports:.1f} s (separate subprocess)"))
            errors: dict[str, list[str]] = {"warm-up": [], "latency": [], "memory": []}
            images = request_images(image, work / "requests")
            timed_requests(make_client(app.url, downloads), images, counts.app_warmup, errors["warm-up"])
            latency_metrics(name, app, image, images, downloads, counts, errors["latency"], report)
            memory_metrics(name, app, images, counts, errors["memory"], report)
    every = [e for phase in errors.values() for e in phase]
    note = ", ".join(f"{phase} {len(e)}" for phase, e in errors.items())
    if every:
        note += f"; first: {every[0][:110]}"
    report.add(Row(name, "request errors (all app requests)", len(every), "", "0", not every, note))
    report.details.setdefault(name, {})["errors"] = errors


def latency_metrics(name, app: AppServer, image, images, downloads, counts: Counts, errors, report) -> None:
    """Metric 7: p50/p95 end-to-end latency with 1 client, then 8 concurrent clients.

    Every request sends a file the app has not explained lately (``images``);
    one more row times the same image sent again, which re-blends the stored
    explanation (what the opacity slider does).
    """
    client = make_client(app.url, downloads)
    single = timed_requests(client, images, counts.latency_requests, errors)
    again = timed_requests(client, [image], counts.latency_requests, errors)
    many, many_errors = concurrent_requests(app.url, images, CLIENTS, counts.latency_requests, downloads)
    errors.extend(many_errors)
    if not single or not many:
        report.note(f"{name}: latency not measured, every request failed")
        return
    p50_1, p95_1 = np.percentile(single, [50, 95])
    p50_n, p95_n = np.percentile(many, [50, 95])
    # The app runs one request at a time (concurrency_limit=1), so with 8 waiting
    # a request should take about 8 service times, plus at most 25% overhead.
    limit = 1.25 * CLIENTS * p50_1
    report.add(Row(name, "latency p50, 1 client", p50_1 * 1e3, "ms", note=f"n={len(single)}"))
    report.add(Row(name, "latency p95, 1 client", p95_1 * 1e3, "ms"))
    if again:
        report.add(Row(name, "latency p50, 1 client, same image again", float(np.percentile(again, 50)) * 1e3,
                       "ms", note="stored explanation re-blended, model not run"))
    report.add(Row(name, f"latency p50, {CLIENTS} clients", p50_n * 1e3, "ms", note=f"n={len(many)}"))
    report.add(Row(name, f"latency p95, {CLIENTS} clients", p95_n * 1e3, "ms",
                   f"<= {limit * 1e3:.0f} (1.25 x {CLIENTS} x p50)", p95_n <= limit))
    report.details.setdefault(name, {})["latency_s"] = {"single": single, f"{CLIENTS}_clients": many}


def memory_metrics(name, app: AppServer, images, counts: Counts, errors, report) -> None:
    """Metric 6: RSS growth of the app process over ``counts.requests`` sequential requests."""
    # No downloads here: the memory of interest is the server's, and saving
    # thousands of PNGs on the client side would only slow the run down.
    client = make_client(app.url, False)
    timed_requests(client, images, 2, errors)
    samples = [(0, app.rss())]
    step = max(1, counts.requests // 10)
    done = 0
    while done < counts.requests:
        n = min(step, counts.requests - done)
        timed_requests(client, images, n, errors, offset=done)
        done += n
        samples.append((done, app.rss()))
    growth = (samples[-1][1] - samples[0][1]) / MB
    report.add(Row(name, f"app RSS growth over {counts.requests} requests", growth, "MB", "< 30",
                   growth < 30, f"{samples[0][1] / MB:.0f} -> {samples[-1][1] / MB:.0f} MB, app process"))
    report.details.setdefault(name, {})["rss_mb"] = [(n, rss / MB) for n, rss in samples]


# -- output ----------------------------------------------------------------------

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


# -- main -------------------------------------------------------------------------

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


def load_models(args, report: Report) -> list[tuple[str, object, Path | None]]:
    """(name, bundle, bundle folder or None if in memory) for each model to measure."""
    from explain.bundle import default_bundle_path, load_bundle

    models = []
    path = Path(args.model) if args.model else default_bundle_path()
    if args.model or (path / "bundle.json").is_file():
        bundle = load_bundle(path)  # an explicit --model that fails to load is an error
        models.append((path.name or "default", bundle, path))
        print(bundle.describe(), flush=True)
    else:
        report.note(f"no default bundle at {path}: default model skipped")
    if not args.skip_xception:
        models.append(("xception", xception_bundle(), None))
    return models


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


def run_app_metrics(models, image: Path, work: Path, counts: Counts, report: Report) -> None:
    from explain.bundle import save_bundle

    imports = import_seconds(counts)
    print(f"imports alone: {imports:.1f} s", flush=True)
    for name, bundle, folder in models:
        if folder is None:
            folder = save_bundle(bundle, work / f"{name}-bundle")
        try:
            app_metrics(name, folder, image, imports, counts, report)
        except Exception as exc:  # a broken app start is a result to report, not a crash of the run
            report.note(f"{name}: app metrics failed: {type(exc).__name__}: {exc}")


def write_json(path: Path, env: dict, counts: Counts, args, report: Report) -> None:
    payload = {**env, "quick": args.quick, "counts": asdict(counts),
               "rows": [asdict(r) for r in report.rows], "notes": report.notes, "details": report.details}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
