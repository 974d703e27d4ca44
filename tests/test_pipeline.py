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


@pytest.mark.parametrize("method,tta", [("scorecam", False), ("eigencam", False), ("gradcam", True)])
def test_maps_from_another_pass_do_not_run_the_engines_own_cam(setup, monkeypatch, method, tta):
    """A gradient-free map or a TTA map replaces the engine's Grad-CAM, so that pass must not run.

    The probabilities and the explained class still come from one forward pass
    of the image itself and equal those of the plain Grad-CAM call.
    """
    bundle, image = setup
    explainer = Explainer(bundle, score_cam_channels=4)
    plain = explainer.explain(image)
    engine = explainer.engine(method)
    calls = []
    original = type(engine).explain
    monkeypatch.setattr(type(engine), "explain",
                        lambda self, *a, **k: calls.append(self.method.name) or original(self, *a, **k))
    out = explainer.explain(image, method=method, tta=tta)
    # TTA with Grad-CAM runs the engine on the augmented copies only (one call,
    # a batch of six), never on the image alone.
    expected = ["gradcam"] if tta else []
    assert calls == expected
    assert out.predicted == plain.predicted == out.explained
    for label, p in plain.probabilities.items():
        assert out.probabilities[label] == pytest.approx(p, abs=1e-6)
