"""Would the metrics change if they upsampled maps as the display does (bicubic, clipped) instead of bilinearly?

    python benchmarks/metric_upsampling.py [--model models/default] [--methods gradcam,scorecam]

For every image in examples/ and its predicted class: the audit's per-image
metrics (explain.evaluation.audit.image_scores, 32 steps) of the map at the
layer's resolution (the metrics upsample it with explain.metrics.base.resize_map,
bilinear) and of the same map upsampled first by explain.overlay.upsample
(the display's bicubic, clipped to [0, 1]). Prints each pair, then per method
and metric the mean and largest change. The numbers quoted in resize_map's
docstring come from this script with the default model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/X.py` puts only benchmarks/ on the path

from explain.bundle import load_bundle  # noqa: E402
from explain.evaluation.audit import image_scores, method_map  # noqa: E402
from explain.overlay import upsample  # noqa: E402
from explain.pipeline import Explainer  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--methods", default="gradcam,scorecam")
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args(argv)
    explainer = Explainer(load_bundle(args.model))
    predict = explainer.engine().predict
    changes: dict[str, dict[str, list[float]]] = {}
    for path in sorted((ROOT / "examples").glob("*.jpg")):
        rgb, x = explainer.load(path)
        cls = int(np.argmax(predict(x[None])[0]))
        for method in args.methods.split(","):
            cam = method_map(explainer, method, rgb, x, cls)
            bilinear = image_scores(x, rgb, cam, predict, cls, args.steps)
            bicubic = image_scores(x, rgb, upsample(cam, x.shape[:2]), predict, cls, args.steps)
            print(f"{path.name:<28} {method:<9}", " ".join(f"{k} {bilinear[k]:.3f}->{bicubic[k]:.3f}" for k in bilinear))
            for k in bilinear:
                changes.setdefault(method, {}).setdefault(k, []).append(bicubic[k] - bilinear[k])
    for method, metrics in changes.items():
        for k, d in metrics.items():
            print(f"{method:<9} {k:<14} mean change {np.mean(d):+.4f}  largest |change| {np.max(np.abs(d)):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
