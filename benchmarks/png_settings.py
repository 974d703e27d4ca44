"""Which zlib level the app's PNGs use (ui/files.py PNG_COMPRESS_LEVEL): encode time and size per level.

    python benchmarks/png_settings.py [--model BUNDLE] [--repeats 20] [--out benchmarks/results/png_settings.txt]

One request's three pictures (original, heatmap, overlay) of each shipped example,
explained by the default model; each level's median encode time of the three and
their total size. The app serves these files on the same machine or a LAN, where
a few kB more cost far less than the encoder's milliseconds.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.timing import write_report  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", default=None, help="also write the table to this file")
    args = p.parse_args(argv)

    from explain.quiet import import_tensorflow

    import_tensorflow(quiet=True)
    from PIL import Image

    from explain.bundle import load_bundle
    from explain.pipeline import Explainer
    from ui.examples import example_files

    explainer = Explainer(load_bundle(args.model))
    pictures = []
    for path, _ in example_files():
        exp = explainer.explain(path)
        pictures += [exp.image, exp.heatmap_rgb(), exp.overlay(0.4)]
    requests = len(pictures) // 3

    def encode(level: int) -> tuple[float, int]:
        start, size = time.perf_counter(), 0
        for array in pictures:
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format="PNG", compress_level=level)
            size += buffer.tell()
        return (time.perf_counter() - start) / requests, size // requests

    rows = {}
    for _ in range(args.repeats):  # levels in turn, so machine noise hits every level alike
        for level in range(10):
            seconds, size = encode(level)
            rows.setdefault(level, ([], size))[0].append(seconds)
    base_ms = statistics.median(rows[6][0]) * 1e3
    lines = [f"python benchmarks/png_settings.py --repeats {args.repeats}",
             f"{requests} requests (the shipped examples, {pictures[0].shape[1]}x{pictures[0].shape[0]}), "
             "3 PNGs each; per request: median encode time, total size",
             "level  encode_ms  size_kB  time/level6  size/level6"]
    for level, (times, size) in rows.items():
        ms = statistics.median(times) * 1e3
        lines.append(f"{level:5d}  {ms:9.2f}  {size / 1e3:7.1f}  {ms / base_ms:11.2f}  {size / rows[6][1]:11.2f}")
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
