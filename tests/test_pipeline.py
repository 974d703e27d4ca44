"""The Explainer: any method by name, a cap on Score-CAM, classes by label."""

import numpy as np
import pytest

from explain.bundle import load_bundle
from explain.pipeline import Explainer
from synthetic import write_png, write_tiny_bundle


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipe")
    bundle = load_bundle(write_tiny_bundle(folder / "bundle"))
    image = write_png(folder / "x.png", np.random.default_rng(0).integers(0, 256, (40, 30), dtype=np.uint8))
    return bundle, image


def test_gradient_free_methods_through_the_explainer(setup):
    bundle, image = setup
    full = Explainer(bundle).explain(image, "glioma", method="scorecam")
    capped = Explainer(bundle, score_cam_channels=2).explain(image, "glioma", method="scorecam")
    assert full.method == capped.method == "scorecam" and full.explained == "glioma"
    assert full.heatmap.shape == (40, 30) and 0 <= full.heatmap.min() and full.heatmap.max() <= 1
    # Two of the 16 channels cannot give the map of all 16 (unless the model were degenerate).
    assert not np.allclose(full.cam, capped.cam)
    eigen = Explainer(bundle).explain(image, method="eigencam")
    assert eigen.method == "eigencam" and np.isfinite(eigen.cam).all()


def test_unknown_method_and_class_are_rejected(setup):
    bundle, image = setup
    explainer = Explainer(bundle)
    with pytest.raises(ValueError, match="Unknown CAM method"):
        explainer.explain(image, method="magic")
    with pytest.raises(ValueError, match="Unknown class 'dragon'"):
        explainer.explain(image, "dragon")
