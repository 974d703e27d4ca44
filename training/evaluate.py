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

from explain.metrics import classification as C
from explain.bundle import BUNDLE_JSON, Bundle, load_bundle
from explain.engine import CamEngine
from explain.model.layers import find_target_layer
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


# -- pictures (matplotlib, Agg: no display needed) ------------------------------------
def _figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas, outside pyplot (no global state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def draw_confusion(cm: np.ndarray, labels: list[str], title: str):
    """int (K, K) -> matplotlib Figure: counts and row percentages, shaded by row share (= recall)."""
    cm = np.asarray(cm)
    k = len(labels)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    side = 1.3 * k + 2.5
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    # White to dark blue by the row share, so the diagonal reads as recall.
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            ink = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i - 0.08, str(int(cm[i, j])), ha="center", va="center", color=ink, fontsize=15)
            ax.text(j, i + 0.22, f"{100 * share[i, j]:.1f}%", ha="center", va="center", color=ink, fontsize=9)
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ax.set_xlabel("predicted", fontsize=11)
    ax.set_ylabel("true", fontsize=11)
    ax.set_xticks(np.arange(k + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(k + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="0.6", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    ax.set_title(title, fontsize=13, pad=14)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class (row)")
    fig.supxlabel("cell: count and share of the true class (row)", fontsize=9, color="0.35")
    return fig


def draw_reliability(bins: dict, ece: float, title: str):
    """Reliability diagram -> matplotlib Figure: per-bin accuracy (bars) vs confidence, diagonal = perfect calibration.

    bins: lists ``lower``, ``upper``, ``count``, ``confidence``, ``accuracy``
    (empty bins None) as in :func:`training.metrics.evaluate`. Below the plot,
    a strip shows how many images fall in each bin.
    """
    lower = np.asarray(bins["lower"], float)
    width = np.asarray(bins["upper"], float) - lower
    counts = np.array([c or 0 for c in bins["count"]])
    used = np.array([a is not None for a in bins["accuracy"]])
    acc = np.array([a for a, u in zip(bins["accuracy"], used) if u], float)
    conf = np.array([c for c, u in zip(bins["confidence"], used) if u], float)
    centre = lower[used] + width[used] / 2

    fig = _figure(5.6, 7.2)
    top, strip = fig.subplots(2, 1, sharex=True, height_ratios=[4, 1])
    top.bar(lower[used], acc, width=width[used], align="edge", color="#4670b4", edgecolor="#1e3264",
            label="accuracy per bin")
    # Red segment: the gap between what the model claimed and what it got.
    top.vlines(centre, acc, conf, color="#d22828", linewidth=2.5)
    top.plot(centre, conf, "o", color="#d22828", markersize=4, label="mean confidence per bin")
    top.plot([0, 1], [0, 1], color="black", linewidth=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.grid(axis="y", color="0.9")
    top.set_axisbelow(True)
    top.legend(loc="upper left", fontsize=8, frameon=False)
    top.set_title(f"{title}\n" + (f"ECE {ece:.4f}" if ece is not None else "ECE n/a"), fontsize=12)
    # Count strip: bar height on a sqrt scale so a few images in a bin stay visible.
    filled = counts > 0
    bars = strip.bar(lower[filled], counts[filled], width=width[filled], align="edge", color="0.6",
                     edgecolor="0.4")
    strip.bar_label(bars, fontsize=7, padding=1)
    strip.set_yscale("function", functions=(np.sqrt, np.square))
    strip.set_ylim(0, max(counts.max(initial=0), 1) * 1.35)
    strip.set_ylabel("images\n(sqrt scale)", fontsize=8)
    strip.tick_params(axis="y", labelsize=7)
    strip.set_xlabel("confidence (top-class probability)")
    return fig


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
        cm = C.confusion_matrix(pub_y, pub_pred, len(labels))
        published = {
            "note": LEAK_NOTE,
            "n_images": int(len(pub_y)),
            "accuracy": C.accuracy(pub_y, pub_pred),
            "balanced_accuracy": C.balanced_accuracy(cm),
            "confusion_matrix": cm.tolist(),
        }
        result["published_testing_leaky"] = published
    result["seconds"] = round(time.time() - t0, 1)

    result = _jsonable(result)
    metrics_path = out_dir / f"metrics_{args.split}.json"
    metrics_path.write_text(json.dumps(result, indent=2) + "\n")
    acc = result["metrics"]["accuracy"]["value"]
    draw_confusion(np.array(result["confusion_matrix"]), labels,
                   f"{args.split} split, {len(y)} images, accuracy {acc:.3f}").savefig(
        out_dir / f"confusion_{args.split}.png")
    draw_reliability(result["reliability"], result["metrics"]["ece"]["value"],
                     f"reliability, {args.split} split, T = {temperature:.3f}").savefig(
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
