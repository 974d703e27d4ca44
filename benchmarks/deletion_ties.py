"""Why does Grad-CAM's deletion curve not beat the centre prior? The map's zeros, or the model?

    python benchmarks/deletion_ties.py [--model models/default] [--limit 40] [--json OUT]

After lesion-guided fine-tuning the Grad-CAM map is zero on most of the
image, and the deletion metric (explain.metrics.faithfulness, as the audit runs it)
removes tied pixels in raster order: once the lesion is gone, it deletes the
top rows of the image first, whatever the model uses there. This script
measures the deletion and insertion AUC of the true class's map on test
images (spread as the audit's ``--limit``) for: Grad-CAM as shipped; the
same map with its ties broken by the centre prior (map + 1e-3 x centre
Gaussian, so the order *within* the map's positive part is unchanged); the
centre prior alone; a random map. If the tie-broken map beats the centre
prior, the shortfall is the unranked zeros; if it does not, the lesion is not
enough of the evidence either.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/X.py` puts only benchmarks/ on the path

from explain.metrics import faithfulness, plausibility  # noqa: E402
from explain.evaluation.audit import method_map, spread  # noqa: E402
from explain.bundle import load_bundle  # noqa: E402
from explain.pipeline import Explainer  # noqa: E402
from explain.metrics.stats import bootstrap_mean, format_interval  # noqa: E402

TIE_BREAK = 1e-3


def maps_for(cam: np.ndarray) -> dict[str, np.ndarray]:
    """The compared (h', w') maps for one Grad-CAM map ``cam`` in [0, 1]."""
    centre = plausibility.center_gaussian_map(cam.shape)
    return {"Grad-CAM": cam, "Grad-CAM, ties by centre": cam + TIE_BREAK * centre,
            "centre prior": centre, "random": plausibility.random_map(cam.shape, seed=0)}


def main(argv=None) -> int:
    from explain.evaluation.dataset import data_dir, read_split

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/default")
    p.add_argument("--limit", type=int, default=40, help="test images, spread as the audit's --limit")
    p.add_argument("--data", help="dataset folder (default $BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri)")
    p.add_argument("--json", help="also write the table as JSON here (the audit notes render from it)")
    args = p.parse_args(argv)

    explainer = Explainer(load_bundle(args.model))
    predict = explainer.engine().predict
    folder = data_dir(args.data)
    scores: dict[str, dict[str, list[float]]] = {}
    for item in spread(read_split(folder, "test"), args.limit):
        rgb, x = explainer.load(folder / item.path)
        cls = explainer.class_index(item.label)
        for name, saliency in maps_for(method_map(explainer, "gradcam", rgb, x, cls)).items():
            row = scores.setdefault(name, {"deletion": [], "insertion": []})
            row["deletion"].append(faithfulness.deletion_auc(x, saliency, predict, cls))
            row["insertion"].append(faithfulness.insertion_auc(x, saliency, predict, cls))

    n = len(next(iter(scores.values()))["deletion"])
    print(f"{args.model}: {n} test images, true class; mean [95 % bootstrap interval]")
    print("| map | deletion AUC (lower better) | insertion AUC (higher better) |\n|---|---|---|")
    table = {}
    for name, row in scores.items():
        cells = [bootstrap_mean(row[k]) for k in ("deletion", "insertion")]
        table[name] = dict(zip(("deletion_auc", "insertion_auc"), cells))
        print(f"| {name} | " + " | ".join(format_interval(c, 3) for c in cells) + " |")
    if args.json:
        result = {"model": args.model, "n_images": n, "tie_break": TIE_BREAK, "rows": table}
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
