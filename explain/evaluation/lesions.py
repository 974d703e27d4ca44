"""Lesion ground truth: boxes (or masks) per image, their file format, and annotator agreement.

File format (JSON)::

    {"format": "brain-mri-gradcam-lesions", "version": 1,
     "images": {"Testing/glioma/Te-gl_0042.jpg":
                {"box": [x0, y0, x1, y1] | null, "confidence": "high" | "medium" | "low",
                 "note": "...", "mask": "optional/mask.png" | "mat": "optional/figshare.mat"}}}

Keys are image paths relative to the dataset folder. A box is in the
original image's pixels, x to the right and y down, covering
``x0 <= x < x1`` and ``y0 <= y < y1``. A null box means the lesion could not
be seen (the note says why). Raw annotator files (``{"annotator": ...,
"images": {...}}``) are read the same way.

    python -m explain.evaluation.lesions merge A1.json A2.json --with B1.json B2.json --out merged.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "brain-mri-gradcam-lesions"
CONFIDENCES = ("high", "medium", "low")
#: Two boxes agree when their IoU reaches this; agreeing boxes are averaged.
AGREE_IOU = 0.5


@dataclass(frozen=True)
class Lesion:
    box: tuple[float, float, float, float] | None
    confidence: str
    note: str = ""
    mask: str | None = None  # PNG, relative to the annotation file
    mat: str | None = None   # figshare .mat (MATLAB v7.3), relative to the annotation file

    def mask_array(self, shape: tuple[int, int], base: Path | None = None) -> np.ndarray | None:
        """(H, W) bool lesion mask for an image of ``shape`` = (H, W); None without box or mask."""
        if self.mat:
            return read_figshare_mask(Path(base or ".") / self.mat, shape)
        if self.mask:
            from PIL import Image

            with Image.open(Path(base or ".") / self.mask) as im:
                mask = np.asarray(im.convert("L")) > 0
            if mask.shape != tuple(shape):
                raise ValueError(f"mask {self.mask} is {mask.shape}, the image {tuple(shape)}")
            return mask
        if self.box is None:
            return None
        return box_mask(self.box, shape)


def box_mask(box, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: True inside ``box`` = [x0, y0, x1, y1] (rounded to whole pixels, clipped)."""
    h, w = shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    mask = np.zeros((h, w), bool)
    mask[max(0, y0):min(h, y1), max(0, x0):min(w, x1)] = True
    return mask


def read_figshare_mask(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """``cjdata/tumorMask`` of a figshare brain-tumour .mat file (HDF5, MATLAB v7.3) as (H, W) bool.

    MATLAB stores arrays column-major, so h5py reads them transposed: the
    mask is transposed back to (rows, columns) of the image.
    """
    import h5py

    with h5py.File(path, "r") as f:
        mask = np.asarray(f["cjdata"]["tumorMask"]).T > 0
    if shape is not None and mask.shape != tuple(shape):
        raise ValueError(f"{path}: mask is {mask.shape}, the image {tuple(shape)}")
    return mask


def _lesion(key: str, entry, where: str) -> Lesion:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: entry {key!r} is not an object")
    box = entry.get("box")
    if box is not None:
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) for v in box)):
            raise ValueError(f"{where}: {key!r} box must be [x0, y0, x1, y1], got {box!r}")
        if min(box) < 0 or box[0] >= box[2] or box[1] >= box[3]:
            raise ValueError(f"{where}: {key!r} box {box} needs 0 <= x0 < x1 and 0 <= y0 < y1")
        box = tuple(float(v) for v in box)
    confidence = entry.get("confidence")
    if confidence not in CONFIDENCES:
        raise ValueError(f"{where}: {key!r} confidence must be one of {', '.join(CONFIDENCES)}, got {confidence!r}")
    return Lesion(box, confidence, str(entry.get("note", "")), entry.get("mask"), entry.get("mat"))


def read_lesions(path) -> dict[str, Lesion]:
    """Image path -> :class:`Lesion` of one annotation file (canonical or raw annotator file)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
        raise ValueError(f"{path}: expected an object with an 'images' object")
    if "format" in data and data["format"] != FORMAT:
        raise ValueError(f"{path}: format {data['format']!r} is not {FORMAT!r}")
    return {key: _lesion(key, entry, str(path)) for key, entry in data["images"].items()}


def write_lesions(path, lesions: dict[str, Lesion], about: str = "") -> None:
    images = {}
    for key in sorted(lesions):
        item = lesions[key]
        entry = {"box": None if item.box is None else [int(round(v)) for v in item.box],
                 "confidence": item.confidence, "note": item.note}
        images[key] = entry
    doc = {"format": FORMAT, "version": 1, "about": about,
           "coordinates": "original image pixels, x right, y down; box covers x0 <= x < x1, y0 <= y < y1",
           "images": images}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def box_iou(a, b) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes, in [0, 1]."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge_annotations(a: dict[str, Lesion], b: dict[str, Lesion], keep_single: bool = False):
    """Two annotators' boxes -> (merged lesions, report).

    Per image both saw: IoU of the boxes. Merged: the mean box where IoU >=
    AGREE_IOU (confidence: the lower of the two), null where both said null;
    everything else is a disagreement, listed for review and left out. With
    ``keep_single``, an image only one annotator saw keeps that annotator's
    entry, its note prefixed "one annotator (A|B)" so it can be told apart.
    """
    merged, ious, disagreements, per_class = {}, [], [], {}
    order = {c: i for i, c in enumerate(CONFIDENCES)}
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        cls = Path(key).parent.name
        stats = per_class.setdefault(cls, {"images": 0, "ious": [], "both_null": 0, "one_null": 0})
        stats["images"] += 1
        if x.box is None and y.box is None:
            stats["both_null"] += 1
            merged[key] = Lesion(None, "low", f"both annotators: no visible lesion ({x.note} | {y.note})")
            continue
        if x.box is None or y.box is None:
            stats["one_null"] += 1
            disagreements.append({"image": key, "reason": "one box is null", "a": x.box, "b": y.box})
            continue
        iou = box_iou(x.box, y.box)
        ious.append(iou)
        stats["ious"].append(iou)
        if iou >= AGREE_IOU:
            box = tuple(round((p + q) / 2) for p, q in zip(x.box, y.box))
            confidence = max(x.confidence, y.confidence, key=order.get)
            merged[key] = Lesion(box, confidence, f"mean of two boxes, IoU {iou:.2f}; {x.note}")
        else:
            disagreements.append({"image": key, "reason": f"IoU {iou:.2f}", "a": x.box, "b": y.box})

    if keep_single:
        for name, only, other in (("A", a, b), ("B", b, a)):
            for key in sorted(set(only) - set(other)):
                x = only[key]
                merged[key] = Lesion(x.box, x.confidence, f"one annotator ({name}): {x.note}")

    def summary(values, images, both_null, one_null):
        values = np.asarray(values, float)
        return {"images": images, "both_boxed": int(values.size), "both_null": both_null, "one_null": one_null,
                "median_iou": float(np.median(values)) if values.size else None,
                "share_iou_at_least_0.5": float(np.mean(values >= AGREE_IOU)) if values.size else None}

    report = {"overall": summary(ious, sum(s["images"] for s in per_class.values()),
                                 sum(s["both_null"] for s in per_class.values()),
                                 sum(s["one_null"] for s in per_class.values())),
              "per_class": {c: summary(s["ious"], s["images"], s["both_null"], s["one_null"])
                            for c, s in sorted(per_class.items())},
              "disagreements": disagreements}
    return merged, report


def _read_many(paths) -> dict[str, Lesion]:
    out = {}
    for path in paths:
        out.update(read_lesions(path))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m explain.evaluation.lesions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("merge", "agreement"))
    p.add_argument("first", nargs="+", help="annotator A's files")
    p.add_argument("--with", dest="second", nargs="+", required=True, help="annotator B's files")
    p.add_argument("--out", help="merge: merged annotation file to write")
    p.add_argument("--keep-single", action="store_true",
                   help="merge: keep images only one annotator saw (their note says so)")
    p.add_argument("--report", help="agreement report (JSON) to write, with the disagreements")
    args = p.parse_args(argv)
    merged, report = merge_annotations(_read_many(args.first), _read_many(args.second), args.keep_single)
    for name, s in [("overall", report["overall"])] + list(report["per_class"].items()):
        median = "-" if s["median_iou"] is None else f"{s['median_iou']:.2f}"
        share = "-" if s["share_iou_at_least_0.5"] is None else f"{s['share_iou_at_least_0.5']:.2f}"
        print(f"{name:12s} images {s['images']:3d}  both boxed {s['both_boxed']:3d}  median IoU {median}  "
              f"IoU>=0.5 {share}  both null {s['both_null']}  one null {s['one_null']}")
    print(f"disagreements (left out): {len(report['disagreements'])}")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
    if args.mode == "merge":
        if not args.out:
            p.error("merge needs --out")
        about = "Boxes of two annotators, merged where IoU >= 0.5"
        if args.keep_single:
            about += "; images only one annotator saw keep that box (note: 'one annotator')"
        write_lesions(args.out, merged, about=about + " (see annotations/README.md)")
        print(f"wrote {args.out}: {sum(v.box is not None for v in merged.values())} boxes, "
              f"{sum(v.box is None for v in merged.values())} null")
    return 0


if __name__ == "__main__":
    sys.exit(main())
