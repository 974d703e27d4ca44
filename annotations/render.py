"""Render dataset images for making and reviewing lesion boxes (output outside the repository).

    python annotations/render.py select [--per-class 50] > annotations/test_selection.txt
    python annotations/render.py select --split train --per-class 80 > annotations/train_selection.txt
    python annotations/render.py grid --list annotations/test_selection.txt --out /tmp/grid
    python annotations/render.py boxes --lesions annotations/lesions_test.json --out /tmp/boxes
    python annotations/render.py peaks --lesions annotations/lesions_test.json --out /tmp/peaks

``peaks`` writes one picture (``peaks.png``): per tumour class a row of
annotated test images (``--per-class``, spread evenly over the class) with the
model's Grad-CAM of the true class blended in, the box in green and the map's
peak as a white cross, titled hit or miss (peak within 8 px of the box, as the
audit's pointing game counts it).

``grid`` draws a coordinate grid in the original image's pixels (a line every
16 px, labelled every 32 px) on a 3x enlargement, so that a box can be read
off the picture as ``[x0, y0, x1, y1]``. ``boxes`` draws the boxes of one or
more annotation files (one colour each) for review. Renderings are dataset
derivatives: write them outside the repository, never commit them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explain.io.decode import decode_image  # noqa: E402
from explain.evaluation.dataset import data_dir, read_split  # noqa: E402

TUMOUR_CLASSES = ("glioma", "meningioma", "pituitary")
SCALE = 3
COLOURS = ((0, 255, 0), (255, 64, 255), (0, 200, 255), (255, 255, 0))  # RGB, one per file


def peak_tile(explanation, box, size: int = 256) -> np.ndarray:
    """(size, size, 3) uint8: the Grad-CAM overlay of one image, its box (green) and the map's
    peak (white cross), titled with the class and whether the peak is within 8 px of the box."""
    from explain.evaluation.lesions import box_mask
    from explain.metrics.localisation import pointing_game
    from explain.overlay import blend

    image, heat = explanation.image, explanation.heatmap
    hit = pointing_game(heat, box_mask(box, heat.shape), 8) > 0.5
    canvas = blend(image, heat)
    sy, sx = size / image.shape[0], size / image.shape[1]
    canvas = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = box
    cv2.rectangle(canvas, (int(x0 * sx), int(y0 * sy)), (int(x1 * sx), int(y1 * sy)), (0, 255, 0), 2)
    py, px = np.unravel_index(np.argmax(heat), heat.shape)
    cv2.drawMarker(canvas, (int(px * sx), int(py * sy)), (255, 255, 255), cv2.MARKER_CROSS, 18, 2)
    title = f"{explanation.explained}: {'hit' if hit else 'miss'}"
    cv2.putText(canvas, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2)
    return canvas


def peaks_picture(folder: Path, lesions: dict, model: str | None, per_class: int) -> np.ndarray:
    """One (rows x 256, per_class x 256, 3) uint8 picture: a row of :func:`peak_tile` per tumour class."""
    from explain.bundle import default_bundle_path, load_bundle
    from explain.pipeline import Explainer

    explainer = Explainer(load_bundle(model or default_bundle_path()))
    rows = []
    for label in TUMOUR_CLASSES:
        keys = sorted(k for k, v in lesions.items() if v.box is not None and Path(k).parent.name == label)
        if not keys:
            continue
        keys = [keys[int(i * len(keys) / per_class)] for i in range(min(per_class, len(keys)))]
        results = explainer.explain_batch([folder / k for k in keys], [label] * len(keys))
        tiles = [peak_tile(r, lesions[k].box) for r, k in zip(results, keys)]
        tiles += [np.zeros_like(tiles[0])] * (per_class - len(tiles))
        rows.append(np.hstack(tiles))
    if not rows:
        raise SystemExit("error: no boxed tumour image in the lesion files")
    return np.vstack(rows)


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
    p.add_argument("mode", choices=("select", "grid", "boxes", "peaks"))
    p.add_argument("--model", help="peaks: bundle folder (default: the bundled default model)")
    p.add_argument("--data", help="dataset folder (default $BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri)")
    p.add_argument("--per-class", type=int, help="images per class (select: default 50; peaks: default 4)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="select: split to draw from")
    p.add_argument("--list", help="grid: file of dataset-relative paths, one per line")
    p.add_argument("--lesions", nargs="+", help="boxes: annotation JSON files (see annotations/README.md)")
    p.add_argument("--out", help="output folder, outside the repository")
    args = p.parse_args(argv)
    folder = data_dir(args.data)
    if args.mode == "select":
        print("\n".join(select(folder, args.per_class or 50, args.split)))
        return 0
    if not args.out:
        p.error("--out is required")
    out = Path(args.out)
    refuse_inside_repo(out)
    if args.mode == "grid":
        for rel in Path(args.list).read_text().split():
            print(save(draw_grid(enlarged(folder / rel)), out, rel))
        return 0
    from explain.evaluation.lesions import read_lesions
    if args.mode == "peaks":
        lesions = {}
        for f in args.lesions:
            lesions.update(read_lesions(f))
        picture = peaks_picture(folder, lesions, args.model, args.per_class or 4)
        out.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / "peaks.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        print(out / "peaks.png")
        return 0
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
