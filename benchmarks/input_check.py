"""Benchmark of the two trust checks: the input check's scores, and what both cost per request.

    python benchmarks/input_check.py [--model BUNDLE] [--data DIR] [--repeats 30]

Scores five out-of-distribution detectors on the same features of the same
model, each thresholded by the same rule on the validation split only (in
every class at most 2.5 % flagged, :func:`explain.evaluation.fit_input_check.threshold_for`):

* ``mahalanobis``: distance to the nearest class mean under one shared
  Ledoit-Wolf covariance of the training features (Lee et al., 2018); the
  bundle's own shipped reference when it has one;
* ``mahalanobis+colour``: the same, and an upload with more clearly coloured
  pixels than the bundle's colour limit is flagged too (the grayscale model
  cannot see colour; what ships in the default bundle);
* ``max_softmax``: 1 - the top probability (Hendrycks and Gimpel, 2017);
* ``energy``: -logsumexp of the logits (Liu et al., 2020);
* ``knn``: distance to the 10th nearest training feature after L2
  normalisation (Sun et al., 2022).

Reported per method: AUROC between the clean test split and the
out-of-distribution corpus (:mod:`benchmarks.ood_corpus`), the share of the
corpus flagged (target >= 0.95), the share of the clean test split flagged,
overall and per class (target <= 0.05 each), and for the chosen method the
same figures at other validation quantiles (the trade-off). Then the cost of the checks per
request (one image): ``Explainer.explain`` with neither check, with each, and
with both, timed in turn (ABBA) in one run. Writes
``benchmarks/results/input_check.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))  # `python benchmarks/input_check.py` puts only benchmarks/ on the path

import numpy as np  # noqa: E402

from benchmarks.ood_corpus import load, members  # noqa: E402
from benchmarks.timing import environment, interleaved  # noqa: E402
from explain.bundle import load_bundle  # noqa: E402
from explain.checks.input_check import COLOUR_FLOOR, InputCheck  # noqa: E402
from explain.evaluation.dataset import data_dir, read_split  # noqa: E402
from explain.evaluation.fit_input_check import (  # noqa: E402
    DEFAULT_QUANTILE, extract, fit_reference, threshold_for)
from explain.pipeline import Explainer  # noqa: E402

RESULTS = HERE / "results"
KNN_K = 10
TARGET_OOD, TARGET_FALSE = 0.95, 0.05
SWEEP = (0.9, 0.95, 0.975, 0.99)
COLOURED = 1e9  # the score of an upload flagged for its colour
CACHE_VERSION = 2  # features, probabilities and colour shares


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--data", help="dataset folder (default $BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri)")
    p.add_argument("--repeats", type=int, default=30, help="timed requests per variant")
    p.add_argument("--cache", default="/tmp/input_check_features.npz",
                   help="features cache (keyed by the weights digest; never committed)")
    p.add_argument("--out", default=str(RESULTS / "input_check"), help="results path without suffix")
    return p.parse_args(argv)


# -- features -----------------------------------------------------------------------------
def split_features(explainer: Explainer, data: Path, cache: Path, digest: str) -> dict:
    """{split: (features (N, D), probs (N, K), classes (N,), colour shares (N,))} for train, val and test,
    cached by weights digest."""
    key = f"{digest}/{CACHE_VERSION}"
    if cache.is_file():
        with np.load(cache) as saved:
            if "key" in saved.files and str(saved["key"]) == key:
                return {s: tuple(saved[f"{s}_{k}"] for k in "fpcs") for s in ("train", "val", "test")}
    out = {}
    for split in ("train", "val", "test"):
        items = read_split(data, split)
        print(f"features of the {split} split ({len(items)} images)", file=sys.stderr)
        f, p, colour = extract(explainer, [data / i.path for i in items])
        out[split] = (f, p, np.array([explainer.labels.index(i.label) for i in items]), colour)
    np.savez(cache, key=key, **{f"{s}_{k}": v for s, t in out.items() for k, v in zip("fpcs", t)})
    return out


def corpus_features(explainer: Explainer):
    """(members, features (M, D), probs (M, K), colour shares (M,)) of the corpus and the reference MRI."""
    corpus = members()
    features, probs, colour = extract(explainer, [load(m) for m in corpus], show=False)
    return corpus, features, probs, colour


# -- detectors: higher score = more out-of-distribution ---------------------------------------
def logits_of(bundle, features: np.ndarray) -> np.ndarray:
    """Pre-softmax scores from the features through the Dense head's kernel and bias (no extra pass)."""
    head = bundle.model.layers[-1]
    kernel, bias = (np.asarray(w) for w in head.get_weights())
    return features @ kernel + bias


def knn_scores(train: np.ndarray, other: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Distance to the k-th nearest L2-normalised training feature (exact, by blocks)."""
    def unit(a):
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    train, other = unit(train), unit(other)
    out = []
    for start in range(0, len(other), 256):
        d2 = 2.0 - 2.0 * other[start:start + 256] @ train.T
        out.append(np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, k - 1], 0.0)))
    return np.concatenate(out)


def detectors(bundle, feats: dict, ood_f, ood_p, ood_colour):
    """({method: {"val", "test", "ood"}: scores}, where the Mahalanobis reference came from)."""
    train_f, _, train_c, _ = feats["train"]
    shipped = bundle.input_check is not None
    if shipped:
        from explain.checks.input_check import load_input_check

        check, _ = load_input_check(bundle)
        shipped = check is not None
    if not shipped:
        check = InputCheck(*fit_reference(train_f, train_c, len(bundle.labels)), threshold=np.inf,
                           colour_limit=COLOUR_FLOOR)
    sets = {"val": feats["val"][:2], "test": feats["test"][:2], "ood": (ood_f, ood_p)}
    colour = {"val": feats["val"][3], "test": feats["test"][3], "ood": ood_colour}
    maha = {k: check.score(f) for k, (f, _) in sets.items()}
    # A coloured upload counts as (practically) infinitely far: the verdict is "flagged" whatever the distance.
    out = {"mahalanobis": maha,
           "mahalanobis+colour": {k: np.where(colour[k] > check.colour_limit, COLOURED, maha[k]) for k in maha},
           "max_softmax": {k: 1.0 - p.max(1) for k, (_, p) in sets.items()},
           "energy": {k: -np.logaddexp.reduce(logits_of(bundle, f), axis=1) for k, (f, _) in sets.items()},
           "knn": {k: knn_scores(train_f, f) for k, (f, _) in sets.items()}}
    return out, ("bundle" if shipped else "fitted here")


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.zeros(len(inside)), np.ones(len(outside))], np.r_[inside, outside]))


def evaluate(scores: dict, feats: dict, labels: list[str], is_ood: np.ndarray,
             quantile: float = DEFAULT_QUANTILE) -> dict:
    """Threshold on val (same rule for every method), then AUROC and flag rates on test and the corpus."""
    val_c, test_c = feats["val"][2], feats["test"][2]
    threshold = threshold_for(scores["val"], val_c, quantile)
    test_flag = scores["test"] > threshold
    ood = scores["ood"][is_ood]
    per_class = {labels[k]: round(float(test_flag[test_c == k].mean()), 4) for k in range(len(labels))}
    row = {"threshold": threshold, "auroc": round(auroc(scores["test"], ood), 4),
           "ood_flagged": round(float((ood > threshold).mean()), 4),
           "ood_flagged_count": f"{int((ood > threshold).sum())}/{len(ood)}",
           "val_flagged": round(float((scores["val"] > threshold).mean()), 4),
           "test_flagged": round(float(test_flag.mean()), 4), "test_flagged_per_class": per_class}
    row["meets_targets"] = bool(row["ood_flagged"] >= TARGET_OOD and max(per_class.values()) <= TARGET_FALSE)
    return row


# -- region check on the clean test split -------------------------------------------------------
def region_summary(bundle, data: Path, batch_size: int = 32) -> dict:
    """How often removing the map's top region (and a random one) changes the class, per class and overall."""
    explainer = Explainer(bundle)
    items = read_split(data, "test")
    rows = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        for item, exp in zip(chunk, explainer.explain_batch([data / i.path for i in chunk])):
            check = exp.region_check
            if check.get("p_after") is not None:
                rows.append((item.label, check["class_after"] != exp.explained,
                             check["class_after_random"] != exp.explained, check["p_before"] - check["p_after"],
                             check["p_before"] - check["p_after_random"], check["removed_share"]))

    def summary(part):
        return {"images": len(part), "class_changed": round(float(np.mean([r[1] for r in part])), 4),
                "class_changed_random": round(float(np.mean([r[2] for r in part])), 4),
                "median_drop": round(float(np.median([r[3] for r in part])), 4),
                "median_drop_random": round(float(np.median([r[4] for r in part])), 4),
                "median_removed_share": round(float(np.median([r[5] for r in part])), 4)}
    out = {"all": summary(rows), "empty_maps": len(items) - len(rows)}
    out.update({label: summary([r for r in rows if r[0] == label]) for label in bundle.labels})
    return out


# -- cost -------------------------------------------------------------------------------------
def cost(bundle, image_path: Path, repeats: int) -> dict:
    """Median seconds of one ``Explainer.explain`` with neither check, each, and both (ABBA)."""
    both = Explainer(bundle)
    plain = Explainer(bundle, region_check=False)
    plain.input_check = None
    input_only = Explainer(bundle, region_check=False)
    region_only = Explainer(bundle)
    region_only.input_check = None
    with open(image_path, "rb") as f:
        data = f.read()
    funcs = {name: (lambda e=e: e.explain(data)) for name, e in
             (("no checks", plain), ("input check", input_only), ("region check", region_only), ("both", both))}
    times = interleaved(funcs, repeats=repeats, warmup=3)
    base = times["no checks"]
    return {name: {"seconds": round(t, 5), "added_ms": round(1000 * (t - base), 2),
                   "ratio": round(t / base, 3)} for name, t in times.items()}


# -- report -----------------------------------------------------------------------------------
def render_md(result: dict) -> str:
    lines = [f"# Input check and region check: benchmark ({result['date']})", "",
             f"Command: `{result['command']}`  ", f"Model: `{result['model']}` (weights sha256 "
             f"`{result['weights_sha256'][:12]}...`), features: {result['features']}  ",
             f"Threshold rule (all methods): on the validation split, at most "
             f"{1 - DEFAULT_QUANTILE:.1%} of every class flagged. Chosen: **{result['chosen']}**.", "",
             "| method | AUROC (clean test vs corpus) | corpus flagged (>= 0.95) | clean test flagged (<= 0.05) | "
             + " | ".join(result["labels"]) + " | val flagged |",
             "|---|---|---|---|" + "---|" * len(result["labels"]) + "---|"]
    lines += _rows(result["methods"], result["labels"])
    lines += ["", f"Counts: {result['counts']}.", "",
              f"## Trade-off of the threshold ({result['chosen']}): validation quantile per class", "",
              "| quantile | AUROC | corpus flagged | clean test flagged | " + " | ".join(result["labels"])
              + " | val flagged |", "|---|---|---|---|" + "---|" * len(result["labels"]) + "---|"]
    lines += _rows(result["sweep"], result["labels"])
    lines += ["",
              f"## Corpus members ({result['chosen']}, threshold {result['methods'][result['chosen']]['threshold']:.2f})",
              "", "Score: the Mahalanobis distance; \"coloured\": more coloured pixels than the limit.", "",
              "| member | what | source | score | flagged | model says |", "|---|---|---|---|---|---|"]
    for m in result["members"]:
        name = m["name"] + (" (reference MRI, not counted)" if m["reference"] else "")
        score = m["score"] if isinstance(m["score"], str) else f"{m['score']:.2f}"
        lines.append(f"| {name} | {m['what']} | {m['source']} | {score} | "
                     f"{'yes' if m['flagged'] else 'no'} | {m['predicted']} {m['probability']:.2f} |")
    lines += ["", "## Region check on the clean test split (explained class = predicted class)", "",
              "| images | n | class changed without the region | ... without a random region | "
              "median drop of p | ... random | median removed share |", "|---|---|---|---|---|---|---|"]
    for name, row in result["region_check_test"].items():
        if isinstance(row, dict):
            lines.append(f"| {name} | {row['images']} | {row['class_changed']:.3f} | {row['class_changed_random']:.3f} | "
                         f"{row['median_drop']:.3f} | {row['median_drop_random']:.3f} | "
                         f"{row['median_removed_share']:.3f} |")
    lines += ["", f"Largest share of clearly coloured pixels: {result['colour_share_max']}."]
    lines += ["", "## Cost per request (one image, `Explainer.explain`, median of "
              f"{result['cost_repeats']} in ABBA order)", "", "| variant | seconds | added (ms) | ratio |",
              "|---|---|---|---|"]
    for name, row in result["cost"].items():
        lines.append(f"| {name} | {row['seconds']:.4f} | {row['added_ms']:.1f} | {row['ratio']:.2f} |")
    lines += ["", f"Machine: {result['environment'].get('cpu', '?')}, {result['environment'].get('cpu_affinity', '?')} cores available."]
    return "\n".join(lines) + "\n"


def _rows(rows: dict, labels) -> list[str]:
    out = []
    for name, row in rows.items():
        per = " | ".join(f"{row['test_flagged_per_class'][c]:.3f}" for c in labels)
        out.append(f"| {name} | {row['auroc']:.3f} | {row['ood_flagged']:.3f} ({row['ood_flagged_count']}) | "
                   f"{row['test_flagged']:.3f} | {per} | {row['val_flagged']:.3f} |")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    bundle = load_bundle(args.model)
    explainer = Explainer(bundle, region_check=False)
    digest = bundle.weights_digest()
    feats = split_features(explainer, data_dir(args.data), Path(args.cache), digest)
    corpus, ood_f, ood_p, ood_colour = corpus_features(explainer)
    is_ood = np.array([not m.reference for m in corpus])
    scores, reference = detectors(bundle, feats, ood_f, ood_p, ood_colour)
    methods = {name: evaluate(s, feats, bundle.labels, is_ood) for name, s in scores.items()}
    # Choose by measurement: meets both targets first, then the higher AUROC.
    chosen = max(methods, key=lambda n: (methods[n]["meets_targets"], methods[n]["auroc"]))
    threshold = methods[chosen]["threshold"]
    sweep = {str(q): evaluate(scores[chosen], feats, bundle.labels, is_ood, q) for q in SWEEP}
    member_rows = [{"name": m.name, "what": m.what, "source": m.source, "reference": m.reference,
                    "score": round(float(s), 4) if s < COLOURED else "coloured",
                    "colour_share": round(float(c), 4), "flagged": bool(s > threshold),
                    "predicted": bundle.labels[int(p.argmax())], "probability": round(float(p.max()), 4)}
                   for m, s, p, c in zip(corpus, scores[chosen]["ood"], ood_p, ood_colour)]
    example = sorted((ROOT / "examples").glob("*.jpg"))[0]
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/input_check.py" + (" " + " ".join(argv) if argv else
                                                          (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")),
        "model": os.path.relpath(args.model, ROOT), "weights_sha256": digest,
        "features": f"input of layer {explainer.engine().head_name!r} ({ood_f.shape[1]}-d)",
        "mahalanobis_reference": reference, "labels": bundle.labels, "chosen": chosen,
        "counts": {"train": len(feats["train"][0]), "val": len(feats["val"][0]), "test": len(feats["test"][0]),
                   "corpus": int(is_ood.sum()), "reference_mri": int((~is_ood).sum())},
        "targets": {"ood_flagged": f">= {TARGET_OOD}", "test_flagged_per_class": f"<= {TARGET_FALSE}"},
        "methods": methods, "sweep": sweep, "members": member_rows,
        "colour_share_max": {s: round(float(feats[s][3].max()), 4) for s in ("train", "val", "test")},
        "region_check_test": region_summary(bundle, data_dir(args.data)),
        "cost_repeats": args.repeats, "cost_image": example.name,
        "cost": cost(bundle, example, args.repeats), "environment": environment(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render_md(result))
    print(render_md(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
