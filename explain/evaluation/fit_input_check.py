"""Fit a bundle's input check: class means and a shared, shrunk covariance of the model's features.

    python -m explain.evaluation.fit_input_check --model BUNDLE                     # clean_split.csv train / val
    python -m explain.evaluation.fit_input_check --model BUNDLE --train DIR --val DIR   # your own images

The features are those the run-time check scores (the input of the model's
last Dense layer, from :meth:`explain.engine.CamEngine.predict_features`).
Class means come from the training images; the covariance of the
class-centred training features is shrunk with Ledoit-Wolf (a 512-d
covariance from a few thousand images is otherwise near-singular). The
threshold is set on the validation images only: in every class, at most
``1 - quantile`` of them are flagged (default 2.5 %), so that no class is
singled out. For a grayscale model the colour limit is the largest share of
coloured pixels among the validation images, at least 2 %. Writes ``BUNDLE/input_check.npz`` and the ``"input_check"``
entry of ``BUNDLE/bundle.json`` (which names the weights it belongs to; a
bundle whose weights change ignores it until it is refitted).

In folders given with ``--train``/``--val``, images in a subfolder named
after a class are of that class; others take the model's predicted class.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..bundle import BUNDLE_JSON, add_model_options, load_from_args
from ..checks.input_check import COLOUR_FLOOR, METHOD, InputCheck, colour_share
from ..errors import ExplainError
from ..pipeline import Explainer
from ..progress import progress
from .dataset import data_dir, read_split

REFERENCE_FILE = "input_check.npz"
DEFAULT_QUANTILE = 0.975
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".dcm"}


def extract(explainer: Explainer, paths, batch_size: int = 32, show: bool = True):
    """Image sources -> (features float32 (N, D), probabilities float32 (N, K), colour shares float (N,)),
    decoded and preprocessed as at run time."""
    engine = explainer.engine()
    features, probs, colour = [], [], []
    for start in range(0, len(paths), batch_size):
        loaded = [explainer.load(p) for p in paths[start:start + batch_size]]
        p, f = engine.predict_features(np.stack([x for _, x in loaded]))
        probs.append(p)
        features.append(f)
        colour += [colour_share(image) for image, _ in loaded]
        if show:
            progress(min(start + batch_size, len(paths)), len(paths))
    return (np.concatenate(features).astype(np.float32), np.concatenate(probs).astype(np.float32),
            np.asarray(colour))


def fit_reference(features: np.ndarray, classes: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Training features (N, D) and class indices (N,) -> (whitener (D, D), centres (K, D)), float32.

    A class without training images gets no centre (its row is NaN-free: the
    overall mean stands in, so scoring still works).
    """
    from sklearn.covariance import LedoitWolf

    features = np.asarray(features, np.float64)
    means = np.stack([features[classes == k].mean(0) if np.any(classes == k) else features.mean(0)
                      for k in range(num_classes)])
    centred = features - means[classes]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    # precision = L @ L.T, so (f - m) P (f - m)^T = |(f - m) @ L|^2.
    whitener = np.linalg.cholesky((precision + precision.T) / 2)
    return whitener.astype(np.float32), (means @ whitener).astype(np.float32)


def threshold_for(scores: np.ndarray, classes: np.ndarray, quantile: float) -> float:
    """The smallest threshold that flags at most 1 - ``quantile`` of the validation images of every class."""
    per_class = [np.quantile(scores[classes == k], quantile) for k in np.unique(classes)]
    return float(max(per_class))


def folder_images(folder: Path, labels: list[str]) -> tuple[list[Path], list[int]]:
    """Images under ``folder`` (recursive, sorted) and their class index from the subfolder name (-1: unknown)."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    index = {name: k for k, name in enumerate(labels)}
    return paths, [index.get(p.parent.name, -1) if p.parent != folder else -1 for p in paths]


def split_images(data: Path, split: str, labels: list[str]) -> tuple[list[Path], list[int]]:
    """Images of one split of ``clean_split.csv`` and their class indices."""
    items = read_split(data, split)
    return [data / i.path for i in items], [labels.index(i.label) for i in items]


def fit(explainer: Explainer, train, val, quantile: float = DEFAULT_QUANTILE) -> tuple[InputCheck, dict]:
    """(train paths, classes), (val paths, classes) -> the fitted check and a summary of the fit."""
    k = len(explainer.labels)
    f_train, p_train, _ = extract(explainer, train[0])
    c_train = _known(np.asarray(train[1]), p_train)
    whitener, centres = fit_reference(f_train, c_train, k)
    check = InputCheck(whitener, centres, threshold=np.inf)
    f_val, p_val, colour = extract(explainer, val[0])
    c_val = _known(np.asarray(val[1]), p_val)
    scores = check.score(f_val)
    threshold = threshold_for(scores, c_val, quantile)
    # A grayscale model cannot see colour: uploads more coloured than any validation image are flagged too.
    limit = max(COLOUR_FLOOR, float(colour.max())) if explainer.spec.color_mode == "grayscale" else None
    summary = {"train_images": len(train[0]), "val_images": len(val[0]), "quantile": quantile,
               "val_flagged": round(float(np.mean(scores > threshold)), 4),
               "labels_from": "given" if np.all(np.asarray(train[1]) >= 0) else "given where known, else predicted"}
    return InputCheck(whitener, centres, threshold, limit), summary


def _known(classes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    # Unlabelled images take the model's own prediction as their class.
    return np.where(classes >= 0, classes, probs.argmax(1))


def save_reference(bundle, check: InputCheck, entry: dict) -> dict:
    """Write ``input_check.npz`` and the ``"input_check"`` entry of ``bundle.json``; returns the entry."""
    folder = Path(bundle.path)
    np.savez_compressed(folder / REFERENCE_FILE, whitener=check.whitener, centres=check.centres)
    entry = {"file": REFERENCE_FILE, "method": METHOD, "threshold": float(check.threshold),
             "colour_limit": check.colour_limit, "weights_sha256": bundle.weights_digest(), **entry}
    config = json.loads((folder / BUNDLE_JSON).read_text())
    config["input_check"] = entry
    (folder / BUNDLE_JSON).write_text(json.dumps(config, indent=2) + "\n")
    bundle.input_check = entry
    return entry


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m explain.evaluation.fit_input_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(p)
    p.add_argument("--data", help="dataset folder with clean_split.csv "
                   "(default $BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri)")
    p.add_argument("--train", help="folder of training images (instead of clean_split.csv's train split)")
    p.add_argument("--val", help="folder of validation images (instead of clean_split.csv's val split)")
    p.add_argument("--quantile", type=float, default=DEFAULT_QUANTILE,
                   help="share of each class's validation images that must pass (default 0.975)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if bool(args.train) != bool(args.val):
        print("error: give both --train and --val, or neither", file=sys.stderr)
        return 2
    try:
        bundle = load_from_args(args)
        if bundle.path is None or not bundle.path.is_dir():
            raise ExplainError("--model must be a bundle folder (make one with python -m explain.bundle)")
        explainer = Explainer(bundle, region_check=False)
        if args.train:
            train = folder_images(Path(args.train), explainer.labels)
            val = folder_images(Path(args.val), explainer.labels)
            source = {"train": str(args.train), "val": str(args.val)}
        else:
            data = data_dir(args.data)
            train, val = (split_images(data, s, explainer.labels) for s in ("train", "val"))
            source = {"train": "clean_split.csv train", "val": "clean_split.csv val"}
        if not train[0] or not val[0]:
            raise ExplainError("no images found for the training or the validation set")
        check, summary = fit(explainer, train, val, args.quantile)
    except (ExplainError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    head = explainer.engine().head_name
    entry = save_reference(bundle, check, {
        "features": f"input of layer {head!r} ({check.whitener.shape[0]}-d)",
        "fitted_on": {**source, **summary},
        "command": " ".join(["python -m explain.evaluation.fit_input_check",
                             *(argv if argv is not None else sys.argv[1:])]),
    })
    print(f"wrote {bundle.path / REFERENCE_FILE}: threshold {entry['threshold']:.3f}, "
          f"{summary['val_flagged']:.1%} of the validation images flagged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
