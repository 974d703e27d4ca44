"""Does Layer-CAM over several layers pass the randomisation sanity check?

    python benchmarks/layercam_layers.py [--model models/default] [--layers block2_out block3_out final_act]

Layer-CAM fails the audit's cascading-randomisation check at the last
convolutional layer of a GAP -> Dense model (the gradient there is uniform
over the map). Its paper's remedy for coarse maps is to combine shallower
layers, where the gradient does vary over the map. This script runs the
audit's cascade (explain.evaluation.audit.cascade_correlations, on the same 24 test
images as ``explain.evaluation.audit --limit 120``) for Layer-CAM at each layer alone
and for the mean of the layers' maps, each upsampled to the finest layer's
size, and prints the mean Spearman correlation with the trained model's map
per step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/X.py` puts only benchmarks/ on the path

from explain.metrics import sanity  # noqa: E402
from explain.evaluation.audit import cascade_correlations, sanity_subset, spread  # noqa: E402
from explain.bundle import Bundle, load_bundle  # noqa: E402
from explain.methods import compute_maps  # noqa: E402
from explain.pipeline import Explainer  # noqa: E402


def layer_maps(bundle: Bundle, model, layers, batch, classes) -> dict[str, np.ndarray]:
    """{layer or "combined": (B, h, w) float32 Layer-CAM maps in [0, 1]} at the finest layer's size."""
    per_layer = {}
    for layer in layers:
        explainer = Explainer(Bundle(model, bundle.labels, bundle.spec, layer, bundle.temperature))
        per_layer[layer] = compute_maps(explainer.engine(), batch, classes, method="layercam")[0]
    h, w = max((m.shape[1:] for m in per_layer.values()), key=lambda s: s[0] * s[1])
    per_layer = {name: np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in maps])
                 for name, maps in per_layer.items()}
    per_layer["combined"] = np.mean(list(per_layer.values()), axis=0)
    return per_layer


def main(argv=None) -> int:
    from explain.evaluation.dataset import data_dir, read_split

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/default")
    p.add_argument("--layers", nargs="+", default=["block2_out", "block3_out", "final_act"])
    p.add_argument("--limit", type=int, default=120, help="as the audit's --limit (default 120)")
    p.add_argument("--images", type=int, default=24, help="as the audit's --sanity-images (default 24)")
    p.add_argument("--data", help="dataset folder (default $BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri)")
    args = p.parse_args(argv)

    bundle = load_bundle(args.model)
    folder = data_dir(args.data)
    items = sanity_subset(spread(read_split(folder, "test"), args.limit), args.images)
    loader = Explainer(bundle)
    batch = np.stack([loader.load(folder / i.path)[1] for i in items])
    classes = [bundle.labels.index(i.label) for i in items]
    result = cascade_correlations(bundle.model, lambda model: layer_maps(bundle, model, args.layers, batch, classes))

    print(f"Layer-CAM, {len(items)} test images, mean Spearman with the trained model's map")
    print("| layers | " + " | ".join(result["layers"]) + " | passes |")
    print("|---|" + "---|" * (len(result["layers"]) + 1))
    for name, values in result["methods"].items():
        verdict = "yes" if sanity.sanity_passes(values) else "no"
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
