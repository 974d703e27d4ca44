"""The figures of docs/serving.md, rendered from benchmarks/results/serve_bench.json.

    python -m benchmarks.serve_report          # rewrite the block in docs/serving.md
    python -m benchmarks.serve_report --check  # exit 1 if the doc does not match the results file

The block sits between the two marker lines; tests/test_serving_doc.py checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve_bench.json"
DOC = ROOT / "docs" / "serving.md"
START, END = "<!-- serve_bench:start -->", "<!-- serve_bench:end -->"
CLIENTS = ("1", "8", "16")
NAMES = {"in_process": "in-process (every core)", "ray_1r_batched": "Ray, 1 replica, batched",
         "ray_1r_unbatched": "Ray, 1 replica, unbatched", "ray_2r_batched": "Ray, 2 replicas, batched",
         "ray_2r_unbatched": "Ray, 2 replicas, unbatched"}


def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table(block: dict, cpu_keys: list[tuple[str, str]]) -> list[str]:
    head = "| setup | " + " | ".join(f"{c} client{'s' if c != '1' else ''}: req/s (p50 ms)" for c in CLIENTS)
    head += " | " + " | ".join(title for title, _ in cpu_keys) + " |"
    lines = [head, "|---|" + "---:|" * (len(CLIENTS) + len(cpu_keys))]
    for name, runs in block.items():
        cells = [f"{runs[c]['per_s']:.1f} ({runs[c]['p50_ms']:.0f})" + (f", {runs[c]['errors']} errors"
                                                                       if runs[c].get("errors") else "")
                 for c in CLIENTS]
        cells += [_ms(runs["16"].get(key)) for _, key in cpu_keys]
        lines.append(f"| {NAMES.get(name, name)} | " + " | ".join(cells) + " |")
    return lines


def render(r: dict) -> str:
    lines = [START, "",
             f"Measured {r['date']} on {r['cpus']} CPU cores shared with other jobs, {r['images']} test-split "
             f"slices, `{r['command']}` (results: `benchmarks/results/serve_bench.json`; this block is "
             "rendered from it by `python -m benchmarks.serve_report`). One run per point.", "",
             "**Chunk size** (`Explainer.explain_batch` on decoded slices, in-process):", "",
             "| images per call | " + " | ".join(r["chunks"]) + " |",
             "|---|" + "---:|" * len(r["chunks"]),
             "| images/s (best of 3) | " + " | ".join(f"{v['per_s']:.1f}" for v in r["chunks"].values()) + " |",
             "| CPU ms per image | " + " | ".join(f"{v['cpu_ms_per_image']:.1f}" for v in r["chunks"].values())
             + " |", ""]
    b = r["batch_tab"]
    lines += [f"**Batch tab** ({b['images']} files): the tab's work (expand, explain in chunks, overlays, CSV) "
              f"{b['batch_tab_per_s']:.1f} images/s against the model alone (explain_batch in chunks of 16 on "
              f"the same files) {b['model_alone_per_s']:.1f} images/s: ratio **{b['ratio']:.2f}** (target 0.80); "
              f"one image per call: {b['one_at_a_time_per_s']:.1f} images/s.", ""]
    lines += ["**Straight to the model service** (client threads send decoded slices; CPU columns at 16 "
              "clients, milliseconds of CPU per request):", ""]
    lines += _table(r["service"], [("replica CPU ms", "replica_cpu_ms_per_request"),
                                   ("caller CPU ms", "caller_cpu_ms_per_request")])
    lines += ["", f"2 replicas on 2 cores / 1 replica on 1 core, batched, 16 clients: **{r['scaling_2r_vs_1r']:.2f}x** "
              f"measured (target 1.7x); from the replicas' CPU per request, the cores allow "
              f"**{r['capacity_2r_vs_1r']:.2f}x**.", ""]
    if "app" in r:
        lines += ["**Through the app** (`gradio_client` /predict from 1, 8, 16 clients; the front's CPU includes "
                  "the model when it runs in-process):", ""]
        lines += _table({k: {c: v[c] for c in CLIENTS} for k, v in r["app"].items()},
                        [("front CPU ms", "front_cpu_ms_per_request"), ("replica CPU ms", "replica_cpu_ms_per_request")])
        s = r.get("sizing")
        if s:
            lines += ["", f"**Sizing for {s['target_rps']} requests/s** at {s['utilisation']:.0%} CPU utilisation, "
                      f"from the 2-replica batched app at 16 clients: a front spends {s['front_cpu_ms']:.1f} ms "
                      f"of CPU per request, a replica {s['replica_cpu_ms']:.1f} ms, so {s['front_cores']:.1f} "
                      f"front cores (**{s['fronts_of_1_core']} fronts** of one core) and {s['replica_cores']:.1f} "
                      f"replica cores (**{s['replicas_of_1_core']} replicas** of one core)."]
    lines += ["", END]
    return "\n".join(lines)


def block_of(text: str) -> str:
    start, end = text.index(START), text.index(END) + len(END)
    return text[start:end]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    rendered = render(json.loads(RESULTS.read_text()))
    text = DOC.read_text()
    if args.check:
        ok = block_of(text) == rendered
        print("docs/serving.md matches the results" if ok else "docs/serving.md is out of date: "
              "run python -m benchmarks.serve_report")
        return 0 if ok else 1
    DOC.write_text(text.replace(block_of(text), rendered))
    print(f"wrote the figures into {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
