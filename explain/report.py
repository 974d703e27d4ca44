"""What is written about one explanation: the three PNGs and ``report.json``.

The CLI writes them into a folder per image; the app zips the same files, so
a download from the page equals what ``python -m explain`` writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from .pipeline import Explanation

PNG_NAMES = ("1_original.png", "2_heatmap.png", "3_overlay.png")
REPORT_NAME = "report.json"


def report(exp: Explanation, source: str) -> dict:
    """JSON-ready summary of ``exp``; ``source``: the image's name or path as the user gave it."""
    return {
        "image": str(source),
        "prediction": exp.predicted,
        "explained_class": exp.explained,
        "probabilities": exp.probabilities,
        "layer": exp.layer,
        "method": exp.method,
        "tta": exp.tta,
        "preprocessing": exp.preprocessing,
        "model_input": {"shape": list(exp.model_input.shape),
                        "min": float(exp.model_input.min()), "max": float(exp.model_input.max())},
        "heatmap_empty": exp.empty,
        "cam_shape": list(exp.cam.shape),
        "checks": exp.checks,
        "ok": all(exp.checks.values()),
        "input_check": exp.input_check,
        "region_check": exp.region_check,
        "region_sentence": exp.region_sentence(),
    }


def check_line(exp: Explanation) -> str:
    """The two trust checks in one line for a terminal or a table cell (ASCII)."""
    verdict = exp.input_check
    if verdict.get("in_distribution") is None:
        first = verdict.get("note", "no input check for this model")
    elif verdict["in_distribution"]:
        first = f"input like the training slices ({verdict['score']:.1f} <= {verdict['threshold']:.1f})"
    else:
        first = (f"NOT LIKE THE TRAINING SLICES ({verdict['score']:.1f} > {verdict['threshold']:.1f}): "
                 "the class is not meaningful")
    region = exp.region_check
    if not region:
        return first
    if region.get("p_after") is None:
        return f"{first}; empty map, no region to test"
    return (f"{first}; without the region p({exp.explained}) {region['p_before']:.2f} -> "
            f"{region['p_after']:.2f} ({region['class_after']}), random region {region['p_after_random']:.2f}")


def pictures(exp: Explanation, alpha: float):
    """(file name, (H, W, 3) uint8 RGB) for the original, the heatmap and the overlay at opacity ``alpha``."""
    return list(zip(PNG_NAMES, (exp.image, exp.heatmap_rgb(), exp.overlay(alpha))))


def write_result(folder: Path, exp: Explanation, alpha: float, source) -> dict:
    """Write the three PNGs and ``report.json`` into ``folder`` (created); returns the report."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in pictures(exp, alpha):
        Image.fromarray(array).save(folder / name, format="PNG")
    result = report(exp, source)
    (folder / REPORT_NAME).write_text(json.dumps(result, indent=2) + "\n")
    return result
