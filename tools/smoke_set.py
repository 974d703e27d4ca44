"""Measure the shipped bundle on the smoke set (``clean_smoke.txt``) and write the results file.

    python -m tools.smoke_set [--model models/default] [--out models/default/eval/smoke.json]

The 32 smoke images (8 per class, test split) are explained with Grad-CAM of the predicted
class, as ``tests/test_default_model.py`` does: how many are classified right, which are not,
how many maps are empty, and the mean share of map mass inside the head on the 24 tumour
images. The model card renders its smoke-set figures from this file (``docs/render.py``); the
file records the weights' digest, so a figure from other weights is caught by tests/test_docs.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tools import ROOT, parser



def measure(bundle_path: Path) -> dict:
    import numpy as np

    from explain.bundle import load_bundle
    from explain.evaluation.dataset import data_dir
    from explain.metrics.plausibility import energy_inside, head_mask
    from explain.pipeline import Explainer

    folder = data_dir()
    paths = (folder / "clean_smoke.txt").read_text().split()
    bundle = load_bundle(bundle_path)
    results = Explainer(bundle).explain_batch([folder / p for p in paths])
    images = []
    for path, r in zip(paths, results):
        truth = Path(path).parent.name
        energy = float(energy_inside(r.heatmap, head_mask(r.image))) if truth != "notumor" else None
        images.append({"path": path, "label": truth, "predicted": r.predicted,
                       "p_predicted": round(float(r.probabilities[r.predicted]), 4),
                       "empty_map": bool(r.empty),
                       "head_energy": None if energy is None else round(energy, 4)})
    energies = [i["head_energy"] for i in images if i["head_energy"] is not None]
    return {
        "what": "clean_smoke.txt on the bundle; Grad-CAM of the predicted class",
        "bundle": str(bundle_path.resolve().relative_to(ROOT)) if bundle_path.resolve().is_relative_to(ROOT)
        else str(bundle_path),
        "weights": bundle.weights_digest(),
        "n_images": len(images),
        "correct": sum(i["label"] == i["predicted"] for i in images),
        "misclassified": [{"path": i["path"], "label": i["label"], "predicted": i["predicted"]}
                          for i in images if i["label"] != i["predicted"]],
        "empty_maps": sum(i["empty_map"] for i in images),
        "n_tumour_images": len(energies),
        "head_energy_tumour_mean": round(float(np.mean(energies)), 4),
        "images": images,
    }


def main(argv=None) -> int:
    args = parser("python -m tools.smoke_set", __doc__, "models/default/eval/smoke.json").parse_args(argv)
    from explain.quiet import import_tensorflow

    import_tensorflow()
    result = measure(args.model)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['correct']}/{result['n_images']} right, {result['empty_maps']} empty maps, head energy "
          f"{result['head_energy_tumour_mean']:.3f} on {result['n_tumour_images']} tumour images -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
