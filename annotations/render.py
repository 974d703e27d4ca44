"""Render dataset images for making and reviewing lesion boxes (output outside the repository).

    python annotations/render.py select [--per-class 50] > annotations/test_selection.txt
    python annotations/render.py select --split train --per-class 80 > annotations/train_selection.txt
    python annotations/render.py grid --list annotations/test_selection.txt --out /tmp/grid
    python annotations/render.py boxes --lesions annotations/lesions_test.json --out /tmp/boxes

``grid`` draws a coordinate grid in the original image's pixels (a line every
16 px, labelled every 32 px) on a 3x enlargement, so that a box can be read
off the picture as ``[x0, y0, x1, y1]``. ``boxes`` draws the boxes of one or
more annotation files (one colour each) for review. Renderings are dataset
derivatives: write them outside the repository, never commit them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explain.decode import decode_image  # noqa: E402
from explain.dataset import data_dir, read_split  # noqa: E402

TUMOUR_CLASSES = ("glioma", "meningioma", "pituitary")
SCALE = 3
COLOURS = ((0, 255, 0), (255, 64, 255), (0, 200, 255), (255, 255, 0))  # RGB, one per file


def select(folder: Path, per_class: int, split: str = "test") -> list[str]:
    """``per_class`` images of ``split`` per tumour class, spread evenly over the class, none of clean_smoke.txt."""
    smoke = set((folder / "clean_smoke.txt").read_text().split())
    chosen = []
    for label in TUMOUR_CLASSES:
        pool = sorted(i.path for i in read_split(folder, split) if i.label == label and i.path not in smoke)
        chosen += [pool[int(k * len(pool) / per_class)] for k in range(per_class)]
    return chosen


def enlarged(path: Path) -> np.ndarray:
    """(3H, 3W, 3) uint8 RGB: the decoded image enlarged without smoothing."""
    image = decode_image(path)
    return cv2.resize(image, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)


def draw_grid(canvas: np.ndarray, step: int = 16, label_every: int = 32) -> np.ndarray:
    out = canvas.copy()
    h, w = out.shape[:2]
    for v in range(0, max(h, w) // SCALE + 1, step):
        strong = v % label_every == 0
        colour = (255, 255, 0) if strong else (90, 90, 0)
        if v * SCALE < w:
            cv2.line(out, (v * SCALE, 0), (v * SCALE, h - 1), colour, 1)
        if v * SCALE < h:
            cv2.line(out, (0, v * SCALE), (w - 1, v * SCALE), colour, 1)
        if strong and v > 0:
            cv2.putText(out, str(v), (v * SCALE + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
            cv2.putText(out, str(v), (2, v * SCALE - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
    return out


def draw_box(canvas: np.ndarray, box, colour, text: str = "") -> None:
    x0, y0, x1, y1 = (int(round(v * SCALE)) for v in box)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 2)
    if text:
        cv2.putText(canvas, text, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)


def save(canvas: np.ndarray, out: Path, rel: str) -> Path:
    target = out / (rel.replace("/", "__").rsplit(".", 1)[0] + ".png")
    target.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(target), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return target


def refuse_inside_repo(out: Path) -> None:
    if out.resolve().is_relative_to(ROOT):
        raise SystemExit(f"error: {out} is inside the repository; renderings of dataset images stay outside it")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("select", "grid", "boxes"))
    p.add_argument("--data", help="dataset folder (default $BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri)")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="select: split to draw from")
    p.add_argument("--list", help="grid: file of dataset-relative paths, one per line")
    p.add_argument("--lesions", nargs="+", help="boxes: annotation JSON files (see annotations/README.md)")
    p.add_argument("--out", help="output folder, outside the repository")
    args = p.parse_args(argv)
    folder = data_dir(args.data)
    if args.mode == "select":
        print("\n".join(select(folder, args.per_class, args.split)))
        return 0
    if not args.out:
        p.error("--out is required")
    out = Path(args.out)
    refuse_inside_repo(out)
    if args.mode == "grid":
        for rel in Path(args.list).read_text().split():
            print(save(draw_grid(enlarged(folder / rel)), out, rel))
        return 0
    from explain.lesions import read_lesions
    files = [read_lesions(f) for f in args.lesions]
    for rel in sorted(set().union(*(f.keys() for f in files))):
        canvas = draw_grid(enlarged(folder / rel))
        for k, lesions in enumerate(files):
            entry = lesions.get(rel)
            if entry is not None and entry.box is not None:
                draw_box(canvas, entry.box, COLOURS[k % len(COLOURS)], f"{k}:{entry.confidence}")
        print(save(canvas, out, rel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
