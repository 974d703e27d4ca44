"""Time from an upload in a real browser to the heatmap on screen, against the API round trip.

    python benchmarks/browser_latency.py [--model BUNDLE] [--n 10] [--json OUT]

The app runs as ``python app.py`` in a child process; headless Chromium
(Playwright, /usr/bin/chromium) drops a slice into the image box and waits
until the overlay of *that* request is decoded on the page (the note names the
file's prediction, the slider and gallery images are loaded). The API side
sends the same files through ``gradio_client`` ``/predict``. Each side uses
files the app has not seen (the stored explanations would hide the model
otherwise), alternating browser and API per repetition. Prints medians and
their ratio (target: browser <= 1.5 x API).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.app_bench import call_predict, make_client, request_images  # noqa: E402
from benchmarks.app_process import AppServer  # noqa: E402
from benchmarks.engine_bench import test_image  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TARGET = 1.5


def browser_seconds(page, path: Path) -> float:
    """Seconds from choosing ``path`` in the image box to its result shown (slider + gallery loaded)."""
    before = page.evaluate("() => [...document.querySelectorAll('#gallery img, #slider img')].map(i => i.src)")
    clear = page.locator("#image-input").get_by_role("button", name="Clear")
    if clear.count():
        clear.first.click()
    start = time.perf_counter()
    page.locator("#image-input input[type=file]").set_input_files(str(path))
    # Done when the gallery's 3 and the slider's 2 images are new files (every request
    # writes a new folder) and decoded by the browser.
    page.wait_for_function(
        "old => { const g = [...document.querySelectorAll('#gallery img, #slider img')];"
        " return g.length >= 5 && g.every(i => !old.includes(i.src) && i.complete && i.naturalWidth > 0); }",
        arg=before, timeout=120_000)
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--json", help="write the raw timings here")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        image = test_image(work)
        files = request_images(image, work / "files", count=2 * args.n + 4)
        with AppServer(Path(args.model), work) as app:
            app.wait_http(120)
            client = make_client(app.url, work / "downloads")
            call_predict(client, files[-1])  # warm-up: the first request builds the Grad-CAM graph
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(app.url)
                page.locator("#image-input").wait_for()
                browser_seconds(page, files[-2])  # warm-up of the page's own code paths
                ui, api = [], []
                for k in range(args.n):
                    ui.append(browser_seconds(page, files[2 * k]))
                    t = time.perf_counter()
                    call_predict(client, files[2 * k + 1])
                    api.append(time.perf_counter() - t)
                browser.close()
    ratio = statistics.median(ui) / statistics.median(api)
    print(f"upload to heatmap in the browser: median {1000 * statistics.median(ui):.0f} ms (n={args.n})")
    print(f"API round trip (/predict):        median {1000 * statistics.median(api):.0f} ms")
    print(f"browser / API: {ratio:.2f}x (target <= {TARGET})  {'PASS' if ratio <= TARGET else 'FAIL'}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_count": os.cpu_count(), "n": args.n,
            "browser_median_s": statistics.median(ui), "api_median_s": statistics.median(api), "ratio": ratio,
            "target": TARGET, "browser_s": ui, "api_s": api}, indent=1) + "\n")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
