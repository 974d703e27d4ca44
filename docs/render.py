"""Render the documents' figures from the committed results files.

    python docs/render.py            # rewrite every marked block in the markdown files
    python docs/render.py --check    # exit 1, listing the blocks that differ (tests/test_docs.py)

No figure in README.md, docs/, the model card, the audit notes or the benchmark notes is typed
by hand: it sits in a marked block whose content this script writes from a results file
(models/default/eval/*.json, models/default/audit/**/audit.json, benchmarks/results.json,
benchmarks/results/serve_bench.json,
annotations/*.json, ...). A block is

    <!-- figures: NAME [ARG ...] -->
    ...generated, do not edit...
    <!-- /figures -->

on lines of its own (a table, a code block, a paragraph), or inline inside a sentence:
``accuracy <!-- figures: accuracy -->**0.961**<!-- /figures --> on the test split``.

Adding a figure is one function: decorate ``fn(results, *args) -> str`` with
``@figure("NAME")`` below, read the file with ``results.json("path/from/repo/root")``, return
markdown, and put the markers where the figure goes. ``python docs/render.py`` fills it in; the
test then keeps it in step with the file. Only the standard library is used, so the check runs
without TensorFlow.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Markdown files searched for blocks (globs from the repository root).
DOCUMENTS = ("README.md", "docs/*.md", "models/*/MODEL_CARD.md", "models/*/audit/README.md",
             "benchmarks/README.md", "annotations/README.md")
#: A block; names are lower case, so documentation can show the syntax with NAME.
BLOCK = re.compile(r"<!-- figures: ([a-z][a-z0-9-]*(?: [^>]*?)?) -->(.*?)<!-- /figures -->", re.DOTALL)

FIGURES: dict = {}


def figure(name: str):
    """Register ``fn(results, *args) -> markdown`` as the renderer of blocks named ``name``."""
    def register(fn):
        if name in FIGURES:
            raise ValueError(f"figure {name!r} registered twice")
        FIGURES[name] = fn
        return fn
    return register


class Results:
    """The committed results files, read once each (paths from the repository root)."""

    def __init__(self, root: Path = ROOT):
        self.root = root

    @functools.cache  # noqa: B019 - one Results per run
    def json(self, path: str):
        return json.loads((self.root / path).read_text())

    def text(self, path: str) -> str:
        return (self.root / path).read_text()


# ---------------------------------------------------------------- formatting

def num(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def interval(stat: dict, digits: int = 3) -> str:
    """``[low, high]`` of a ``{"mean", "low", "high"}`` or ``{"value", "ci95"}`` statistic."""
    low, high = stat["ci95"] if "ci95" in stat else (stat["low"], stat["high"])
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def mean(stat: dict) -> float:
    return stat["value"] if "value" in stat else stat["mean"]


def table(head: list[str], rows: list[list], align: str | None = None) -> str:
    """A markdown table; ``align``: one character per column, ``l`` or ``r`` (default: all left)."""
    align = align or "l" * len(head)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [head, rule] + [[str(c) for c in row] for row in rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


CLASS_NAMES = {"notumor": "no tumour"}


def cname(label: str) -> str:
    return CLASS_NAMES.get(label, label)


# ---------------------------------------------------------------- the default model's evaluation

METRICS = "models/default/eval/metrics_test.json"
AUDIT = "models/default/audit/audit.json"
LESIONS = "models/default/audit/lesions/audit.json"
STAGES = {  # lesion and faithfulness reports of the shipped weights and the two earlier ones
    "shipped": "models/default/audit",
    "stage1": "models/default/audit/first-finetune",
    "before": "models/default/audit/before-finetune",
}
SMOKE = "models/default/eval/smoke.json"
DOCTOR = "models/default/eval/doctor_example.json"
BENCH = "benchmarks/results.json"


BUNDLE = "models/default/bundle.json"


@figure("params")
def params(r: Results) -> str:
    return f"{r.json(BUNDLE)['metadata']['params']:,}"


@figure("file-sizes")
def file_sizes(r: Results) -> str:
    size = {name: (r.root / "models/default" / name).stat().st_size / 1e6 for name in ("model.keras", "model.weights.h5")}
    return f"{size['model.keras']:.1f} MB (`model.keras`) + {size['model.weights.h5']:.1f} MB (`model.weights.h5`"


def _training(r: Results) -> dict:
    return r.json(BUNDLE)["metadata"]


@figure("training-run")
def training_run(r: Results) -> str:
    m = _training(r)
    t = m["training"]
    seconds = [h["seconds"] for h in m["history"]]
    return (f"{m['epochs_run']} epochs (of {t['epochs']}), batch {t['batch_size']}, Adam with a cosine schedule "
            f"peaking at {t['lr']:g}, label smoothing {t['label_smoothing']:g}, seed {t['seed']}; "
            f"{m['train_seconds']:,.0f} s on 2 CPU cores ({min(seconds):.0f}-{max(seconds):.0f} s per epoch; "
            f"{m['backend']} backend, Keras {m['keras']}, no GPU). Best epoch {m['best_epoch']} by validation "
            f"accuracy ({m['val_accuracy']:.3f})")


@figure("learning-curve")
def learning_curve(r: Results) -> str:
    history = _training(r)["history"]
    shown = [h for h in history if h["epoch"] % 2 == 1 or h["epoch"] == len(history)]
    return table(["epoch"] + [str(h["epoch"]) for h in shown],
                 [["train"] + [num(h["accuracy"], 2) for h in shown],
                  ["val"] + [num(h["val_accuracy"], 2) for h in shown]])


@figure("finetune-stage")
def finetune_stage(r: Results, stage: str) -> str:
    """Settings and time of lesion fine-tuning ``stage`` ("1" or "2") from bundle.json's metadata."""
    m = _training(r)
    run = m["lesion_finetune_earlier"][0] if stage == "1" else m["lesion_finetune"]
    s = run["settings"]
    seconds = sum(h["seconds"] for h in run["history"])
    removal = f", lesion-removal weight {s['removal_weight']:g}" if s.get("removal_weight") else ""
    return (f"{s['epochs']} epochs, {run['boxes_used']} boxes used ({run['boxes_held_out']} held out), "
            f"{s['boxed_per_batch']} boxed of {s['batch_size'] + s['boxed_per_batch']} images per batch, "
            f"Adam lr {s['lr']:g}, point weight {s['point_weight']:g}{removal}, seed {s['seed']}; "
            f"{seconds:,.0f} s on 2 CPU cores")


@figure("data-split")
def data_split(r: Results) -> str:
    d = r.json(BUNDLE)["metadata"]["data"]
    return (f"{d['train_images']:,} images), early stopping and temperature fitted on `val` "
            f"({d['val_images']:,}), evaluated once on `test` ({_test_counts(r)})")


@figure("accuracy")
def accuracy(r: Results) -> str:
    """The headline: accuracy with its interval and balanced accuracy, bold."""
    m = r.json(METRICS)["metrics"]
    return (f"**{num(mean(m['accuracy']))}** (95 % interval {interval(m['accuracy'])}), balanced "
            f"{num(mean(m['balanced_accuracy']))}")


def _test_counts(r: Results) -> str:
    """Size and composition of the test split, from the evaluation."""
    e = r.json(METRICS)
    parts = ", ".join(f"{v['support']} {cname(k)}" for k, v in e["per_class"].items())
    return f"{e['n_images']:,}: {parts}"


@figure("metrics-table")
def metrics_table(r: Results) -> str:
    e = r.json(METRICS)
    m, labels = e["metrics"], list(e["per_class"])
    recalls = [m[f"recall/{c}"] for c in labels]
    before = e["calibration"]["test_ece_before"]
    rows = [
        ["accuracy", f"**{num(mean(m['accuracy']))}**", interval(m["accuracy"]), ">= 0.95"],
        ["balanced accuracy", f"**{num(mean(m['balanced_accuracy']))}**", interval(m["balanced_accuracy"]), ">= 0.94"],
        ["macro F1", num(mean(m["macro_f1"])), interval(m["macro_f1"]), ""],
        ["recall " + " / ".join(cname(c) for c in labels), " / ".join(num(mean(s)) for s in recalls),
         " / ".join(interval(s) for s in recalls), "each >= 0.90"],
        [f"expected calibration error ({len(e['reliability']['count'])} bins)",
         f"{num(mean(m['ece']))} ({num(before)} before temperature scaling)", interval(m["ece"]), "<= 0.05"],
        ["precision " + " / ".join(cname(c) for c in labels),
         " / ".join(num(e["per_class"][c]["precision"]) for c in labels), "", ""],
    ]
    return table(["metric", "value", "95 % interval", "target"], rows)


@figure("evaluation-method")
def evaluation_method(r: Results) -> str:
    e = r.json(METRICS)
    b = e["bootstrap"]
    return (f"95 % {b['method']}-bootstrap intervals, {b['resamples']:,} resamples; temperature "
            f"T = {e['temperature']:.3f} fitted on {e['calibration']['fitted_on']}")


@figure("confusion-matrix")
def confusion_matrix(r: Results) -> str:
    e = r.json(METRICS)
    labels = list(e["per_class"])
    rows = [[cname(c)] + row for c, row in zip(labels, e["confusion_matrix"])]
    return table([""] + [cname(c) for c in labels], rows)


@figure("leaky-accuracy")
def leaky_accuracy(r: Results) -> str:
    leak = r.json(METRICS)["published_testing_leaky"]
    return f"{leak['n_images']:,} images, most with a near-duplicate in the training data) the same model scores {num(leak['accuracy'])}"


@figure("smoke")
def smoke(r: Results) -> str:
    s = r.json(SMOKE)
    wrong = "; ".join(f"a {cname(m['label'])} is called {cname(m['predicted'])}" for m in s["misclassified"])
    return (f"The mean fraction of Grad-CAM mass inside the head mask is "
            f"**{num(s['head_energy_tumour_mean'], 2)}** on the {s['n_tumour_images']} tumour images of "
            f"`clean_smoke.txt` (target 0.85; `tests/test_default_model.py` checks it). The map is exactly "
            f"empty (no positive evidence for the predicted class) on {s['empty_maps']} of the "
            f"{s['n_images']} smoke images; the app says so instead of drawing noise. {s['correct']} of the "
            f"{s['n_images']} smoke images are classified right" + (f" ({wrong})." if wrong else ".") +
            " Measured by `python -m tools.smoke_set` into "
            "[`eval/smoke.json`](eval/smoke.json).")


def _lesions(r: Results, stage: str) -> dict:
    return r.json(STAGES[stage] + "/lesions/audit.json")["lesions"]


def _cell(stat: dict, digits: int = 2) -> str:
    return f"{stat['mean']:.{digits}f} {interval(stat, digits)}"


@figure("lesion-localisation")
def lesion_localisation(r: Results) -> str:
    """Grad-CAM against the boxes, shipped weights next to stage 1 and the weights before fine-tuning."""
    now, one, before = (_lesions(r, s) for s in ("shipped", "stage1", "before"))
    rows = []
    for c in ("glioma", "meningioma", "pituitary", "overall"):
        g = now["rows"]["gradcam"][c]
        name = "all" if c == "overall" else c
        rows.append([
            f"{name} ({g['pointing_8px']['n']})",
            f"**{g['pointing_8px']['mean']:.2f}** {interval(g['pointing_8px'], 2)}",
            num(one["rows"]["gradcam"][c]["pointing_8px"]["mean"], 2),
            num(before["rows"]["gradcam"][c]["pointing_8px"]["mean"], 2),
            num(now["rows"]["baseline: centre"][c]["pointing_8px"]["mean"], 2),
            num(now["rows"]["baseline: bright blob"][c]["pointing_8px"]["mean"], 2),
            f"{g['box_energy_ratio']['mean']:.1f}x",
            f"{one['rows']['gradcam'][c]['box_energy_ratio']['mean']:.1f}x",
            f"{before['rows']['gradcam'][c]['box_energy_ratio']['mean']:.1f}x",
        ])
    return table(["class", "pointing 8 px", "stage 1", "before", "centre baseline", "bright blob",
                  "mass in box / box share", "stage 1", "before"], rows, "lrrrrrrrr")


@figure("lesion-reliance")
def lesion_reliance(r: Results) -> str:
    """How much the true class's probability needs the lesion (box blurred), three stages."""
    now, one, before = (_lesions(r, s)["reliance"] for s in ("shipped", "stage1", "before"))
    rows = []
    for c in ("glioma", "meningioma", "pituitary", "overall"):
        g = now[c]
        rows.append([
            f"{'all' if c == 'overall' else c} ({g['p_true']['n']})", num(g["p_true"]["mean"], 2),
            num(g["p_true_lesion_blurred"]["mean"], 2), _cell(g["lesion_drop"]), num(g["leaves_class"]["mean"], 2),
            num(one[c]["lesion_drop"]["mean"], 2), num(before[c]["lesion_drop"]["mean"], 2),
        ])
    return table(["class", "p_true", "with the lesion blurred", "drop", "leaves class", "drop, stage 1",
                  "drop, before"], rows, "lrrrrrr")


@figure("lesion-headline")
def lesion_headline(r: Results) -> str:
    """One sentence for the README: pointing overall and per class, against the baselines."""
    now, before = _lesions(r, "shipped"), _lesions(r, "before")
    g = now["rows"]["gradcam"]
    per = ", ".join(f"{c} {g[c]['pointing_8px']['mean']:.2f}" for c in sorted(
        ("glioma", "meningioma", "pituitary"), key=lambda c: -g[c]["pointing_8px"]["mean"]))
    return (f"on {now['n_images']} test images (never used in training), the Grad-CAM peak lands in the box "
            f"(8 px tolerance) on **{g['overall']['pointing_8px']['mean']:.2f}** of them ({per}), against "
            f"{now['rows']['baseline: centre']['overall']['pointing_8px']['mean']:.2f} for a centre Gaussian and "
            f"{before['rows']['gradcam']['overall']['pointing_8px']['mean']:.2f} for the model before its "
            f"lesion-guided fine-tuning")


@figure("lesion-mass")
def lesion_mass(r: Results) -> str:
    g = _lesions(r, "shipped")["rows"]["gradcam"]
    return (f"meningiomas and pituitary tumours ({g['meningioma']['box_energy']['mean']:.2f} and "
            f"{g['pituitary']['box_energy']['mean']:.2f}) and less for gliomas ({g['glioma']['box_energy']['mean']:.2f}")


# ---------------------------------------------------------------- faithfulness audit

CURVES = ("deletion_auc", "insertion_auc", "road_morf", "road_lerf")


@figure("audit-gradcam")
def audit_gradcam(r: Results) -> str:
    """Grad-CAM against its random map and centre prior, for the three stages' 120-image audits."""
    rows = []
    for stage, title in (("shipped", "**stage 2 (shipped)**"), ("stage1", "stage 1"),
                         ("before", "before fine-tuning")):
        o = r.json(STAGES[stage] + "/audit.json")["summary"]["overall"]
        g = o["gradcam"]
        rows.append([title] + [f"{g[k]['mean']:.3f} {interval(g[k])}" for k in CURVES] +
                    [num(g["head_energy"]["mean"])])
        rows.append(["its random map / centre Gaussian"] +
                    [f"{o['random'][k]['mean']:.3f} / {o['centre'][k]['mean']:.3f}" for k in CURVES + ("head_energy",)])
    n = r.json(AUDIT)["n_images"]
    return table([f"Grad-CAM, {n} images", "deletion AUC (lower better)", "insertion AUC",
                  "ROAD MoRF (lower better)", "ROAD LeRF", "head energy"], rows)


@figure("audit-methods")
def audit_methods(r: Results) -> str:
    """Every method of the shipped weights' audit: the four curves, head energy, time, sanity verdict."""
    a = r.json(AUDIT)
    o, passed = a["summary"]["overall"], a["sanity"]["passed"]
    rows = []
    for name, s in o.items():
        verdict = {True: "passes", False: "**fails**"}.get(passed.get(name.split("+")[0]), "")
        if name in ("random", "centre"):
            verdict = "(baseline)"
        rows.append([name] + [num(s[k]["mean"]) for k in CURVES] + [num(s["head_energy"]["mean"], 2),
                     f"{s['seconds']['mean'] * 1000:.0f} ms", verdict])
    return table(["method", "deletion AUC (lower better)", "insertion AUC", "ROAD MoRF (lower better)",
                  "ROAD LeRF", "head energy", "time per image", "randomisation check"], rows, "lrrrrrrl")


@figure("sanity")
def sanity(r: Results, stage: str = "shipped") -> str:
    """Spearman correlation with the trained map as layers are re-initialised from the output down."""
    s = r.json(STAGES[stage] + "/audit.json")["sanity"]
    rows = [[m] + [f"{v:.2f}" for v in s["methods"][m]] + ["passes" if s["passed"][m] else "**fails**"]
            for m in s["methods"]]
    return table(["method"] + [f"{layer} re-initialised" if i == 0 else f"+ {layer}"
                               for i, layer in enumerate(s["layers"])] + [f"verdict (< {s['pass_below']})"],
                 rows, "l" + "r" * len(s["layers"]) + "l")


@figure("deletion-vs-prior")
def deletion_vs_prior(r: Results) -> str:
    """README sentence: Grad-CAM's deletion AUC against the centre prior, shipped and before fine-tuning."""
    now = r.json(AUDIT)["summary"]["overall"]
    before = r.json(STAGES["before"] + "/audit.json")["summary"]["overall"]
    return (f"{num(now['gradcam']['deletion_auc']['mean'])} vs {num(now['centre']['deletion_auc']['mean'])}, "
            f"lower is better; before fine-tuning it won, {num(before['gradcam']['deletion_auc']['mean'])} vs "
            f"{num(before['centre']['deletion_auc']['mean'])}")


METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "hirescam": "HiResCAM", "xgradcam": "XGrad-CAM",
                "layercam": "Layer-CAM", "scorecam": "Score-CAM", "eigencam": "Eigen-CAM"}


@figure("failed-names")
def failed_names(r: Results) -> str:
    passed = r.json(AUDIT)["sanity"]["passed"]
    return " and ".join(METHOD_NAMES.get(m, m) for m, ok in passed.items() if not ok) or "none"


@figure("sanity-value")
def sanity_value(r: Results, method: str, step: str, stage: str = "shipped") -> str:
    """One correlation of the randomisation cascade (step 0: only the output layer re-initialised)."""
    return f"{r.json(STAGES[stage] + '/audit.json')['sanity']['methods'][method][int(step)]:.2f}"


@figure("audit-time")
def audit_time(r: Results, path: str = AUDIT) -> str:
    seconds = r.json(path)["seconds"]
    return f"{seconds:,.0f} s ({seconds / 60:.0f} minutes)"


TIES = {"shipped": "models/default/audit/deletion_ties.json",
        "stage1": "models/default/audit/first-finetune/deletion_ties.json",
        "before": "models/default/audit/before-finetune/deletion_ties.json"}


@figure("ties-table")
def ties_table(r: Results) -> str:
    """benchmarks/deletion_ties.py --json for the three stages."""
    rows, n = [], None
    for stage, title in (("shipped", "stage 2 (shipped)"), ("stage1", "stage 1"), ("before", "before fine-tuning")):
        t = r.json(TIES[stage])
        n = t["n_images"]
        rows.append([title] + [f"{t['rows'][k]['deletion_auc']['mean']:.3f} / {t['rows'][k]['insertion_auc']['mean']:.3f}"
                               for k in ("Grad-CAM", "Grad-CAM, ties by centre", "centre prior", "random")])
    return table([f"{n} test images, deletion / insertion AUC", "Grad-CAM", "Grad-CAM, zeros ranked by centre",
                  "centre prior", "random"], rows)


@figure("before-full-split")
def before_full_split(r: Results) -> str:
    """Grad-CAM before fine-tuning on the whole test split, against its baselines."""
    a = r.json(STAGES["before"] + "/full-split/audit.json")
    o, t = a["summary"]["overall"], a["summary"]["tumour_classes"]
    keys = CURVES + ("average_drop",)
    rows = [[name] + [_cell(o[m][k], 3 if k != "average_drop" else 1) for k in keys] +
            [_cell(t[m]["head_energy"], 3)] for m, name in (("gradcam", "Grad-CAM"), ("random", "random map"),
                                                            ("centre", "centre Gaussian"))]
    return table([f"whole test split ({a['n_images']} images)", "deletion AUC (lower better)", "insertion AUC",
                  "ROAD MoRF (lower better)", "ROAD LeRF", "Average Drop % (lower better)",
                  f"head energy, tumour classes ({t['gradcam']['head_energy']['n']})"], rows)


@figure("before-head-energy")
def before_head_energy(r: Results) -> str:
    a = r.json(STAGES["before"] + "/full-split/audit.json")["summary"]["per_class"]
    return ", ".join(f"{c} {a[c]['gradcam']['head_energy']['mean']:.2f}" for c in ("pituitary", "meningioma", "glioma"))


@figure("failed-methods")
def failed_methods(r: Results) -> str:
    s = r.json(AUDIT)["sanity"]
    failed = [METHOD_NAMES.get(m, m) for m, ok in s["passed"].items() if not ok]
    first = min(s["methods"][m][0] for m, ok in s["passed"].items() if not ok) if failed else None
    if not failed:
        return "every gradient method passes the randomisation sanity check"
    return (f"{' and '.join(failed)} fail the randomisation sanity check on this architecture: their maps "
            f"hardly change when the class weights are re-initialised ({first:.2f} rank correlation)")


# ---------------------------------------------------------------- annotations

ANNOTATIONS = "annotations/lesions_test.json"


def _entries(r: Results, path: str) -> list[dict]:
    """The entries of an annotation file (``{"images": {path: {"box": ..., ...}}}``), each with its path."""
    return [dict(entry, path=key) for key, entry in r.json(path)["images"].items()]


def _class(entry: dict) -> str:
    return Path(entry["path"]).parent.name


@figure("annotation-counts")
def annotation_counts(r: Results) -> str:
    """Entries, boxes and nulls of the merged test annotations, per class."""
    entries = _entries(r, ANNOTATIONS)
    boxed = [e for e in entries if e.get("box") is not None]
    per = {}
    for e in boxed:
        per[_class(e)] = per.get(_class(e), 0) + 1
    nulls = {}
    for e in entries:
        if e.get("box") is None:
            nulls[_class(e)] = nulls.get(_class(e), 0) + 1
    return (f"{len(entries)} entries, {len(boxed)} with a box ("
            + ", ".join(f"{n} {c}" for c, n in sorted(per.items())) + f"), {len(entries) - len(boxed)} null ("
            + ", ".join(f"{n} {c}" for c, n in sorted(nulls.items())) + ")")


AGREEMENT = "annotations/agreement.json"


@figure("annotation-agreement")
def annotation_agreement(r: Results) -> str:
    """Agreement of the two test annotators (``python -m explain.evaluation.lesions agreement ... --report``)."""
    a = r.json(AGREEMENT)
    o = a["overall"]
    per = "; ".join(f"{c} {v['both_boxed']} images boxed by both: {v['median_iou']:.2f} / "
                    f"{v['share_iou_at_least_0.5']:.2f}" for c, v in a["per_class"].items())
    return (f"{o['images']} images, {o['both_boxed']} boxed by both, median IoU **{o['median_iou']:.2f}**, share "
            f"with IoU >= 0.5 **{o['share_iou_at_least_0.5']:.2f}** ({per}); {o['both_null']} null for both, "
            f"{o['one_null']} null for one annotator only; {len(a['disagreements'])} disagreements left out")


@figure("annotation-files")
def annotation_files(r: Results) -> str:
    """Every raw annotation file: annotator, entries, boxes and nulls per class."""
    rows, totals = [], {}
    for path in sorted((r.root / "annotations/raw").glob("*.json")):
        name = f"annotations/raw/{path.name}"
        entries = _entries(r, name)
        per = {}
        for e in entries:
            boxed, seen = per.get(_class(e), (0, 0))
            per[_class(e)] = (boxed + (e.get("box") is not None), seen + 1)
        if path.name.startswith("train_"):
            for c, (b, n) in per.items():
                tb, tn = totals.get(c, (0, 0))
                totals[c] = (tb + b, tn + n)
        boxed = sum(b for b, _ in per.values())
        rows.append([f"`{path.name}`", r.json(name).get("annotator", ""), len(entries), boxed, len(entries) - boxed,
                     ", ".join(f"{c} {b} of {n}" for c, (b, n) in sorted(per.items()))])
    text = table(["file", "annotator", "entries", "boxes", "null", "boxed per class"], rows, "llrrrl")
    total = sum(b for b, _ in totals.values())
    return text + (f"\n\nTraining boxes in all: {total} (" +
                   ", ".join(f"{c} {b} of {n} entries boxed" for c, (b, n) in sorted(totals.items())) + ").")


@figure("annotation-boxes")
def annotation_boxes(r: Results) -> str:
    """Number of boxed test images (for sentences such as "on N boxed test images")."""
    return str(sum(e.get("box") is not None for e in _entries(r, ANNOTATIONS)))


# ---------------------------------------------------------------- the doctor example

@figure("doctor-transcript")
def doctor_transcript(r: Results) -> str:
    d = r.json(DOCTOR)
    return "```\n$ " + d["command"] + "\n" + d["transcript"] + "\n```"


@figure("doctor-correct")
def doctor_correct(r: Results) -> str:
    d = r.json(DOCTOR)
    c = d["correct_bundle"]
    summary = c["last_line"].rsplit(" (", 1)[0]
    text = f"The same run on the correct bundle, `--model models/default`, ends with `{summary}`"
    if c["not_ok"]:
        text += ":\n\n```\n" + "\n".join(c["not_ok"]) + "\n```\n"
    else:
        text += "."
    same = "equal" if d["fixed_bundle_predictions_equal_default"] else "do NOT equal"
    return text + (f"\nThe bundle written by `--write-bundle` gives predictions on the {len(d['images'])} images "
                   f"that {same} the default bundle's. The run above took {d['wall_s']:.0f} s, imports included, "
                   f"on 2 CPU cores shared with other jobs.")


# ---------------------------------------------------------------- benchmarks

def _bench_rows(r: Results) -> dict:
    return {(row["model"], row["metric"]): row for row in r.json(BENCH)["rows"]}


def _sig(x: float) -> str:
    """2 decimals below 2, 1 below 20, none above: the precision the timing noise allows."""
    return f"{x:.2f}" if x < 2 else f"{x:.1f}" if x < 20 else f"{x:.0f}"


@figure("bench-table")
def bench_table(r: Results) -> str:
    rows, out = _bench_rows(r), []
    for title, metric, fmt in (
        ("predict + Grad-CAM / compiled forward pass alone (batch 1)", "predict+Grad-CAM / forward pass (batch 1)", "ratio"),
        ("keras.io-style Grad-CAM (model rebuilt per call, eager tape) / ours", "keras.io Grad-CAM / ours (batch 1)", "ratio"),
        ("heatmaps of all 4 classes / one class", "all 4 class maps / one map", "ratio"),
        ("images per second, batch 1 / 4 / 16", "throughput", "throughput"),
        ("in-process work of one app request", "in-process work of one app request", "ms"),
        ("Score-CAM / Grad-CAM (the app's channel cap)", "Score-CAM / Grad-CAM (batch 1)", "ratio"),
        ("app cold start to first API answer", "app cold start to first /predict", "s"),
        ("app memory growth over 500 requests", "app RSS growth over 500 requests", "MB"),
        ("latency through the app, 1 client: p50 / p95", "latency p%s, 1 client", "p50p95"),
        ("same image again (stored explanation re-blended): p50", "latency p50, 1 client, same image again", "ms"),
        ("latency, 8 concurrent clients: p50 / p95", "latency p%s, 8 clients", "p50p95"),
        ("request errors", "request errors (all app requests)", "count"),
    ):
        cells, target = [], ""
        for model in ("default", "xception"):
            if fmt == "throughput":
                cells.append(" / ".join(_sig(rows[(model, f"throughput, batch {b}")]["value"]) for b in (1, 4, 16)))
                continue
            if fmt == "p50p95":
                p50, p95 = rows[(model, metric % "50")], rows[(model, metric % "95")]
                cells.append(f"{p50['value']:.0f} / {p95['value']:.0f} ms")
                target = "p95 <= 1.25 x 8 x p50(1)" if p95["target"] else target
                continue
            row = rows[(model, metric)]
            target = row["target"] or target
            value = {"ratio": f"**{_sig(row['value'])}x** ({row['note']})",
                     "ms": f"{row['value']:.0f} ms", "s": f"{row['value']:.1f} s", "MB": f"{row['value']:.1f} MB",
                     "count": f"{row['value']:.0f}"}[fmt]
            cells.append(value)
        out.append([title] + cells + [target])
    return table(["", "default model", "Xception 299 (untrained)", "target"], out)


@figure("bench-run")
def bench_run(r: Results) -> str:
    b = r.json(BENCH)
    v = b["versions"]
    return (f"Run on {b['date'][:10]} on {b['cpu_count']} CPU cores ({b['cpu']}, TensorFlow {v['tensorflow']}, "
            f"Keras {v['keras']}, Gradio {v['gradio']}, no GPU)")


@figure("browser-latency")
def browser_latency(r: Results) -> str:
    b = r.json("benchmarks/browser_latency.json")
    return (f"Latest run ({b['date'][:10]}, {b['cpu_count']} cores shared with other jobs, {b['n']} uploads): browser "
            f"median {1000 * b['browser_median_s']:.0f} ms, API round trip {1000 * b['api_median_s']:.0f} ms, ratio "
            f"{b['ratio']:.2f}x (target <= {b['target']}x); raw timings in "
            f"[`browser_latency.json`](browser_latency.json)")


@figure("bench-latency")
def bench_latency(r: Results) -> str:
    """README sentence: the default model's end-to-end p50 through the app."""
    row = _bench_rows(r)[("default", "latency p50, 1 client")]
    cores = r.json(BENCH)["cpu_count"]
    return f"On {cores} CPU cores a request through the app takes **{row['value']:.0f} ms** (p50, one client"


# ---------------------------------------------------------------- serving (benchmarks/serve_bench.py)

SERVE = "benchmarks/results/serve_bench.json"
SERVE_CLIENTS = ("1", "8", "16")
SERVE_SETUPS = {"in_process": "in-process (every core)", "ray_1r_batched": "Ray, 1 replica, batched",
                "ray_1r_unbatched": "Ray, 1 replica, unbatched", "ray_2r_batched": "Ray, 2 replicas, batched",
                "ray_2r_unbatched": "Ray, 2 replicas, unbatched"}


def _serve_table(block: dict, cpu: list[tuple[str, str]]) -> str:
    """Setups x clients: requests/s (p50 ms), then CPU ms per request at 16 clients."""
    head = ["setup"] + [f"{c} client{'s' if c != '1' else ''}: req/s (p50 ms)" for c in SERVE_CLIENTS] \
        + [title for title, _ in cpu]
    rows = []
    for name, runs in block.items():
        cells = [f"{runs[c]['per_s']:.1f} ({runs[c]['p50_ms']:.0f})" + (f", {runs[c]['errors']} errors"
                                                                       if runs[c].get("errors") else "")
                 for c in SERVE_CLIENTS]
        cells += ["-" if runs["16"].get(key) is None else f"{runs['16'][key]:.1f}" for _, key in cpu]
        rows.append([SERVE_SETUPS.get(name, name)] + cells)
    return table(head, rows, "l" + "r" * (len(head) - 1))


@figure("serve-run")
def serve_run(r: Results) -> str:
    s = r.json(SERVE)
    return (f"Measured {s['date'][:10]} on {s['cpus']} CPU cores shared with other jobs, {s['images']} test-split "
            f"slices, one run per point: `{s['command']}`.")


@figure("serve-chunks")
def serve_chunks(r: Results) -> str:
    c = r.json(SERVE)["chunks"]
    return table(["images per call"] + list(c),
                 [["images/s (best of 3)"] + [f"{v['per_s']:.1f}" for v in c.values()],
                  ["CPU ms per image"] + [f"{v['cpu_ms_per_image']:.1f}" for v in c.values()]],
                 "l" + "r" * len(c))


@figure("serve-batch-tab")
def serve_batch_tab(r: Results) -> str:
    b = r.json(SERVE)["batch_tab"]
    return (f"the tab's work (expand, explain in chunks, overlays, CSV) runs {b['images']} files at "
            f"{b['batch_tab_per_s']:.1f} images/s, the model alone (explain_batch in chunks of 16 on the same "
            f"files) at {b['model_alone_per_s']:.1f}: ratio **{b['ratio']:.3f}** (target 0.80); one image per "
            f"call: {b['one_at_a_time_per_s']:.1f} images/s")


@figure("serve-scaling")
def serve_scaling(r: Results) -> str:
    s = r.json(SERVE)
    return (f"2 replicas on 2 cores against 1 replica on 1 core, batched, 16 clients: **{s['scaling_2r_vs_1r']:.2f}x** "
            f"measured (target 1.7x); from the replicas' CPU per request, the cores allow "
            f"**{s['capacity_2r_vs_1r']:.2f}x**")


#: The CPU columns of the two serving tables: the service's and the app's.
SERVE_CPU = {"service": [("replica CPU ms", "replica_cpu_ms_per_request"), ("caller CPU ms", "caller_cpu_ms_per_request")],
             "app": [("front CPU ms", "front_cpu_ms_per_request"), ("replica CPU ms", "replica_cpu_ms_per_request")]}


@figure("serve-table")
def serve_table(r: Results, part: str) -> str:
    """``serve-table service`` (straight to the model service) or ``serve-table app`` (through the app)."""
    return _serve_table(r.json(SERVE)[part], SERVE_CPU[part])


@figure("serve-need")
def serve_need(r: Results, what: str) -> str:
    """Inline: how many fronts or replicas of one core serve the sizing's target rate."""
    s = r.json(SERVE)["sizing"]
    return str(s["fronts_of_1_core"] if what == "fronts" else s["replicas_of_1_core"])


@figure("serve-sizing")
def serve_sizing(r: Results) -> str:
    s = r.json(SERVE)["sizing"]
    return (f"a front spends **{s['front_cpu_ms']:.1f} ms** of CPU per request and a replica "
            f"**{s['replica_cpu_ms']:.1f} ms** (2 batched replicas, 16 clients, through the app); at "
            f"{s['utilisation']:.0%} utilisation {s['target_rps']} requests/s need {s['front_cores']:.1f} front cores "
            f"(**{s['fronts_of_1_core']} fronts** of one core) and {s['replica_cores']:.1f} replica cores "
            f"(**{s['replicas_of_1_core']} replicas** of one core)")


# ---------------------------------------------------------------- the trust checks (docs/trust.md)

TRUST = "benchmarks/results/input_check.json"


def _flag_row(name: str, row: dict, labels: list[str]) -> list:
    return ([name, num(row["auroc"]), f"{num(row['ood_flagged'])} ({row['ood_flagged_count']})",
             num(row["test_flagged"])] + [num(row["test_flagged_per_class"][c]) for c in labels]
            + [num(row["val_flagged"])])


def _flag_head(first: str, labels: list[str]) -> list[str]:
    return ([first, "AUROC", "corpus flagged (target >= 0.95)", "clean test flagged"]
            + [f"{cname(c)} (<= 0.05)" for c in labels] + ["val flagged"])


@figure("input-check-methods")
def input_check_methods(r: Results) -> str:
    """The detectors side by side, each thresholded by the same rule on the validation split."""
    t = r.json(TRUST)
    rows = [_flag_row(("**" + n + "** (shipped)") if n == t["chosen"] else n, row, t["labels"])
            for n, row in t["methods"].items()]
    return table(_flag_head("method", t["labels"]), rows, "l" + "r" * (len(rows[0]) - 1))


@figure("input-check-sweep")
def input_check_sweep(r: Results) -> str:
    """The chosen detector at other validation quantiles: the trade-off a threshold makes."""
    t = r.json(TRUST)
    shipped = r.json(BUNDLE)["input_check"]["fitted_on"]["quantile"]
    rows = [_flag_row(q + (" (shipped)" if float(q) == shipped else ""),
                      row, t["labels"]) for q, row in t["sweep"].items()]
    return table(_flag_head("validation quantile per class", t["labels"]), rows, "l" + "r" * (len(rows[0]) - 1))


@figure("input-check-members")
def input_check_members(r: Results) -> str:
    """Every corpus member: what it is, where it comes from, its score and the model's answer."""
    t = r.json(TRUST)
    rows = []
    for m in t["members"]:
        score = m["score"] if isinstance(m["score"], str) else f"{m['score']:.1f}"
        name = m["name"] + (" (real MRI, not counted)" if m["reference"] else "")
        rows.append([name, m["what"], m["source"], score, "**yes**" if m["flagged"] else "no",
                     f"{cname(m['predicted'])} {m['probability']:.2f}"])
    return table(["member", "what it is", "from", "score", "flagged", "the model says"], rows, "llllll")


@figure("region-check-test")
def region_check_test(r: Results) -> str:
    """The region check over the clean test split: how often each removal changes the class."""
    rc = r.json(TRUST)["region_check_test"]
    rows = [[cname(k), row["images"], num(row["class_changed"]), num(row["class_changed_random"]),
             num(row["median_drop"]), num(row["median_drop_random"]), num(row["median_removed_share"])]
            for k, row in rc.items() if isinstance(row, dict)]
    return table(["test images (true class)", "n", "class changed without the region", "... without a random region",
                  "median drop of p", "... random region", "median share of the image removed"], rows, "lrrrrrr")


@figure("check-cost")
def check_cost(r: Results) -> str:
    t = r.json(TRUST)
    rows = [[name, f"{row['seconds'] * 1000:.1f}", f"{row['added_ms']:+.1f}", f"{row['ratio']:.2f}"]
            for name, row in t["cost"].items()]
    return table(["one request (`Explainer.explain`, one image)", "ms (median)", "added ms", "ratio"], rows, "lrrr")


@figure("trust")
def trust_value(r: Results, key: str) -> str:
    """One figure of the benchmark inline: auroc, ood, ood-count, test, worst-class, threshold, date, command..."""
    t = r.json(TRUST)
    row = t["methods"][t["chosen"]]
    values = {
        "auroc": num(row["auroc"]), "ood": num(row["ood_flagged"]), "ood-count": row["ood_flagged_count"],
        "test": num(row["test_flagged"]), "worst-class": num(max(row["test_flagged_per_class"].values())),
        "threshold": f"{row['threshold']:.1f}", "msp-auroc": num(t["methods"]["max_softmax"]["auroc"]),
        "msp-ood": num(t["methods"]["max_softmax"]["ood_flagged"]), "date": t["date"],
        "command": f"`{t['command']}`", "corpus": str(t["counts"]["corpus"]), "chosen": t["chosen"],
        "both-ms": f"{t['cost']['both']['added_ms']:.0f}", "input-ms": f"{t['cost']['input check']['added_ms']:.1f}",
        "region-ms": f"{t['cost']['region check']['added_ms']:.0f}",
        "base-ms": f"{t['cost']['no checks']['seconds'] * 1000:.0f}",
        "missed": ", ".join(m["name"] for m in t["members"] if not m["reference"] and not m["flagged"]),
        "colour-max": num(max(t["colour_share_max"][s] for s in ("val", "test"))),
        "colour-train": num(t["colour_share_max"]["train"]),
        "region-changed": num(t["region_check_test"]["all"]["class_changed"]),
        "region-changed-random": num(t["region_check_test"]["all"]["class_changed_random"]),
        "removed-share": num(t["region_check_test"]["all"]["median_removed_share"]),
        "empty-maps": str(t["region_check_test"]["empty_maps"]),
    }
    return values[key]


# ---------------------------------------------------------------- the machinery

def render_text(text: str, results: Results, where: str = "") -> tuple[str, list[str]]:
    """``text`` with every block re-rendered, and the names of the blocks that changed."""
    changed = []

    def replace(match: re.Match) -> str:
        name, *args = match.group(1).split()
        if name not in FIGURES:
            raise KeyError(f"{where}: unknown figure {name!r} (known: {', '.join(sorted(FIGURES))})")
        body = FIGURES[name](results, *args).strip("\n")
        old = match.group(2)
        new = f"\n{body}\n" if old.startswith("\n") else body
        if new != old:
            changed.append(f"{where}: {match.group(1)}")
        return f"<!-- figures: {match.group(1)} -->{new}<!-- /figures -->"

    return BLOCK.sub(replace, text), changed


def documents(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in DOCUMENTS for p in root.glob(pattern)})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python docs/render.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if any block differs")
    args = p.parse_args(argv)
    results, stale = Results(ROOT), []
    for path in documents():
        text = path.read_text()
        new, changed = render_text(text, results, str(path.relative_to(ROOT)))
        stale += changed
        if changed and not args.check:
            path.write_text(new)
    for line in stale:
        print(("differs: " if args.check else "rendered: ") + line)
    if args.check and stale:
        print("run `python docs/render.py` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
