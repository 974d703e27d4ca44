"""Test-time-augmentation smoothing: de-augmentation, merging, and the pipeline option."""

import numpy as np
import pytest

from explain.preprocess import InputSpec
from explain.tta import DEFAULT_AUGMENTATIONS, Augmentation, augment, merge, smoothed_maps


def _asymmetric_image(size=64, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
    image[10:30, 5:25] = 220  # a bright square off the midline
    image[40:50, 44:60] = 120
    return image


def test_augment_flips_and_scales_in_pixel_space_before_normalising():
    spec = InputSpec(size=(4, 4), channels=3, color_mode="grayscale", preprocessing="tf")
    pixels = np.arange(16, dtype=np.float32).reshape(4, 4, 1) * 16
    batch = augment(pixels, spec, [Augmentation(), Augmentation(flip=True, brightness=1.1)])
    assert batch.shape == (2, 4, 4, 3) and batch.dtype == np.float32
    expected = np.clip(pixels[:, ::-1] * 1.1, 0, 255) / 127.5 - 1.0  # "tf" mode: [-1, 1]
    np.testing.assert_allclose(batch[1], np.repeat(expected, 3, axis=-1), atol=1e-6)
    np.testing.assert_allclose(batch[0, ..., 0], pixels[..., 0] / 127.5 - 1.0, atol=1e-6)


def test_merge_undoes_the_flip_and_rescales_to_one():
    cam = np.zeros((4, 4), np.float32)
    cam[1, 0] = 1.0
    augs = [Augmentation(), Augmentation(flip=True)]
    merged, empty = merge(np.stack([cam, cam[:, ::-1]]), augs)
    assert not empty
    np.testing.assert_allclose(merged, cam)
    merged, _ = merge(np.stack([cam, np.zeros_like(cam)]), augs)
    assert merged.max() == pytest.approx(1.0) and merged[1, 0] == pytest.approx(1.0)


def test_merge_of_empty_maps_is_empty_and_finite():
    merged, empty = merge(np.zeros((6, 5, 5), np.float32))
    assert empty and np.isfinite(merged).all() and not merged.any()
    with pytest.raises(ValueError, match="6 augmentations"):
        merge(np.zeros((2, 5, 5), np.float32))


def test_smoothed_maps_needs_resolved_classes():
    spec = InputSpec(size=(8, 8))

    def never(batch, classes):
        raise AssertionError("must not run")

    with pytest.raises(ValueError, match="resolved"):
        smoothed_maps(never, [np.zeros((8, 8, 1))], spec, [-1])
    with pytest.raises(ValueError, match="classes"):
        smoothed_maps(never, [np.zeros((8, 8, 1))], spec, [0, 1])


@pytest.fixture(scope="module")
def explainer(tmp_path_factory):
    from synthetic import write_tiny_bundle

    from explain.bundle import load_bundle
    from explain.pipeline import Explainer

    return Explainer(load_bundle(write_tiny_bundle(tmp_path_factory.mktemp("tta"), size=32)))


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "eigencam"])
def test_tta_map_of_the_mirrored_image_is_the_mirrored_map(explainer, method):
    """The augmentation set is closed under the flip, so this holds exactly for any
    model; a single map does not (strided 'same' padding is not symmetric), and a
    merge that forgot to flip the copies back would break it."""
    image = _asymmetric_image()
    plain = explainer.explain(image, "glioma", method=method, tta=True)
    mirrored = explainer.explain(np.ascontiguousarray(image[:, ::-1]), "glioma", method=method, tta=True)
    assert plain.tta and mirrored.tta and plain.cam.shape == explainer.engine().map_shape
    np.testing.assert_allclose(mirrored.cam, plain.cam[:, ::-1], atol=1e-4)


def test_tta_keeps_the_probabilities_and_the_explained_class(explainer):
    image = _asymmetric_image(seed=3)
    plain = explainer.explain(image)
    smooth = explainer.explain(image, tta=True)
    assert smooth.explained == plain.explained and smooth.predicted == plain.predicted
    assert smooth.probabilities == pytest.approx(plain.probabilities, abs=1e-6)
    assert np.isfinite(smooth.cam).all() and 0.0 <= smooth.cam.min() and smooth.cam.max() <= 1.0


def test_tta_batch_equals_one_by_one(explainer):
    images = [_asymmetric_image(seed=s) for s in range(3)]
    batch = explainer.explain_batch(images, ["meningioma"] * 3, tta=True)
    for image, exp in zip(images, batch):
        single = explainer.explain(image, "meningioma", tta=True)
        np.testing.assert_allclose(exp.cam, single.cam, atol=1e-4)


def test_default_augmentations_are_closed_under_the_flip():
    flipped = {Augmentation(not a.flip, a.brightness) for a in DEFAULT_AUGMENTATIONS}
    assert flipped == set(DEFAULT_AUGMENTATIONS) and len(DEFAULT_AUGMENTATIONS) == 6
