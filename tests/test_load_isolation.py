"""Many clients at once: no failures, no crosstalk between requests, steady memory.

The app runs in its own process (so that its RSS is the server's alone) and
``LOAD_WORKERS`` gradio_client workers each send ``LOAD_REQUESTS`` requests at the
same time, each with one of a set of distinct synthetic images and a class to
explain. Every answer must equal the offline prediction for *its own* image and
class (probabilities to 1e-5, same original size, same explained class); with
one queue and one model, a mix-up between concurrent requests would show here.
In the middle, one worker uploads a broken file: it must get its error and the
others must not notice.

Counts: 8 workers x 6 requests by default (CI time); ``LOAD_FULL=1`` runs
8 x 25; ``LOAD_WORKERS`` / ``LOAD_REQUESTS`` set them directly. The server's
RSS over the run is written to ``tests/artifacts/load-report.json``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app as app_module
from benchmarks.app_process import AppProcess, RssSampler, child_env, free_port
from explain.bundle import load_bundle
from explain.pipeline import Explainer
from synthetic import LABELS, write_png, write_tiny_bundle

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FULL = os.environ.get("LOAD_FULL") == "1"
WORKERS = int(os.environ.get("LOAD_WORKERS", 8))
REQUESTS = int(os.environ.get("LOAD_REQUESTS", 25 if FULL else 6))
N_IMAGES = 12
CLASS_CHOICES = [app_module.PREDICTED] + LABELS
# Growth of the server's RSS over the second of two equal rounds of load: the
# first round fills TF's, the allocator's and the HTTP stack's caches, so a
# steady server stays flat in the second; a leak of one decoded slice or its
# overlay per request (about 1 MB each, WORKERS * REQUESTS requests) exceeds it.
MAX_RSS_GROWTH_MB = 30
READY_TIMEOUT_S = 120
MIB = 2**20

SERVER = """
import sys
sys.path.insert(0, sys.argv[3])
import app
from explain.bundle import load_bundle
demo = app.build_demo(load_bundle(sys.argv[1]), examples=[])
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[2]), quiet=True)
"""


def make_images(folder: Path) -> list[Path]:
    """Distinct images: different sizes, noise seeds, and a bright disk in some."""
    paths = []
    for i in range(N_IMAGES):
        rng = np.random.default_rng(100 + i)
        h, w = 32 + 4 * i, 40 + 3 * (i % 5)
        image = rng.integers(0, 120, (h, w), dtype=np.uint8)
        if i % 3:
            yy, xx = np.mgrid[:h, :w]
            cy, cx = rng.integers(6, h - 6), rng.integers(6, w - 6)
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] = 255
        paths.append(write_png(folder / f"load_{i:02d}.png", image))
    return paths


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app in a child process, answering HTTP; yields (AppProcess, folder, bundle path)."""
    folder = tmp_path_factory.mktemp("load")
    bundle_dir = write_tiny_bundle(folder / "bundle")
    port = free_port()
    command = [sys.executable, "-c", SERVER, str(bundle_dir), str(port), str(ROOT)]
    with AppProcess(command, port, folder / "server.log", child_env(), cwd=folder) as app:
        app.wait_http(READY_TIMEOUT_S)
        yield app, folder, bundle_dir


def confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def check_answer(answer, expected: dict, image: Path) -> list[str]:
    """Differences between one /predict answer and the offline result for ``image`` (empty: equal)."""
    label, gallery, note = answer
    problems = []
    got = confidences(label)
    if set(got) != set(expected["probabilities"]):
        return [f"{image.name}: classes {sorted(got)}"]
    worst = max(abs(got[k] - v) for k, v in expected["probabilities"].items())
    if worst > 1e-5:
        problems.append(f"{image.name}: probabilities differ by {worst:.2e}")
    with Image.open(gallery[0]["image"]) as original:
        if original.size != expected["size"]:
            problems.append(f"{image.name}: original is {original.size}, expected {expected['size']}")
    if f"Heatmap of:** {expected['explained']}" not in note:
        problems.append(f"{image.name}: note explains another class: {note!r}")
    return problems


def test_concurrent_clients_get_their_own_answers(server):
    from gradio_client import Client, handle_file

    app, folder, bundle_dir = server
    url = app.url
    images = make_images(folder)
    explainer = Explainer(load_bundle(bundle_dir))
    expected = {}
    for path in images:
        for choice in CLASS_CHOICES:
            exp = explainer.explain(str(path), None if choice == app_module.PREDICTED else choice)
            with Image.open(path) as im:
                size = im.size
            expected[path, choice] = {"probabilities": exp.probabilities, "size": size,
                                      "explained": exp.explained}
    # The test can only see a mix-up if different images give different answers.
    vectors = np.array([[expected[p, app_module.PREDICTED]["probabilities"][k] for k in LABELS] for p in images])
    gaps = np.abs(vectors[:, None] - vectors[None]).max(-1) + np.eye(len(images))
    assert gaps.min() > 1e-4, "synthetic images too alike to detect crosstalk"

    broken = folder / "broken.png"
    broken.write_text("not a picture\n" * 50)

    # Warm-up: the first request builds the Grad-CAM graph; memory is measured after it.
    warm = Client(url, verbose=False)
    for path in images[:3]:
        warm.predict(handle_file(str(path)), app_module.PREDICTED, 0.4, api_name="/predict")
    rss_start = app.rss() / MIB

    start = threading.Barrier(WORKERS)
    bad_upload_result: list[str] = []

    def worker(w: int) -> tuple[int, list[str]]:
        client = Client(url, verbose=False)
        problems, done = [], 0
        start.wait()
        for r in range(REQUESTS):
            k = w * REQUESTS + r
            path = images[(k * 5 + w) % len(images)]
            choice = CLASS_CHOICES[k % len(CLASS_CHOICES)]
            opacity = round(0.1 + 0.8 * (k % 9) / 8, 2)
            if w == 0 and r == REQUESTS // 2:
                try:
                    client.predict(handle_file(str(broken)), app_module.PREDICTED, 0.4, api_name="/predict")
                    bad_upload_result.append("accepted")
                except Exception as exc:  # gradio_client raises AppError with the app's message
                    bad_upload_result.append(str(exc))
            try:
                answer = client.predict(handle_file(str(path)), choice, opacity, api_name="/predict")
                # An unreadable downloaded picture counts as a failure of this request.
                found = check_answer(answer, expected[path, choice], path)
            except Exception as exc:
                problems.append(f"{path.name} ({choice}): {type(exc).__name__}: {exc}")
                continue
            problems += found
            done += 1
        return done, problems

    def load_round():
        with ThreadPoolExecutor(WORKERS) as pool:
            return list(pool.map(worker, range(WORKERS)))

    first = load_round()
    rss_first = app.rss() / MIB
    sampler = RssSampler(app.proc.pid)
    sampler.start()
    t0 = time.monotonic()
    results = load_round()
    elapsed = time.monotonic() - t0
    samples = [rss / MIB for rss in sampler.stop()]
    rss_end = app.rss() / MIB

    problems = [p for _, ps in first + results for p in ps]
    done = sum(d for d, _ in results)
    report = {
        "workers": WORKERS, "requests_per_worker": REQUESTS, "answered": done, "problems": problems,
        "seconds": round(elapsed, 1), "requests_per_second": round(done / elapsed, 2),
        "rss_mb_after_warmup": round(rss_start, 1), "rss_mb_after_first_round": round(rss_first, 1),
        "rss_mb_peak": round(max(samples + [rss_end]), 1), "rss_mb_end": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_first, 1), "bad_upload": bad_upload_result,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load-report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))

    assert not problems, problems[:10]
    assert done == WORKERS * REQUESTS
    assert len(bad_upload_result) == 2 and all("not an image" in r for r in bad_upload_result), bad_upload_result
    assert rss_end - rss_first < MAX_RSS_GROWTH_MB, report
