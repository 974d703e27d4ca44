"""Evaluate a model bundle on the leak-free split, with intervals and calibration.

    python -m training.evaluate --model models/default
    python -m training.evaluate --model models/default --calibrate --write-metrics
    python -m training.evaluate --model models/default --split val --bootstrap 200 --no-published

Images go through the app's own path (decode -> prepare_pixels -> finish) and
the app's own compiled forward pass (:class:`explain.engine.CamEngine`), so
the numbers describe what the app shows. Writes ``metrics_<split>.json``,
``confusion_<split>.png`` and ``reliability_<split>.png`` to ``--out``
(default ``<bundle>/eval``).

``--calibrate`` fits the softmax temperature on the val split (minimum NLL)
and reports the chosen split with it; ``--write-metrics`` stores the metrics,
and with ``--calibrate`` the temperature, in the bundle's ``bundle.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from explain.bundle import BUNDLE_JSON, Bundle, load_bundle
from explain.engine import CamEngine
from explain.layers import find_target_layer
from explain.preprocess import finish

from . import data as D
from . import metrics as M

BATCH_SIZE = 64
LEAK_NOTE = ("published Testing folder: 81% of its images have a near-duplicate in Training, "
             "so this accuracy overstates performance on new images; for comparison only")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="bundle folder")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="split of the split file to evaluate (default test)")
    p.add_argument("--data", help=f"dataset folder (default ${D.DATA_ENV} or ../shared/data/brain-tumor-mri)")
    p.add_argument("--csv", default="clean_split.csv", help="split file inside the dataset folder")
    p.add_argument("--out", help="output folder (default <bundle>/eval)")
    p.add_argument("--cache", default=str(D.ROOT / ".cache"), help="decoded-image cache folder ('' = none)")
    p.add_argument("--calibrate", action="store_true",
                   help="fit the softmax temperature on the val split and report with it")
    p.add_argument("--write-metrics", action="store_true",
                   help="store the metrics (and with --calibrate the temperature) in bundle.json")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0 = no intervals)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--no-published", action="store_true",
                   help="skip the (leaky) accuracy on the published Testing folder")
    args = p.parse_args(argv)
    if args.bootstrap < 0:
        p.error("--bootstrap must be >= 0")
    return args


class LogitPredictor:
    """Batched logits through the app's compiled forward pass.

    The logits, not the probabilities, are needed: a float32 softmax saturates
    at exactly 1.0/0.0, and log(0) makes both the NLL and the temperature fit
    meaningless. ``CamEngine.logits`` runs the engine's forward pass alone
    (same graph, same logit capture as the app, no gradient pass), so
    evaluation costs one forward pass per image.
    """

    def __init__(self, bundle: Bundle):
        target = find_target_layer(bundle.model, bundle.target_layer)
        h, w = bundle.spec.size
        self.bundle = bundle
        self.input_shape = (h, w, bundle.spec.channels)
        # The engine checks at construction that its captured logits reproduce the
        # model's output; what is left to check here is that the output is a softmax,
        # which the metrics (probs = softmax(logits / T)) assume.
        self.engine = CamEngine(bundle.model, target, self.input_shape, temperature=1.0)
        if self.engine.head_activation != "softmax":
            raise SystemExit(
                f"the model's output is {self.engine.head_activation!r}, not a softmax; "
                "this evaluation supports single-label softmax heads only."
            )

    def logits(self, pixels: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """uint8 (N, h, w, c) prepared pixels -> float32 (N, K) logits."""
        out = [self.engine.logits(finish(pixels[start:start + batch_size], self.bundle.spec))
               for start in range(0, len(pixels), batch_size)]
        return np.concatenate(out).astype(np.float32)


def load_split(folder: Path, items: list[D.Item], bundle: Bundle, cache: Path | None):
    """Items -> (uint8 (N, h, w, c) pixels, int64 (N,) label indices in the bundle's label order)."""
    unknown = sorted({i.label for i in items} - set(bundle.labels))
    if unknown:
        raise SystemExit(f"the data has labels {unknown} that the bundle does not know ({bundle.labels})")
    pixels = D.load_pixels(folder, items, bundle.spec, cache)
    labels = np.array([bundle.labels.index(i.label) for i in items], np.int64)
    return pixels, labels


def _jsonable(obj):
    """Replace nan/inf floats (not valid JSON) with None, recursively."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# -- report --------------------------------------------------------------------
def _fmt(value, digits=4) -> str:
    return "   n/a" if value is None else f"{value:.{digits}f}"


def format_report(result: dict, labels: list[str]) -> str:
    """The JSON result of one split -> a compact text report."""
    lines = [f"split {result['split']}: {result['n_images']} images, temperature {result['temperature']:.4f}"]
    boot = result.get("bootstrap", {})
    interval = f"95% interval ({boot.get('resamples', 0)} resamples)" if boot.get("resamples") else ""
    lines.append(f"  {'metric':<22}{'value':>8}   {interval}")
    for name, m in result["metrics"].items():
        ci = m["ci95"]
        span = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""
        lines.append(f"  {name:<22}{_fmt(m['value']):>8}   {span}")
    width = max(len(x) for x in labels) + 2
    lines.append("")
    lines.append(f"  {'class':<{width}}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}")
    for label in labels:
        c = result["per_class"][label]
        lines.append(f"  {label:<{width}}{_fmt(c['precision'], 3):>10}{_fmt(c['recall'], 3):>8}"
                     f"{_fmt(c['f1'], 3):>8}{c['support']:>9}")
    lines.append("")
    lines.append("  confusion matrix (rows true, columns predicted)")
    cell = max(width, max(len(x) for x in labels) + 1)
    lines.append("  " + " " * width + "".join(f"{x:>{cell}}" for x in labels))
    for label, row in zip(labels, result["confusion_matrix"]):
        lines.append(f"  {label:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


# -- pictures (PIL only) ---------------------------------------------------------
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: fixed bitmap font
        return ImageFont.load_default()


def _text(draw, xy, text, font, fill=(0, 0, 0), anchor="mm"):
    try:
        draw.text(xy, text, font=font, fill=fill, anchor=anchor)
    except ValueError:  # bitmap fonts do not support anchors
        draw.text(xy, text, font=font, fill=fill)


def draw_confusion(cm: np.ndarray, labels: list[str], title: str):
    """int (K, K) -> PIL RGB image: counts and row percentages, shaded by row share (= recall)."""
    from PIL import Image, ImageDraw

    cm = np.asarray(cm)
    k = len(labels)
    cell, left, top = 112, 150, 110
    w, h = left + k * cell + 30, top + k * cell + 60
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    big, mid, small = _font(20), _font(16), _font(13)
    _text(draw, (w // 2, 22), title, big)
    _text(draw, (left + k * cell // 2, 55), "predicted", mid)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    for j, label in enumerate(labels):
        _text(draw, (left + j * cell + cell // 2, top - 18), label, small)
    for i, label in enumerate(labels):
        _text(draw, (left - 8, top + i * cell + cell // 2), label, small, anchor="rm")
        for j in range(k):
            x0, y0 = left + j * cell, top + i * cell
            # White to dark blue by the row share, so the diagonal reads as recall.
            s = float(share[i, j])
            colour = tuple(int(round(255 - s * (255 - c))) for c in (31, 73, 145))
            draw.rectangle([x0, y0, x0 + cell, y0 + cell], fill=colour, outline=(160, 160, 160))
            ink = (255, 255, 255) if s > 0.5 else (0, 0, 0)
            _text(draw, (x0 + cell // 2, y0 + cell // 2 - 10), str(int(cm[i, j])), big, ink)
            _text(draw, (x0 + cell // 2, y0 + cell // 2 + 14), f"{100 * s:.1f}%", small, ink)
    _text(draw, (22, top + k * cell // 2), "true", mid)
    _text(draw, (w // 2, h - 25), "cell: count and share of the true class (row)", small, (90, 90, 90))
    return img


def draw_reliability(bins: dict, ece: float, title: str):
    """Reliability diagram: per-bin accuracy (bars) vs confidence, diagonal = perfect calibration.

    bins: lists ``lower``, ``upper``, ``count``, ``confidence``, ``accuracy``
    (empty bins None) as in :func:`training.metrics.evaluate`. Below the plot,
    a strip shows how many images fall in each bin.
    """
    from PIL import Image, ImageDraw

    size, left, top, strip = 420, 70, 60, 70
    w, h = left + size + 30, top + size + strip + 70
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    big, small = _font(18), _font(13)

    def px(x, y):
        return left + x * size, top + (1 - y) * size

    _text(draw, (w // 2, 22), title, big)
    _text(draw, (w // 2, 44), f"ECE {ece:.4f}" if ece is not None else "ECE n/a", small)
    for t in np.linspace(0, 1, 6):
        x, y = px(t, t)
        draw.line([px(0, t), px(1, t)], fill=(230, 230, 230))
        _text(draw, (left - 8, y), f"{t:.1f}", small, anchor="rm")
        _text(draw, (x, top + size + 12), f"{t:.1f}", small)
    counts = [c or 0 for c in bins["count"]]
    for lo, hi, acc, conf in zip(bins["lower"], bins["upper"], bins["accuracy"], bins["confidence"]):
        if acc is None:
            continue
        x0, y0 = px(lo, acc)
        x1, y1 = px(hi, 0)
        draw.rectangle([x0, y0, x1, y1], fill=(70, 110, 180), outline=(30, 50, 100))
        # Red segment: the gap between what the model claimed and what it got.
        cx = (x0 + x1) / 2
        draw.line([(cx, px(0, conf)[1]), (cx, y0)], fill=(210, 40, 40), width=3)
        draw.ellipse([cx - 3, px(0, conf)[1] - 3, cx + 3, px(0, conf)[1] + 3], fill=(210, 40, 40))
    draw.line([px(0, 0), px(1, 1)], fill=(0, 0, 0), width=1)
    draw.rectangle([left, top, left + size, top + size], outline=(0, 0, 0))
    _text(draw, (left + size // 2, top + size + 32), "confidence (top-class probability)", small)
    _text(draw, (left, top - 8), "accuracy", small, anchor="lb")
    # Count strip: bar height on a sqrt scale so a few images in a bin stay visible.
    base = top + size + 50 + strip - 10
    peak = max(max(counts), 1)
    for lo, hi, c in zip(bins["lower"], bins["upper"], counts):
        if c:
            x0, x1 = px(lo, 0)[0], px(hi, 0)[0]
            bar = (strip - 25) * np.sqrt(c / peak)
            draw.rectangle([x0 + 1, base - bar, x1 - 1, base], fill=(150, 150, 150))
            _text(draw, ((x0 + x1) / 2, base - bar - 8), str(c), _font(10))
    _text(draw, (w // 2, h - 10), "red: mean confidence per bin; grey: images per bin", small, (90, 90, 90))
    return img


# -- main ------------------------------------------------------------------------
def update_bundle_json(folder: Path, split: str, result: dict, temperature: float | None) -> None:
    """Rewrite only bundle.json: metadata.evaluation[split] = result, and the temperature if given."""
    path = folder / BUNDLE_JSON
    config = json.loads(path.read_text())
    if temperature is not None:
        config["temperature"] = float(temperature)
    config.setdefault("metadata", {}).setdefault("evaluation", {})[split] = _jsonable(result)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    model_dir = Path(args.model)
    if args.write_metrics and not model_dir.is_dir():
        raise SystemExit("--write-metrics needs a bundle folder (it updates its bundle.json)")
    bundle = load_bundle(model_dir)
    folder = D.data_dir(args.data)
    cache = Path(args.cache) if args.cache else None
    out_dir = Path(args.out) if args.out else model_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = bundle.labels
    trained_on = (bundle.metadata.get("data") or {}).get("csv")
    if trained_on and trained_on != args.csv:
        print(f"warning: the model was trained on {trained_on}, evaluated on {args.csv}; "
              "the splits may overlap", file=sys.stderr)
    print(bundle.describe(), flush=True)

    t0 = time.time()
    predictor = LogitPredictor(bundle)
    items = D.read_split(folder, args.split, args.csv)
    if not items:
        raise SystemExit(f"{args.csv} has no images in split {args.split!r}")
    pixels, y = load_split(folder, items, bundle, cache)
    logits = predictor.logits(pixels)

    temperature = bundle.temperature
    calibration = None
    if args.calibrate:
        if args.split == "val":
            print("warning: --calibrate fits on val, so val metrics are in-sample", file=sys.stderr)
        if args.split == "val":
            val_logits, val_y = logits, y
        else:
            val_pixels, val_y = load_split(folder, D.read_split(folder, "val", args.csv), bundle, cache)
            val_logits = predictor.logits(val_pixels)
        temperature = M.fit_temperature(val_logits, val_y)
        # "Before" is the raw model (T = 1), not whatever temperature the bundle
        # holds now, so re-running --calibrate reproduces the same report.
        before = M.softmax(logits, 1.0)
        calibration = {
            "fitted_on": "val",
            "val_images": int(len(val_y)),
            "temperature_before": 1.0,
            "temperature": temperature,
            "val_nll_before": M.nll_from_logits(val_logits, val_y, 1.0),
            "val_nll_after": M.nll_from_logits(val_logits, val_y, temperature),
            f"{args.split}_nll_before": M.negative_log_likelihood(before, y),
            f"{args.split}_ece_before": M.expected_calibration_error(before, y),
        }

    probs = M.softmax(logits, temperature)
    result = {
        "split": args.split,
        "csv": args.csv,
        "data_fingerprint_sha256": D.fingerprint(items),
        "model": str(model_dir),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "temperature": temperature,
        **M.evaluate(y, probs, labels, args.bootstrap, args.seed),
    }
    if calibration:
        result["calibration"] = calibration

    published = None
    if not args.no_published:
        pub_items = D.published_testing(folder)
        pub_pixels, pub_y = load_split(folder, pub_items, bundle, cache)
        pub_pred = predictor.logits(pub_pixels).argmax(axis=1)
        cm = M.confusion_matrix(pub_y, pub_pred, len(labels))
        published = {
            "note": LEAK_NOTE,
            "n_images": int(len(pub_y)),
            "accuracy": M.accuracy(pub_y, pub_pred),
            "balanced_accuracy": M.balanced_accuracy(cm),
            "confusion_matrix": cm.tolist(),
        }
        result["published_testing_leaky"] = published
    result["seconds"] = round(time.time() - t0, 1)

    result = _jsonable(result)
    metrics_path = out_dir / f"metrics_{args.split}.json"
    metrics_path.write_text(json.dumps(result, indent=2) + "\n")
    acc = result["metrics"]["accuracy"]["value"]
    draw_confusion(np.array(result["confusion_matrix"]), labels,
                   f"{args.split} split, {len(y)} images, accuracy {acc:.3f}").save(
        out_dir / f"confusion_{args.split}.png")
    draw_reliability(result["reliability"], result["metrics"]["ece"]["value"],
                     f"reliability, {args.split} split, T = {temperature:.3f}").save(
        out_dir / f"reliability_{args.split}.png")

    print()
    print(format_report(result, labels))
    if calibration:
        c = calibration
        print(f"\ncalibration: T {c['temperature_before']:.4f} -> {c['temperature']:.4f} (fitted on val, "
              f"{c['val_images']} images); val NLL {c['val_nll_before']:.4f} -> {c['val_nll_after']:.4f}; "
              f"{args.split} ECE {c[f'{args.split}_ece_before']:.4f} -> {result['metrics']['ece']['value']:.4f}")
    if published:
        print("\n== LEAKY, FOR COMPARISON ONLY: published Testing folder ==")
        print("   81% of these images have a near-duplicate in Training; do not quote as test accuracy.")
        print(f"   accuracy {published['accuracy']:.4f}  balanced accuracy {published['balanced_accuracy']:.4f}"
              f"  ({published['n_images']} images)")
    if args.write_metrics:
        update_bundle_json(model_dir, args.split, result, temperature if args.calibrate else None)
        print(f"\nupdated {model_dir / BUNDLE_JSON}"
              + (f" (temperature {temperature:.4f})" if args.calibrate else ""))
    print(f"\nwrote {metrics_path}, confusion_{args.split}.png, reliability_{args.split}.png in {out_dir}"
          f"  ({result['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
