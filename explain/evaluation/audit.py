"""Faithfulness audit: every CAM method and metric over a split of clean_split.csv.

    python -m explain.evaluation.audit --model BUNDLE --split test [--methods gradcam scorecam ...] [--limit N]

Per method (and for the random-map and centre-Gaussian baselines): deletion
and insertion AUC, Average Drop / Increase in Confidence, ROAD MoRF / LeRF,
energy inside the head, time per image; means with 95 % bootstrap intervals,
overall, per class and pooled over the tumour classes. Then the
cascading-randomisation sanity check (Adebayo et al. 2018) for the gradient
methods. Writes ``audit.json`` and ``audit.md`` to ``--out``.

Per-image results are appended to ``OUT/cache.jsonl`` as they are computed,
so an interrupted run resumes where it stopped. Each record carries a key of
the model's weights and every setting that changes a number (steps, ROAD
fractions, input spec, target layer, temperature): records of another model
or other settings are ignored, never reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..metrics import faithfulness, plausibility, road, sanity, stats
from ..bundle import Bundle, add_model_options, load_from_args
from .dataset import data_dir, read_split
from ..methods import GRADIENT_METHODS, METHODS, compute_maps
from ..pipeline import Explainer
from ..preprocess import prepare_pixels
from ..tta import smoothed_maps
from ..progress import progress

BASELINES = ("random", "centre")
TTA_SUFFIX = "+tta"
METRICS = ("deletion_auc", "insertion_auc", "average_drop", "increase", "road_morf", "road_lerf",
           "head_energy", "seconds")
#: ROAD's removal fractions in the audit: every other one of the paper's nine
#: keeps the cost (ten imputations per map) near that of the deletion curve.
AUDIT_ROAD_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
#: Class names that mean "no lesion"; the other classes form the "tumour
#: classes" block, where a map should sit on the lesion inside the head.
NO_TUMOUR_LABELS = frozenset({"notumor", "no_tumor", "no tumor", "no_tumour", "no tumour", "normal", "healthy"})


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m explain.evaluation.audit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(p)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--data", help="dataset folder (default $BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--tta", nargs="*", default=["gradcam"], choices=list(METHODS), metavar="METHOD",
                   help="also audit these methods with test-time-augmentation smoothing, as rows "
                        "METHOD+tta (default: gradcam; --tta alone: none)")
    p.add_argument("--limit", type=int, help="at most N images, spread evenly over the split")
    p.add_argument("--steps", type=int, default=faithfulness.DEFAULT_STEPS, help="deletion/insertion steps")
    p.add_argument("--sanity-images", type=int, default=24, help="images for the randomisation check")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--lesions", help="lesion annotation file (see explain/evaluation/lesions.py): adds lesion rows")
    p.add_argument("--lesions-only", action="store_true",
                   help="with --lesions: only the lesion rows (no faithfulness curves, no sanity check); "
                        "an audit.json already in --out keeps its other results")
    p.add_argument("--out", default="audit-out")
    return p.parse_args(argv)


def baseline_map(name: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    return plausibility.random_map(shape, seed) if name == "random" else plausibility.center_gaussian_map(shape)


def row_title(name: str) -> str:
    """Report title of a method, a TTA variant ("gradcam+tta") or a baseline."""
    base = name.removesuffix(TTA_SUFFIX)
    if base in METHODS:
        return METHODS[base].label + (" + TTA" if name.endswith(TTA_SUFFIX) else "")
    return f"baseline: {name}"


def method_map(explainer: Explainer, name: str, rgb, x, cls: int) -> np.ndarray:
    """(h', w') map in [0, 1] of method ``name`` (possibly "+tta") for class ``cls``."""
    engine = explainer.engine()
    if name.endswith(TTA_SUFFIX):
        base = name.removesuffix(TTA_SUFFIX)
        maps, _ = smoothed_maps(lambda b, c: compute_maps(engine, b, c, method=base),
                                [prepare_pixels(rgb, explainer.spec)], explainer.spec, [cls])
        return maps[0]
    return compute_maps(engine, x[None], [cls], method=name)[0][0]


def image_scores(x, rgb, cam, predict_fn, cls: int, steps: int) -> dict[str, float]:
    """Every per-image metric of one map. x: (h, w, C) model input; cam: (h', w') in [0, 1]."""
    drop, increase = faithfulness.average_drop_and_increase(x[None], cam[None], predict_fn, [cls])
    return {
        "deletion_auc": faithfulness.deletion_auc(x, cam, predict_fn, cls, steps=steps),
        "insertion_auc": faithfulness.insertion_auc(x, cam, predict_fn, cls, steps=steps),
        "average_drop": float(drop),
        "increase": float(increase),
        **road.road_scores(x, cam, predict_fn, cls, fractions=AUDIT_ROAD_FRACTIONS),
        "head_energy": plausibility.energy_inside(cam, plausibility.head_mask(rgb)),
    }


def cache_key(bundle: Bundle, steps: int) -> str:
    """Short hash of the weights and every setting that changes an audit number."""
    settings = {"weights": bundle.weights_digest(), "steps": steps, "road": AUDIT_ROAD_FRACTIONS,
                "spec": repr(bundle.spec), "target_layer": bundle.target_layer,
                "temperature": bundle.temperature, "labels": bundle.labels}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def read_cache(cache_path: Path, key: str) -> dict:
    """(path, method) -> record of the records in ``cache_path`` made under ``key``."""
    done = {}
    if cache_path.is_file():
        for line in cache_path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("key") == key and all(m in rec for m in METRICS):
                done[(rec["path"], rec["method"])] = rec
    return done


def audit_images(explainer: Explainer, items, folder: Path, methods, steps: int, cache_path: Path,
                 key: str):
    """Yield one record per (image, method or baseline); records cached under ``key`` are read,
    not recomputed. Each method runs once untimed before its first timed call, so that its
    time per image does not include building its engine (or tracing its graph)."""
    done = read_cache(cache_path, key)
    engine = explainer.engine()
    predict_fn = engine.predict
    warmed = set()
    with cache_path.open("a") as cache:
        for n, item in enumerate(items, start=1):
            wanted = [m for m in (*methods, *BASELINES) if (item.path, m) not in done]
            if wanted:
                rgb, x = explainer.load(folder / item.path)
                cls = explainer.labels.index(item.label)  # explain the true class
                for name in wanted:
                    if name not in BASELINES and name not in warmed:
                        method_map(explainer, name, rgb, x, cls)
                        warmed.add(name)
                    start = time.perf_counter()
                    if name in BASELINES:
                        cam = baseline_map(name, engine.map_shape, seed=n)
                    else:
                        cam = method_map(explainer, name, rgb, x, cls)
                    seconds = time.perf_counter() - start
                    rec = {"key": key, "path": item.path, "label": item.label, "method": name, "seconds": seconds,
                           **image_scores(x, rgb, cam, predict_fn, cls, steps)}
                    cache.write(json.dumps(rec) + "\n")
                    cache.flush()
                    done[(item.path, name)] = rec
            progress(n, len(items))
    keys = {(i.path, m) for i in items for m in (*methods, *BASELINES)}
    return [rec for key, rec in done.items() if key in keys]


def summarise(records, names, n_boot: int) -> dict:
    """{method: {metric: {mean, low, high, n}}} under "overall", "per_class" and "tumour_classes".

    "tumour_classes" pools the images of every class not in NO_TUMOUR_LABELS
    ({} when there are none).
    """
    def block(recs):
        out = {}
        for name in names:
            rows = [r for r in recs if r["method"] == name]
            if rows:
                out[name] = {m: stats.bootstrap_mean([r[m] for r in rows], n_boot) for m in METRICS}
        return out

    labels = sorted({r["label"] for r in records})
    return {"overall": block(records),
            "per_class": {lab: block([r for r in records if r["label"] == lab]) for lab in labels},
            "tumour_classes": block([r for r in records if r["label"].lower() not in NO_TUMOUR_LABELS])}


def spread(items, limit: int | None) -> list:
    """At most ``limit`` of ``items``, evenly spaced (all of them for None or 0)."""
    if limit and len(items) > limit:
        return [items[int(i * len(items) / limit)] for i in range(limit)]
    return list(items)


def sanity_subset(items, count: int) -> list:
    """The ``count`` images of the randomisation check: every k-th of ``items``."""
    return list(items[:: max(1, len(items) // count)][:count])


def cascade_correlations(model, maps_of) -> dict:
    """Cascading randomisation of ``model`` from the output down to the input.

    maps_of: model -> {name: (B, h, w) maps}, called once for the trained model
    and once per step on a clone with the blocks so far re-initialised.
    Returns {"layers": group per step, "methods": {name: mean Spearman per step}}.
    """
    original = maps_of(model)
    result = {"layers": [], "methods": {name: [] for name in original}}
    for k, (group, layer_names) in enumerate(sanity.cascade_steps(model), start=1):
        randomised = maps_of(sanity.randomize_layers(model, layer_names, seed=k))
        result["layers"].append(group)
        for name, maps in original.items():
            rho = [sanity.spearman(a, b) for a, b in zip(maps, randomised[name])]
            result["methods"][name].append(float(np.nanmean(rho)) if not np.all(np.isnan(rho)) else float("nan"))
    return result


def sanity_check(bundle: Bundle, explainer: Explainer, items, folder: Path, methods) -> dict:
    """Cascading randomisation from the output layer down to the input.

    Returns {"layers": group per step, "methods": {name: mean Spearman per
    step}, "passed": {name: bool}} (see :func:`explain.metrics.sanity.sanity_passes`).
    """
    loaded = [explainer.load(folder / i.path) for i in items]
    batch = np.stack([x for _, x in loaded])
    classes = [explainer.labels.index(i.label) for i in items]

    def maps_of(model):
        ex = explainer if model is bundle.model else Explainer(
            Bundle(model, bundle.labels, bundle.spec, bundle.target_layer, bundle.temperature))
        return {m: compute_maps(ex.engine(), batch, classes, method=m)[0] for m in methods}

    result = cascade_correlations(bundle.model, maps_of)
    result["pass_below"] = sanity.SANITY_PASS_BELOW
    result["passed"] = {m: sanity.sanity_passes(v) for m, v in result["methods"].items()}
    return result


def to_markdown(report: dict) -> str:
    lines = [f"# CAM audit: {report['model']}", "",
             f"{report['n_images']} images of the `{report['split']}` split of clean_split.csv, "
             f"maps of the true class; {report['date']}, command `{report['command']}`.", "",
             "Mean [95 % bootstrap interval]. Deletion AUC, Average Drop and ROAD MoRF: lower is better; "
             "insertion AUC, Increase in Confidence, ROAD LeRF and head energy: higher is better. "
             "ROAD: mean class probability with the most (MoRF) or least (LeRF) salient "
             f"{', '.join(f'{f:.0%}' for f in AUDIT_ROAD_FRACTIONS)} of the pixels imputed from their "
             "neighbours (noisy linear imputation).", "",
             "| method | deletion AUC | insertion AUC | avg drop % | increase % | ROAD MoRF | ROAD LeRF "
             "| head energy | s / image |",
             "|---|---|---|---|---|---|---|---|---|"]

    def cell(stat, digits=3):
        return f"{stat['mean']:.{digits}f} [{stat['low']:.{digits}f}, {stat['high']:.{digits}f}]"

    for name, row in report["summary"]["overall"].items():
        title = row_title(name)
        lines.append(f"| {title} | {cell(row['deletion_auc'])} | {cell(row['insertion_auc'])} | "
                     f"{cell(row['average_drop'], 1)} | {cell(row['increase'], 1)} | "
                     f"{cell(row['road_morf'])} | {cell(row['road_lerf'])} | "
                     f"{cell(row['head_energy'])} | {row['seconds']['mean']:.3f} |")
    lines += ["", "## Per class (deletion AUC / insertion AUC / head energy, means)", "",
              "| class | " + " | ".join(report["summary"]["overall"]) + " |",
              "|---|" + "---|" * len(report["summary"]["overall"])]
    for label, block in report["summary"]["per_class"].items():
        cells = [f"{s['deletion_auc']['mean']:.3f} / {s['insertion_auc']['mean']:.3f} / {s['head_energy']['mean']:.2f}"
                 for s in block.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    tumour = report["summary"].get("tumour_classes")
    if tumour:
        count = next(iter(tumour.values()))["head_energy"]["n"]
        lines += ["", f"## Head energy on the tumour classes ({count} images)", "",
                  "| method | head energy |", "|---|---|"]
        lines += [f"| {row_title(name)} | {cell(row['head_energy'])} |" for name, row in tumour.items()]
    check = report.get("sanity")
    if check:
        lines += ["", "## Sanity check: cascading randomisation", "",
                  "Mean Spearman rank correlation between the map of the trained model and the map after "
                  "re-initialising every block from the output down to the named one (1.0 = unchanged, "
                  "the original-vs-original value). A method passes when both the first column (only the "
                  "output layer re-initialised: does the map depend on the class weights at all?) and the "
                  f"fully randomised network keep less than {check.get('pass_below', sanity.SANITY_PASS_BELOW)} "
                  "of it.", "",
                  "| method | " + " | ".join(f"to {n}" for n in check["layers"]) + " | passes |",
                  "|---|" + "---|" * (len(check["layers"]) + 1)]
        passed = check.get("passed", {})
        for m, values in check["methods"].items():
            verdict = {True: "yes", False: "no"}.get(passed.get(m), "?")
            lines.append(f"| {METHODS[m].label} | " + " | ".join(f"{v:.3f}" for v in values)
                         + f" | {verdict} |")
    return "\n".join(lines) + "\n"


def lesion_summary(explainer: Explainer, lesions: dict, folder: Path, methods, n_boot: int,
                   base: Path | None = None) -> dict:
    """Lesion metrics (explain.metrics.localisation) per method and baseline, overall and per class.

    Only annotated images with a box or mask count. The map explains the
    image's true class (the lesion's), upsampled to the original image as
    the app shows it. Returns {"n_images", "rows": {row: {"overall"|class:
    {metric: bootstrap_mean}}}}.
    """
    from ..metrics.counterfactual import COUNTERFACTUAL_METRICS, lesion_counterfactuals
    from ..metrics.localisation import METRICS, RELIANCE_METRICS, baseline_maps, lesion_reliance, lesion_scores
    from ..metrics.plausibility import head_mask
    from ..overlay import upsample
    from ..preprocess import preprocess

    per_row: dict[str, dict[str, list[dict]]] = {}
    reliance: dict[str, list[dict]] = {}
    counterfactual: dict[str, list[dict]] = {}
    predict_fn = explainer.engine().predict
    no_tumour = next((n for n, lab in enumerate(explainer.labels) if lab.lower() in NO_TUMOUR_LABELS), None)
    used = 0
    for key in sorted(lesions):
        lesion = lesions[key]
        rgb, x = explainer.load(folder / key)
        mask = lesion.mask_array(rgb.shape[:2], base)
        if mask is None:
            continue
        used += 1
        label = Path(key).parent.name
        cls = explainer.class_index(label)
        needs = lesion_reliance(x, mask, predict_fn, cls)
        reliance.setdefault("overall", []).append(needs)
        reliance.setdefault(label, []).append(needs)
        if no_tumour is not None:
            removed = lesion_counterfactuals(rgb, mask, head_mask(rgb), lambda im: preprocess(im, explainer.spec),
                                             predict_fn, cls, no_tumour, key)
            for group in ("overall", label):
                counterfactual.setdefault(group, []).append(removed)
        maps = {name: upsample(method_map(explainer, name, rgb, x, cls), rgb.shape[:2]) for name in methods}
        maps.update({f"baseline: {name}": heat for name, heat in baseline_maps(rgb).items()})
        for name, heat in maps.items():
            rows = per_row.setdefault(name, {})
            scores = lesion_scores(heat, mask)
            rows.setdefault("overall", []).append(scores)
            rows.setdefault(label, []).append(scores)
    def summary(groups: dict[str, list[dict]], metrics) -> dict:
        return {group: {m: stats.bootstrap_mean([s[m] for s in scores], n_boot) for m in metrics}
                for group, scores in groups.items()}

    return {"n_images": used, "metrics": list(METRICS),
            "rows": {name: summary(groups, METRICS) for name, groups in per_row.items()},
            "reliance_metrics": list(RELIANCE_METRICS), "reliance": summary(reliance, RELIANCE_METRICS),
            "counterfactual_metrics": list(COUNTERFACTUAL_METRICS),
            "counterfactual": summary(counterfactual, COUNTERFACTUAL_METRICS)}


def _mean_and_interval(stat: dict) -> str:
    """A bootstrap_mean result as "mean [low, high]" to two decimals."""
    return f"{stat['mean']:.2f} [{stat['low']:.2f}, {stat['high']:.2f}]"


def lesion_markdown(summary: dict) -> str:
    metrics = summary["metrics"]
    groups = sorted({g for rows in summary["rows"].values() for g in rows}, key=lambda g: (g != "overall", g))
    lines = [f"## Lesion localisation ({summary['n_images']} annotated images; map of the true class)", ""]
    for group in groups:
        lines += [f"### {group}", "", "| map | " + " | ".join(metrics) + " |",
                  "|---|" + "---:|" * len(metrics)]
        for name, rows in summary["rows"].items():
            if group not in rows:
                continue
            cells = [_mean_and_interval(rows[group][m]) for m in metrics]
            lines.append(f"| {row_title(name) if not name.startswith('baseline') else name} ({rows[group][metrics[0]]['n']}) | "
                         + " | ".join(cells) + " |")
        lines.append("")
    if "reliance" in summary:
        metrics = summary["reliance_metrics"]
        lines += ["### Does the score need the lesion? (true class, lesion box blurred as the insertion curve starts)", "",
                  "| images | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
        for group in groups:
            block = summary["reliance"].get(group)
            if block:
                cells = [_mean_and_interval(block[m]) for m in metrics]
                lines.append(f"| {group} ({block[metrics[0]]['n']}) | " + " | ".join(cells) + " |")
        lines.append("")
    if summary.get("counterfactual"):
        lines += counterfactual_markdown(summary, groups)
    return "\n".join(lines) + "\n"


def counterfactual_markdown(summary: dict, groups) -> list[str]:
    """The counterfactual table: per group, for each removal method, the share of slices that keep
    the true class / are called "no tumour" with the lesion removed, and that keep it with a
    same-size control region removed."""
    from ..metrics.counterfactual import AUDIT_GROW_PX, AUDIT_REMOVALS

    metrics = [f"{name}_{m}" for m in AUDIT_REMOVALS for name in ("kept", "no_tumour", "control_kept")]
    lines = [f"### Counterfactuals: the lesion box (grown by {AUDIT_GROW_PX} px) removed by "
             + " and by ".join(AUDIT_REMOVALS) + " (methods training never uses); control: a region "
             "of the same size elsewhere in the head removed the same way", "",
             "| images | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for group in groups:
        block = summary["counterfactual"].get(group)
        if block:
            cells = [_mean_and_interval(block[m]) for m in metrics]
            lines.append(f"| {group} ({block[metrics[0]]['n']}) | " + " | ".join(cells) + " |")
    return lines + [""]


def main(argv=None) -> int:
    args = parse_args(argv)
    bundle = load_from_args(args)
    explainer = Explainer(bundle)
    folder = data_dir(args.data)
    items = spread(read_split(folder, args.split), args.limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    methods = [*args.methods, *(m + TTA_SUFFIX for m in args.tta)]
    report = {
        "model": str(bundle.path), "split": args.split, "n_images": len(items),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m explain.evaluation.audit " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if args.lesions_only and not args.lesions:
        raise SystemExit("error: --lesions-only needs --lesions FILE")
    if not args.lesions_only:
        records = audit_images(explainer, items, folder, methods, args.steps, out / "cache.jsonl",
                               cache_key(bundle, args.steps))
        report["summary"] = summarise(records, [*methods, *BASELINES], args.bootstrap)
        gradient = [m for m in args.methods if m in GRADIENT_METHODS]
        if gradient and args.sanity_images > 0:
            report["sanity"] = sanity_check(bundle, explainer, sanity_subset(items, args.sanity_images), folder,
                                            gradient)
    if args.lesions_only and (out / "audit.json").is_file():
        # Add the lesion rows to the report already there instead of replacing it.
        earlier = json.loads((out / "audit.json").read_text())
        report = {**earlier, "lesions_command": report["command"], "lesions_date": report["date"]}
    text = to_markdown(report) if "summary" in report else ""
    if args.lesions:
        from .lesions import read_lesions

        in_split = {i.path for i in read_split(folder, args.split)}
        lesions = {k: v for k, v in read_lesions(args.lesions).items() if k in in_split}
        report["lesions"] = {"file": args.lesions, **lesion_summary(
            explainer, lesions, folder, methods, args.bootstrap, Path(args.lesions).parent)}
        text += lesion_markdown(report["lesions"])
    report["lesions_seconds" if args.lesions_only else "seconds"] = round(time.time() - started, 1)
    (out / "audit.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "audit.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
