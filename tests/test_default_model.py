"""The shipped default model: loads, validates, and is right on the clean smoke images."""

from pathlib import Path

import numpy as np
import pytest

from explain.bundle import default_bundle_path, load_bundle, read_config
from explain.pipeline import Explainer

BUNDLE = default_bundle_path()
pytestmark = pytest.mark.skipif(not (BUNDLE / "bundle.json").is_file(),
                                reason=f"no default bundle at {BUNDLE}")


def _data_dir():
    from explain.evaluation.dataset import data_dir

    try:
        return data_dir()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def explainer():
    return Explainer(load_bundle(BUNDLE))


def test_bundle_metadata_is_complete():
    config = read_config(BUNDLE)
    assert config["labels"] == ["glioma", "meningioma", "notumor", "pituitary"]
    assert config["preprocessing"] == "rescale" and config["color_mode"] == "grayscale"
    meta = config["metadata"]
    for key in ("architecture", "trained", "git_commit", "training", "data", "history"):
        assert key in meta, key
    assert meta["data"]["csv"] == "clean_split.csv" and len(meta["data"]["fingerprint_sha256"]) == 64
    test = meta["evaluation"]["test"]
    assert test["n_images"] == 609


def test_smoke_images_are_classified(explainer):
    folder = _data_dir()
    paths = (folder / "clean_smoke.txt").read_text().split()
    assert len(paths) == 32
    results = explainer.explain_batch([folder / p for p in paths])
    truth = [Path(p).parent.name for p in paths]
    correct = sum(r.predicted == t for r, t in zip(results, truth))
    assert correct >= 28, f"{correct}/32 correct"
    for r in results:
        assert all(r.checks.values()), r.checks


def test_heatmaps_sit_on_the_head(explainer):
    """Regression guard on the fraction of heatmap mass inside the head.

    The issue's target: at least 0.85 on average over the 24 tumour images of
    the smoke set (see models/default/MODEL_CARD.md for this model's figure). A model that
    looks at borders, banners or background fails it.
    """
    from explain.metrics.plausibility import energy_inside, head_mask

    folder = _data_dir()
    paths = [p for p in (folder / "clean_smoke.txt").read_text().split() if "notumor" not in p]
    results = explainer.explain_batch([folder / p for p in paths])
    energies = [energy_inside(r.heatmap, head_mask(r.image)) for r in results]
    assert np.mean(energies) >= 0.85, energies


def test_heatmaps_land_on_the_annotated_lesions(explainer):
    """Regression guard on lesion localisation: per tumour class, the Grad-CAM peak within 8 px
    of the annotated box on at least 0.75 of the images and 5x more map mass in the box than a
    uniform map puts there. Measured (MODEL_CARD.md): 0.82 / 0.90 / 0.95 and 20x / 36x / 60x for
    glioma / meningioma / pituitary; the first lesion-guided fine-tune fails it (glioma 0.71) and
    the model before any fine-tuning fails it badly (0.29 glioma, 0.27 pituitary). The boxes are committed numbers
    (annotations/lesions_test.json), the images come from the data folder."""
    from explain.evaluation.lesions import read_lesions
    from explain.metrics.localisation import lesion_scores

    folder = _data_dir()
    lesions = {k: v for k, v in read_lesions(Path(__file__).parents[1] / "annotations/lesions_test.json").items()
               if v.box is not None}
    keys = sorted(lesions)
    results = explainer.explain_batch([folder / k for k in keys], [Path(k).parent.name for k in keys])
    per_class: dict[str, list[dict]] = {}
    for key, r in zip(keys, results):
        scores = lesion_scores(r.heatmap, lesions[key].mask_array(r.image.shape[:2]))
        per_class.setdefault(Path(key).parent.name, []).append(scores)
    for label, scores in per_class.items():
        pointing = np.mean([s["pointing_8px"] for s in scores])
        energy = np.mean([s["box_energy_ratio"] for s in scores])
        assert pointing >= 0.75 and energy >= 5.0, (label, pointing, energy)


def test_counterfactual_figures_match_the_committed_audit(explainer):
    """The lesion removed (Navier-Stokes inpainting, strong blur) and the same-size control region
    removed, on every boxed test image: the shares that keep the class / are called "no tumour"
    equal the figures committed in models/default/audit/lesions/audit.json (so they describe these
    weights), and the control keeps the class on at least 0.90 of the tumour slices."""
    import json

    from explain.evaluation.lesions import read_lesions
    from explain.metrics.counterfactual import AUDIT_REMOVALS, lesion_counterfactuals
    from explain.metrics.plausibility import head_mask
    from explain.preprocess import preprocess

    folder = _data_dir()
    root = Path(__file__).parents[1]
    committed = json.loads((root / "models/default/audit/lesions/audit.json").read_text())["lesions"]["counterfactual"]
    lesions = {k: v for k, v in read_lesions(root / "annotations/lesions_test.json").items() if v.box is not None}
    labels = explainer.labels
    per_class: dict[str, list[dict]] = {}
    for key in sorted(lesions):
        rgb, _ = explainer.load(folder / key)
        label = Path(key).parent.name
        scores = lesion_counterfactuals(rgb, lesions[key].mask_array(rgb.shape[:2]), head_mask(rgb),
                                        lambda im: preprocess(im, explainer.spec), explainer.engine().predict,
                                        labels.index(label), labels.index("notumor"), key)
        per_class.setdefault(label, []).append(scores)
    controls = []
    for label, scores in per_class.items():
        for metric, stat in committed[label].items():
            values = np.array([s[metric] for s in scores], float)
            assert np.nanmean(values) == pytest.approx(stat["mean"], abs=0.02), (label, metric)
        controls += [s[f"control_kept_{m}"] for s in scores for m in AUDIT_REMOVALS]
    assert np.nanmean(controls) >= 0.90
