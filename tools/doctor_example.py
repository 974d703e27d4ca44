"""Run the README's model-doctor example on the shipped bundle and write the transcript as a results file.

    python -m tools.doctor_example [--model models/default] [--out models/default/eval/doctor_example.json]

The bundled default model is copied to a bare ``.keras`` file and given the two classic
mistakes: a ``[-1, 1]`` preprocessing (``xception``) for a model trained with ``rescale``, and
its labels rotated by one, on 40 images of the clean test split (10 per class, spread evenly)
in class folders. The same images are then run on the correct bundle, and the bundle the
doctor writes (``--write-bundle``) is compared with the default bundle's predictions.
docs/doctor.md renders the transcript from the file (``docs/render.py``). Needs the data folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import ROOT, parser

PER_CLASS = 10
WRONG = ["--preprocessing", "xception", "--labels", "meningioma,notumor,pituitary,glioma"]


def _doctor(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "explain.doctor", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, check=False)
    return run, round(time.perf_counter() - started, 1)


def make_sample(work: Path) -> list[str]:
    from explain.evaluation.dataset import data_dir, read_split

    folder = data_dir()
    items = read_split(folder, "test")
    chosen = []
    for label in sorted({i.label for i in items}):
        of_class = [i for i in items if i.label == label]
        for k in range(PER_CLASS):
            item = of_class[k * len(of_class) // PER_CLASS]
            target = work / "test40" / label / Path(item.path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / item.path, target)
            chosen.append(item.path)
    return chosen


def main(argv=None) -> int:
    args = parser("python -m tools.doctor_example", __doc__, "models/default/eval/doctor_example.json").parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        chosen = make_sample(work)
        shutil.copyfile(args.model / "model.keras", work / "bare.keras")
        command = ["--model", "bare.keras", "--images", "test40/", *WRONG, "--json", "report.json",
                   "--write-bundle", "models/fixed"]
        wrong, wrong_s = _doctor(command, work)
        right, right_s = _doctor(["--model", str(args.model.resolve()), "--images", "test40/"], work)
        if wrong.returncode == 2 or right.returncode == 2:
            print(wrong.stderr + right.stderr, file=sys.stderr)
            return 2
        from explain.quiet import import_tensorflow

        import_tensorflow()
        from explain.bundle import load_bundle
        from explain.pipeline import Explainer

        files = sorted((work / "test40").rglob("*.jpg"))
        default = load_bundle(args.model)
        ours = [e.predicted for e in Explainer(default).explain_batch(files)]
        fixed = [e.predicted for e in Explainer(load_bundle(work / "models/fixed")).explain_batch(files)]
        report = json.loads((work / "report.json").read_text())
        result = {
            "what": "README doctor example: the default model as a bare file with wrong preprocessing and "
                    "rotated labels, 40 clean test images in class folders",
            "weights": default.weights_digest(),
            "images": chosen,
            "command": "python -m explain.doctor " + " ".join(command),
            "exit_code": wrong.returncode,
            "wall_s": wrong_s,
            "transcript": wrong.stdout.rstrip("\n"),
            "recommended": report.get("recommended") or {k: report[k].get("recommended")
                                                         for k in ("preprocessing", "color_mode", "labels", "layer")
                                                         if isinstance(report.get(k), dict)},
            "correct_bundle": {"exit_code": right.returncode, "wall_s": right_s,
                               "last_line": right.stdout.rstrip("\n").splitlines()[-1],
                               "not_ok": [line for line in right.stdout.splitlines()
                                          if line.startswith(("WARNING", "ERROR"))]},
            "fixed_bundle_predictions_equal_default": ours == fixed,
        }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(result["transcript"])
    print(f"correct bundle: {result['correct_bundle']['last_line']}; fixed bundle equals default: "
          f"{result['fixed_bundle_predictions_equal_default']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
