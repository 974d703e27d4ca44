"""Evaluate the chosen lesion fine-tuning candidate on the test split, once, against issue 21's targets.

    python -m training.final_test --selection models/default/training/selection.json \\
        --out models/default/training/final_test.json

Reads the candidate ``training.select`` chose (refused if the summary changed since, or if
``--out`` exists: the test split is evaluated once), then on the candidate's bundle folder:
temperature fitted on val and the test metrics (``training.evaluate``), the lesion audit with
its counterfactual columns on ``annotations/lesions_test.json``
(``explain.evaluation.audit --lesions-only``) and Grad-CAM's randomisation check on 24 test
images. Writes every figure and each target's verdict to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from explain.bundle import load_bundle
from explain.evaluation import audit
from explain.evaluation.dataset import data_dir, read_split
from explain.metrics.counterfactual import AUDIT_REMOVALS
from explain.pipeline import Explainer

from . import evaluate
from .lesion_record import read_summary

LESIONS = "annotations/lesions_test.json"
TUMOUR_CLASSES = ("glioma", "meningioma", "pituitary")
COUNTERFACTUAL_CLASSES = ("meningioma", "pituitary")


def targets(report: dict) -> list[dict]:
    """Every target of issue 21 with its measured value and verdict, from a final-test report."""
    metrics, lesions = report["metrics"], report["lesions"]
    # (name, measured value, comparison, threshold)
    rows = [("accuracy", metrics["accuracy"], ">=", 0.95),
            ("balanced accuracy", metrics["balanced_accuracy"], ">=", 0.94),
            ("ECE", metrics["ece"], "<=", 0.05),
            ("no tumour recall (healthy slices not called tumour)", metrics["recall/notumor"], ">=", 0.95)]
    rows += [(f"recall {c}", metrics[f"recall/{c}"], ">=", 0.90) for c in TUMOUR_CLASSES]
    rows += [(f"pointing 8 px {c}", lesions["pointing_8px"][c], ">=", 0.80) for c in TUMOUR_CLASSES]
    for m in AUDIT_REMOVALS:
        for c in COUNTERFACTUAL_CLASSES:
            rows.append((f"{c} kept, lesion removed ({m})", lesions["counterfactual"][c][f"kept_{m}"], "<=", 0.30))
            rows.append((f"{c} no tumour, lesion removed ({m})", lesions["counterfactual"][c][f"no_tumour_{m}"],
                         ">=", 0.50))
        rows.append((f"control kept, tumour classes ({m})", lesions["control_kept_tumour"][m], ">=", 0.90))
    rows.append(("Grad-CAM randomisation check passes", float(report["sanity"]["passed"]), ">=", 1.0))
    return [{"target": name, "value": value, "op": op, "threshold": threshold,
             "met": bool(value >= threshold if op == ">=" else value <= threshold)}
            for name, value, op, threshold in rows]


def lesion_figures(lesions: dict) -> dict:
    """The audit's lesion block reduced to the figures the targets read (means)."""
    rows, cf = lesions["rows"]["gradcam"], lesions["counterfactual"]
    tumour = {m: _pooled(cf, f"control_kept_{m}") for m in AUDIT_REMOVALS}
    return {"pointing_8px": {c: rows[c]["pointing_8px"]["mean"] for c in TUMOUR_CLASSES if c in rows},
            "counterfactual": {c: {k: v["mean"] for k, v in cf[c].items()} for c in cf},
            "counterfactual_intervals": cf, "control_kept_tumour": tumour}


def _pooled(cf: dict, metric: str) -> float:
    """Mean of ``metric`` over the tumour classes, weighted by their image counts."""
    parts = [(cf[c][metric]["mean"], cf[c][metric]["n"]) for c in TUMOUR_CLASSES if c in cf and cf[c][metric]["n"]]
    return sum(m * n for m, n in parts) / sum(n for _, n in parts)


def lesion_and_sanity(folder: Path, data: str | None) -> dict:
    """The lesion audit (into a fresh ``folder/audit/lesions``) and Grad-CAM's randomisation check
    of the calibrated bundle in ``folder``, with its test metrics (``folder/eval``), as the report."""
    lesion_dir = folder / "audit" / "lesions"
    if lesion_dir.exists():
        shutil.rmtree(lesion_dir)
    audit.main(["--model", str(folder), "--split", "test", "--methods", "gradcam", "--lesions", LESIONS,
                "--lesions-only", "--out", str(lesion_dir), *(["--data", data] if data else [])])
    bundle = load_bundle(folder)
    explainer = Explainer(bundle)
    items = read_split(data_dir(data), "test")
    sanity = audit.sanity_check(bundle, explainer, audit.sanity_subset(items, 24), data_dir(data), ["gradcam"])
    test = json.loads((folder / "eval" / "metrics_test.json").read_text())
    lesions = json.loads((lesion_dir / "audit.json").read_text())["lesions"]
    return {"bundle": str(folder), "weights_sha256": bundle.weights_digest(), "temperature": bundle.temperature,
            "metrics": {k: v["value"] for k, v in test["metrics"].items()},
            "metrics_ci95": {k: v.get("ci95") for k, v in test["metrics"].items()},
            "confusion_matrix": test["confusion_matrix"], "lesions": lesion_figures(lesions),
            "sanity": {"correlations": sanity["methods"]["gradcam"], "layers": sanity["layers"],
                       "passed": sanity["passed"]["gradcam"]}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.final_test", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--selection", default="models/default/training/selection.json")
    p.add_argument("--out", default="models/default/training/final_test.json")
    p.add_argument("--data", help="dataset folder")
    p.add_argument("--cache", default="", help="decoded-image cache folder for training.evaluate")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"error: {out} exists: the test split was evaluated once already")
    selection = json.loads(Path(args.selection).read_text())
    chosen = selection.get("chosen")
    if not chosen:
        raise SystemExit("error: the selection chose no candidate; nothing to test")
    summary = Path(selection["summary"])
    if hashlib.sha256(summary.read_bytes()).hexdigest() != selection["summary_sha256"]:
        raise SystemExit(f"error: {summary} changed after the selection; run training.select again")
    record = read_summary(summary)[chosen]
    folder = Path(record["out"])
    started = time.time()
    data = ["--data", args.data] if args.data else []
    evaluate.main(["--model", str(folder), "--split", "test", "--calibrate", "--write-metrics", "--no-published",
                   "--cache", args.cache, *data])
    report = lesion_and_sanity(folder, args.data)
    report.update({"candidate": chosen, "selection": args.selection,
                   "command": "python -m training.final_test " + " ".join(argv if argv is not None else sys.argv[1:]),
                   "date": datetime.now(UTC).isoformat(timespec="seconds")})
    report["targets"] = targets(report)
    report["meets_every_target"] = all(t["met"] for t in report["targets"])
    report["seconds"] = round(time.time() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    for t in report["targets"]:
        print(f"{'ok ' if t['met'] else 'NO '} {t['target']}: {t['value']:.3f} {t['op']} {t['threshold']}")
    print(f"meets every target: {report['meets_every_target']}  (wrote {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
