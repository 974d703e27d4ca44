"""The app against Gradio's own floor, side by side in one run: requests/s and p50 at 8 clients.

    python benchmarks/app_vs_floor.py [--requests 160] [--clients 8] [--rounds 2]
                                      [--model BUNDLE] [--out benchmarks/results/app_vs_floor.txt]

The floor is a do-nothing Gradio app (an image path in, one text out, Gradio's
default queue). The app is ``python app.py --model BUNDLE``. Each runs in a
child process on localhost (benchmarks/app_process.py); ``--clients`` threads,
each with its own ``gradio_client.Client``, send ``--requests`` requests in all,
every one a PNG the app has not seen lately (so the model runs every time), and
download every file the answer names, as an API user does. Floor and app take
turns for ``--rounds`` rounds (floor, app, floor, app, ...), so machine load hits
both alike; each side's figures are the medians over its rounds.
Target: app / floor requests per second >= 0.70 (issue 23).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.app_bench import request_images  # noqa: E402
from benchmarks.app_process import AppProcess, AppServer, child_env, free_port  # noqa: E402
from benchmarks.timing import write_report  # noqa: E402

TARGET = 0.70
PREDICTED = "Predicted class"  # app.PREDICTED; not imported, app.py imports gradio
FLOOR = """
import sys
import gradio as gr

def nothing(path):
    return "ok"

with gr.Blocks() as demo:
    image = gr.Image(type="filepath")
    text = gr.Textbox()
    gr.Button().click(nothing, image, text, api_name="predict")
demo.queue()
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), quiet=True)
"""


def run_clients(url: str, images: list[Path], clients: int, total: int, downloads: Path | None, call) -> dict:
    """``total`` requests over ``clients`` threads started together; returns requests/s, p50, errors."""
    from gradio_client import Client

    latencies, errors = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    share = [total // clients + (i < total % clients) for i in range(clients)]

    def worker(index: int, n: int) -> None:
        client = Client(url, verbose=False, analytics_enabled=False,
                        download_files=str(downloads / str(index)) if downloads else False)
        call(client, images[index])  # warm: connection, first upload
        barrier.wait()
        mine, failed = [], []
        for r in range(n):
            start = time.perf_counter()
            try:
                call(client, images[(index * 97 + r) % len(images)])
                mine.append(time.perf_counter() - start)
            except Exception as exc:  # every request must be answered; a failure is reported
                failed.append(f"{type(exc).__name__}: {exc}")
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=worker, args=(i, n)) for i, n in enumerate(share)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"rps": len(latencies) / wall, "p50": statistics.median(latencies), "errors": errors}


def call_floor(client, image: Path) -> None:
    from gradio_client import handle_file

    client.predict(handle_file(str(image)), api_name="/predict")


def call_app(client, image: Path) -> None:
    from gradio_client import handle_file

    client.predict(handle_file(str(image)), PREDICTED, 0.4, "gradcam", False, api_name="/predict")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=160)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--no-downloads", action="store_true",
                   help="clients fetch none of the answers' files (to see what serving them costs)")
    p.add_argument("--out", default=None, help="also write the report to this file")
    args = p.parse_args(argv)

    example = sorted((ROOT / "examples").glob("*.jpg"))[0]
    results = {"floor": [], "app": []}
    with tempfile.TemporaryDirectory(prefix="app-vs-floor-") as tmp:
        work = Path(tmp)
        images = request_images(example, work / "images", count=max(64, args.clients * 8))
        for k in range(args.rounds):
            port = free_port()
            floor_dir = work / f"floor{k}"
            floor_dir.mkdir()
            command = [sys.executable, "-c", FLOOR, str(port)]
            with AppProcess(command, port, floor_dir / "floor.log", child_env(floor_dir / "gradio")) as floor:
                floor.wait_http(120)
                results["floor"].append(run_clients(floor.url, images, args.clients, args.requests,
                                                    None if args.no_downloads else floor_dir / "downloads",
                                                    call_floor))
            app_dir = work / f"app{k}"
            app_dir.mkdir()
            with AppServer(Path(args.model), app_dir) as app:
                app.wait_http(300)
                results["app"].append(run_clients(app.url, images, args.clients, args.requests,
                                                  None if args.no_downloads else app_dir / "downloads", call_app))

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    ratio = median("app", "rps") / median("floor", "rps")
    command = "python benchmarks/app_vs_floor.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [command.strip(),
             f"{args.clients} concurrent gradio_client clients, {args.requests} requests per side per round, "
             f"{args.rounds} rounds (floor and app in turn), localhost; model {Path(args.model).name}, "
             f"image {example.name} (distinct bytes per request), "
             + ("no file downloaded" if args.no_downloads else "every answer's files downloaded"),
             "side   rounds_rps                  rps    p50_ms  errors"]
    for side in ("floor", "app"):
        rounds = " ".join(f"{r['rps']:.2f}" for r in results[side])
        errors = sum(len(r["errors"]) for r in results[side])
        lines.append(f"{side:5s}  {rounds:26s}  {median(side, 'rps'):5.2f}  {median(side, 'p50') * 1e3:6.0f}  {errors}")
    lines.append(f"app/floor requests/s: {ratio:.2f} (target >= {TARGET:.2f}: {'met' if ratio >= TARGET else 'NOT met'})")
    for side in ("floor", "app"):
        for r in results[side]:
            lines += [f"{side} error: {e}" for e in r["errors"][:3]]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
