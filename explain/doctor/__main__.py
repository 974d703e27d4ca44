"""``python -m explain.doctor``: diagnose a model's settings on a folder of images.

    python -m explain.doctor --model MODEL --images DIR [--labels a,b,...] [--preprocessing MODE]
        [--color-mode MODE] [--layer NAME] [--limit N] [--json OUT] [--write-bundle OUT]

MODEL: a bundle folder (its bundle.json holds the claims; options override
them) or a bare .keras/.h5 file (the options are the claims; any left out
are found). Default: the bundled default model. Prints one line per check
(OK / WARNING / ERROR, with the numbers) after a table of every
preprocessing and colour-mode setting. Exit status: 1 when any check found
an ERROR, 0 otherwise, 2 when the model or the images cannot be read.
``--write-bundle`` writes a bundle with the recommended settings, which
``python app.py --model OUT`` serves.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv=None):
    from ..bundle import add_model_options

    p = argparse.ArgumentParser(prog="python -m explain.doctor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    # The claims to check: the same options as every other entry point, all optional here.
    add_model_options(p)
    p.add_argument("--images", required=True, help="folder of images, or of one sub-folder per class")
    p.add_argument("--limit", type=int, default=None, help="use at most N images, spread evenly (default: all)")
    p.add_argument("--json", dest="json_out", help="write the full report as JSON to this file")
    p.add_argument("--write-bundle", help="write a bundle folder with the recommended settings")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logging")
    return p.parse_args(argv)


def settings_table(report: dict) -> list[str]:
    """Rows of the settings table: one per preprocessing x colour mode actually run."""
    by = {k: v for k, v in report["preprocessing"]["by_setting"].items() if not v.get("same_as")}
    labelled = report["images"]["labelled"]
    head = f"{'setting':<20} "
    head += "given-order acc.  best-order acc.  balanced  " if labelled else ""
    head += "top p  entropy  largest class  BN shift"
    rows = [head]
    for name, entry in by.items():
        free = entry["label_free"]
        row = f"{name:<20} "
        if labelled:
            acc = entry["accuracy"]["mean"] if entry["accuracy"] else None
            row += f"{'n/a' if acc is None else f'{acc:.2f}':>16}  {entry['accuracy_best_order']['mean']:>15.2f}  "
            row += f"{entry['balanced_accuracy']['mean']:>8.2f}  "
        shift = "n/a" if free["bn_shift"] is None else f"{free['bn_shift']:.2f}"
        row += (f"{free['mean_top_probability']:>5.2f}  {free['mean_entropy']:>7.2f}  "
                f"{free['largest_class_share']:>13.0%}  {shift:>8}")
        rows.append(row)
    same = sorted(k for k, v in report["preprocessing"]["by_setting"].items() if v.get("same_as"))
    if same:
        rows.append(f"(same inputs as a row above: {', '.join(same)})")
    return rows


def render(diagnosis) -> str:
    """The terminal report: header, settings table, one line per finding, the recommendation."""
    r = diagnosis.report
    images = r["images"]
    where = (f"{images['n']} images in {len(images['classes'])} class folders" if images["labelled"]
             else f"{images['n']} images without class folders (label-free checks)")
    lines = [f"model {r['model']}; {where} of {images['folder']}", ""]
    lines += settings_table(r) + [""]
    lines += [f.line() for f in diagnosis.findings]
    rec = diagnosis.recommended()
    lines += ["", "recommended: " + " ".join(
        f"--{name.replace('_', '-')} {','.join(value) if isinstance(value, list) else value}"
        for name, value in rec.items() if value is not None)]
    errors = sum(f.severity == "ERROR" for f in diagnosis.findings)
    warnings = sum(f.severity == "WARNING" for f in diagnosis.findings)
    lines.append(f"{errors} errors, {warnings} warnings ({r['seconds']} s)")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from ..quiet import import_tensorflow

    tf = import_tensorflow(quiet=not args.verbose)
    if tf is not None:
        # Every measured layer gets its own compiled engine; TensorFlow's "retracing" advice does not apply.
        tf.get_logger().setLevel("ERROR")
    from ..bundle import default_bundle_path, save_bundle
    from ..errors import ExplainError
    from . import diagnose

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    try:
        size = tuple(int(v) for v in args.input_size.lower().split("x")) if args.input_size else None
        diagnosis = diagnose(args.model or default_bundle_path(), args.images, labels=labels,
                             preprocessing=args.preprocessing, color_mode=args.color_mode, layer=args.layer,
                             limit=args.limit, input_size=size, show_progress=True)
    except (ExplainError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(diagnosis))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(diagnosis.report, indent=2) + "\n")
        print(f"report written to {args.json_out}")
    if args.write_bundle:
        try:
            bundle = diagnosis.bundle()
        except ExplainError as exc:
            print(f"error: no bundle written: {exc}", file=sys.stderr)
            return 2
        bundle.path = save_bundle(bundle, args.write_bundle)
        print(f"bundle written to {args.write_bundle}: {bundle.describe()}; serve it with "
              f"`python app.py --model {args.write_bundle}`")
    return diagnosis.exit_code


if __name__ == "__main__":
    sys.exit(main())
