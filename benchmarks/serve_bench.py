"""Serving benchmark (issue 23, docs/serving.md): where the model runs and how requests reach it.

    nice -n 10 python -m benchmarks.serve_bench [--images 48] [--out benchmarks/results/serve_bench.json]

One run, every number side by side, on test-split slices of clean_split.csv
($BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri; the shipped examples otherwise):

* ``chunks``: images/s of ``Explainer.explain_batch`` (decoded images) per chunk size: the
  measurement behind explain.serving.batching.DEFAULT_CHUNK.
* ``batch_tab``: the batch tab's work (ui.handlers.Handlers.batch: expand the files, explain
  them in chunks, write the overlays and the CSV) against the model alone (explain_batch in
  chunks of 16 on the same files), images/s and the ratio (target >= 0.80).
* ``service``: straight to the model service from 1, 8 and 16 client threads, each sending
  decoded images: in-process (an Explainer in this process, every core), Ray Serve with 1 and 2
  replicas of one CPU each, batched (up to 16 per call) and unbatched (1). Requests/s,
  p50/p95 latency, CPU seconds per request of the replicas and of the caller.
* ``app``: the same through the app (``python app.py --backend ...`` in a child process,
  gradio_client's /predict from 1, 8 and 16 clients): requests/s, latency, the front's
  CPU per request (and the replicas' with Ray).
* ``sizing``: from those, on paper, the fronts and replicas that serve 100 requests/s.

Each point is one run (no repeats): on a shared 2-core machine the wall-clock numbers
are noisy; the CPU seconds per request are the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.app_process import AppProcess, child_env, free_port  # noqa: E402

CONCURRENCY = (1, 8, 16)
CHUNKS = (1, 4, 8, 16, 32)
#: Requests per point: at 1 client fewer (it is slow), enough at 8 and 16 to fill the batches.
REQUESTS = {1: 24, 8: 64, 16: 96}
APP_REQUESTS = {1: 16, 8: 48, 16: 64}
#: Ray configurations: (replicas, max batch size).
RAY_CONFIGS = ((1, 16), (1, 1), (2, 16), (2, 1))
#: Planning numbers for the sizing on paper.
TARGET_RPS, UTILISATION = 100, 0.7


def ray_label(replicas: int, batch: int) -> str:
    """The results key of a Ray configuration, e.g. ``ray_2r_batched``."""
    return f"ray_{replicas}r_{'batched' if batch > 1 else 'unbatched'}"


def test_images(n: int) -> list[Path]:
    try:
        from explain.evaluation.dataset import data_dir, read_split

        folder = data_dir()
        items = read_split(folder, "test")
        return [folder / items[int(i * len(items) / n)].path for i in range(n)]
    except FileNotFoundError:
        shipped = sorted((ROOT / "examples").glob("*.jpg"))
        return [shipped[i % len(shipped)] for i in range(n)]


def cpu_seconds(pids) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def replica_pids(root_pid: int | None = None) -> list[int]:
    """Processes of Serve replicas (``ray::ServeReplica:...``) on this machine, under ``root_pid`` if given."""
    import psutil

    found = []
    procs = psutil.Process(root_pid).children(recursive=True) if root_pid else psutil.process_iter()
    for p in procs:
        try:
            if "ServeReplica" in " ".join(p.cmdline()[:2]) or "ServeReplica" in p.name():
                found.append(p.pid)
        except psutil.Error:
            pass
    return found


def summary(latencies, seconds: float, n: int, errors: int = 0) -> dict:
    lat = sorted(latencies)
    return {"requests": n, "errors": errors, "seconds": round(seconds, 3), "per_s": round(n / seconds, 2),
            "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
            "p95_ms": round(1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else None}


def drive(call, items, clients: int) -> dict:
    """Run ``call(item)`` for every item from ``clients`` threads; throughput and latency."""
    latencies, errors = [], []

    def one(item):
        start = time.perf_counter()
        try:
            call(item)
        except Exception as exc:  # noqa: BLE001 - every failure counts
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, items))
    out = summary(latencies, time.perf_counter() - start, len(items), len(errors))
    if errors:
        out["first_error"] = errors[0][:200]
    return out


# -- model alone, chunks and the batch tab ---------------------------------------------------------
def bench_chunks(explainer, images, repeats: int = 3) -> dict:
    """Images/s per chunk size: the best of ``repeats`` passes over ``images`` (the least disturbed
    by other work on the machine), and the CPU milliseconds per image of that pass."""
    out = {}
    explainer.explain_batch(images[:16])  # warm-up
    for chunk in CHUNKS:
        explainer.explain_batch(images[:chunk])
        best = None
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(images), chunk):
                explainer.explain_batch(images[i:i + chunk])
            run = (len(images) / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / len(images))
            best = run if best is None or run[0] > best[0] else best
        out[str(chunk)] = {"per_s": round(best[0], 1), "cpu_ms_per_image": round(best[1], 2)}
        print(f"chunk {chunk:>2}: {out[str(chunk)]}", flush=True)
    return out


def bench_batch_tab(bundle, explainer, paths) -> dict:
    from ui.files import ResultFolders
    from ui.handlers import Handlers, Settings

    with tempfile.TemporaryDirectory() as tmp:
        handlers = Handlers(bundle, explainer, settings=Settings(max_batch=len(paths)),
                            files=ResultFolders(tmp, 3600))
        handlers.batch(paths[:4])
        explainer.explain_batch(paths[:16])
        model, tab = [], []
        for _ in range(2):  # ABAB: machine noise hits both sides
            start = time.perf_counter()
            for i in range(0, len(paths), 16):
                explainer.explain_batch(paths[i:i + 16])
            model.append(len(paths) / (time.perf_counter() - start))
            start = time.perf_counter()
            result = handlers.batch(paths)
            tab.append(len(paths) / (time.perf_counter() - start))
            assert all(r.error is None for r in result.rows)
        start = time.perf_counter()
        for p in paths:
            explainer.explain(p)
        one_by_one = len(paths) / (time.perf_counter() - start)
    out = {"images": len(paths), "model_alone_per_s": round(max(model), 1), "batch_tab_per_s": round(max(tab), 1),
           "one_at_a_time_per_s": round(one_by_one, 1)}
    out["ratio"] = round(out["batch_tab_per_s"] / out["model_alone_per_s"], 3)
    print(f"batch tab: {out}", flush=True)
    return out


# -- straight to the service -----------------------------------------------------------------------
def bench_service(backend, images, label: str, pids=None) -> dict:
    out = {}
    for clients in CONCURRENCY:
        n = REQUESTS[clients]
        items = [images[i % len(images)] for i in range(n)]
        drive(backend.explain, items[:clients * 2], clients)  # warm-up
        replicas = pids() if pids else []
        cpu_r, cpu_c = cpu_seconds(replicas), time.process_time()
        point = drive(backend.explain, items, clients)
        point["replica_cpu_ms_per_request"] = round(1000 * (cpu_seconds(replicas) - cpu_r) / n, 2) if replicas else None
        point["caller_cpu_ms_per_request"] = round(1000 * (time.process_time() - cpu_c) / n, 2)
        out[str(clients)] = point
        print(f"{label} x{clients}: {point}", flush=True)
    return out


def bench_ray_direct(images, model_options) -> dict:
    import ray
    from ray import serve

    from explain.serving import APP_NAME
    from explain.serving.ray_client import RayBackend

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out = {}
    try:
        for replicas, batch in RAY_CONFIGS:
            started = time.perf_counter()
            backend = RayBackend(replicas=replicas, num_cpus=1, max_batch_size=batch, model_options=model_options)
            label = ray_label(replicas, batch)
            print(f"{label}: started in {time.perf_counter() - started:.1f} s", flush=True)
            out[label] = bench_service(backend, images, label, pids=lambda: replica_pids(os.getpid()))
            out[label]["max_batch_size"] = batch
            out[label]["replicas"] = replicas
            serve.delete(APP_NAME)
    finally:
        serve.shutdown()
        ray.shutdown()
    return out


# -- through the app -------------------------------------------------------------------------------
def unique_copies(paths, count: int, folder: Path) -> list[Path]:
    """``count`` PNG files cycling through ``paths``, each with its own bytes (the app keeps recent
    results by file content: a repeated file would not reach the model)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        info = PngInfo()
        info.add_text("request", str(i))
        with Image.open(paths[i % len(paths)]) as im:
            target = folder / f"r{i:04d}.png"
            im.convert("L").save(target, pnginfo=info)
        out.append(target)
    return out


def bench_app(args_extra: list[str], label: str, paths, work: Path) -> dict:
    from benchmarks.app_bench import call_predict, make_client

    port = free_port()
    env = child_env(work / "gradio")
    command = [sys.executable, "app.py", "--port", str(port), *args_extra]
    out = {"command": "python app.py " + " ".join(args_extra)}
    with AppProcess(command, port, work / f"{label}.log", env, stop_timeout=30) as app:
        out["start_s"] = round(app.wait_http(600), 1)
        counter = iter(range(10**6))
        lock = threading.Lock()
        files = unique_copies(paths, sum(APP_REQUESTS.values()) + 64, work / "requests")
        clients = {}

        def call(_):
            with lock:
                k = next(counter)
            name = threading.current_thread().name
            if name not in clients:
                clients[name] = make_client(app.url, False)
            call_predict(clients[name], files[k])

        for n_clients in CONCURRENCY:
            n = APP_REQUESTS[n_clients]
            drive(call, range(n_clients * 2), n_clients)  # warm-up, and every thread's client made
            replicas = replica_pids(app.proc.pid)
            cpu_f, cpu_r = cpu_seconds([app.proc.pid]), cpu_seconds(replicas)
            point = drive(call, range(n), n_clients)
            point["front_cpu_ms_per_request"] = round(1000 * (cpu_seconds([app.proc.pid]) - cpu_f) / n, 2)
            point["replica_cpu_ms_per_request"] = (round(1000 * (cpu_seconds(replicas) - cpu_r) / n, 2)
                                                   if replicas else None)
            out[str(n_clients)] = point
            print(f"app {label} x{n_clients}: {point}", flush=True)
    return out


def sizing(result: dict) -> dict:
    """Fronts and replicas for TARGET_RPS, from the CPU seconds per request measured through the app
    with 2 batched replicas at 16 clients."""
    point = result["app"]["ray_2r_batched"]["16"]
    front_ms, replica_ms = point["front_cpu_ms_per_request"], point["replica_cpu_ms_per_request"]
    front_cores = TARGET_RPS * front_ms / 1000 / UTILISATION
    replica_cores = TARGET_RPS * replica_ms / 1000 / UTILISATION
    return {"target_rps": TARGET_RPS, "utilisation": UTILISATION, "front_cpu_ms": front_ms, "replica_cpu_ms": replica_ms,
            "front_cores": round(front_cores, 1), "replica_cores": round(replica_cores, 1),
            "fronts_of_1_core": int(np.ceil(front_cores)), "replicas_of_1_core": int(np.ceil(replica_cores))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_bench.json"))
    p.add_argument("--skip-app", action="store_true", help="only the in-process and straight-to-service parts")
    args = p.parse_args(argv)

    from explain.quiet import import_tensorflow

    import_tensorflow()
    from explain.bundle import default_bundle_path, load_bundle
    from explain.io.decode import decode_image
    from explain.pipeline import Explainer

    paths = test_images(args.images)
    images = [decode_image(p) for p in paths]
    bundle = load_bundle(default_bundle_path())
    explainer = Explainer(bundle)
    given = " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": f"nice -n 10 python -m benchmarks.serve_bench {given}".strip(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "images": len(paths),
              "model": bundle.describe()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        out.write_text(json.dumps(result, indent=1) + "\n")

    result["chunks"] = bench_chunks(explainer, images)
    result["batch_tab"] = bench_batch_tab(bundle, explainer, [str(p) for p in paths])
    result["service"] = {"in_process": bench_service(explainer, images, "in_process")}
    save()
    del explainer
    result["service"].update(bench_ray_direct(images, {"model": str(default_bundle_path())}))
    save()
    s = result["service"]
    one, two = s["ray_1r_batched"]["16"], s["ray_2r_batched"]["16"]
    result["scaling_2r_vs_1r"] = round(two["per_s"] / one["per_s"], 2)
    # What the cores allow: 2 cores at the 2-replica CPU cost per request, against 1 core at the 1-replica cost.
    result["capacity_2r_vs_1r"] = round(2 * one["replica_cpu_ms_per_request"] / two["replica_cpu_ms_per_request"], 2)
    if not args.skip_app:
        result["app"] = {}
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for label, extra in (("in_process", ["--backend", "local"]),
                                 *((ray_label(r, b), ["--backend", "ray", "--replicas", str(r), "--ray-batch", str(b)])
                                   for r, b in RAY_CONFIGS)):
                result["app"][label] = bench_app(extra, label, paths, work)
                save()
        result["sizing"] = sizing(result)
    save()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
