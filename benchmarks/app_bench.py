"""App benchmarks, through a child process (benchmarks.app_process) and gradio_client: cold start
and its import share, RSS growth over many requests, latency with 1 and 8 clients, request errors.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.app_process import ROOT, AppServer, child_env
from benchmarks.timing import Counts, Report, Row

CLIENTS = 8
PREDICTED = "Predicted class"  # app.PREDICTED; not imported, app.py imports gradio
IMPORT_CMD = "import gradio, tensorflow, keras; import explain.pipeline"
MB = 1e6


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
