"""Diagnostic command line: explain images and check that the pipeline is sane.

    python -m explain IMAGE_OR_DIR ... [--model BUNDLE] [--out DIR] [--layer NAME] [--class NAME]

For every image it writes ``OUT/<image name>/`` with ``1_original.png``,
``2_heatmap.png``, ``3_overlay.png`` and ``report.json``, prints one line, and
exits with status 1 if any image failed to decode or any check failed
(2 for a model that cannot be loaded). The line also gives the two trust
checks (see docs/trust.md): whether the image is like the training slices (a
flagged image is reported, not refused: the exit status does not change) and
what removing the map's top region does to the explained class.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .quiet import import_tensorflow

# Before anything imports TensorFlow: its C++ start-up lines stay off the output unless --verbose.
import_tensorflow(quiet="--verbose" not in sys.argv[1:])

from .bundle import add_model_options, load_from_args
from .errors import ExplainError
from .io.sniff import DICOM_MAGIC, DICOM_MAGIC_OFFSET, is_dicom
from .methods import METHODS
from .pipeline import DEFAULT_METHOD, Explainer
from .progress import progress
from .report import check_line, write_result
from .serving.batching import DEFAULT_CHUNK, explain_chunks
from .tta import TTA_COPIES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".dcm", ".dicom"}


def is_slice_file(path: Path) -> bool:
    """An image by its suffix, or an extension-less file with the DICOM marker (scanners write those)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if path.suffix or not path.is_file():
        return False
    with open(path, "rb") as f:
        return is_dicom(f.read(DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m explain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    add_model_options(p)
    p.add_argument("--out", default="explain-out", help="output folder (default: explain-out)")
    p.add_argument("--class", dest="class_name", help="class to explain (default: the predicted one)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS))
    p.add_argument("--tta", action="store_true",
                   help=f"smooth each map over flipped and brightness-shifted copies ({TTA_COPIES}x the CAM cost)")
    p.add_argument("--alpha", type=float, default=0.4, help="heatmap opacity in the overlay (0..1)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logging")
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                   help=f"images per model call (default {DEFAULT_CHUNK}; memory grows with it)")
    return p.parse_args(argv)


def collect(inputs: list[str]) -> list[Path]:
    """Files as given, plus image files found under given folders (sorted)."""
    found = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and is_slice_file(p))
        else:
            found.append(path)
    return found


def _unique_folder(out: Path, source: Path, used: set) -> Path:
    name = source.stem or "image"
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}_{n}"
    used.add(candidate)
    return out / candidate


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.chunk < 1:
        print("error: --chunk must be at least 1", file=sys.stderr)
        return 2
    try:
        bundle = load_from_args(args)
        explainer = Explainer(bundle, method=args.method)
        explainer.class_index(args.class_name)
    except (ExplainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{bundle.describe()}; Grad-CAM layer {explainer.target}", file=sys.stderr)
    files = collect(args.inputs)
    if not files:
        print("error: no images found in the given inputs", file=sys.stderr)
        return 1
    out, used, failures = Path(args.out), set(), 0
    # In chunks of --chunk images per model call; a file that fails costs the others nothing.
    results = explain_chunks(explainer, files, [args.class_name] * len(files), chunk=args.chunk, tta=args.tta)
    for i, exp, error in results:
        path = files[i]
        progress(i + 1, len(files))
        if exp is None:
            failures += 1
            print(f"FAIL {path}: {error}")
            continue
        report = write_result(_unique_folder(out, path, used), exp, args.alpha, path)
        failed = [k for k, ok in report["checks"].items() if not ok]
        failures += bool(failed)
        top = exp.probabilities[exp.predicted]
        status = "ok  " if not failed else "FAIL"
        detail = f"  failed checks: {', '.join(failed)}" if failed else ""
        print(f"{status} {path}: {exp.predicted} ({top:.3f}), map of {exp.explained}{detail}; {check_line(exp)}")
    print(f"{len(files) - failures}/{len(files)} images ok; results in {out}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
