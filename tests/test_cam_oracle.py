"""For a GAP -> Dense head, Grad-CAM on the logit equals CAM from the Dense weights."""

import numpy as np
import pytest

from explain.engine import CamEngine
from explain.model.layers import find_target_layer
from synthetic import gap_dense_cnn


def cam_from_weights(model, batch, classes):
    """Zhou et al. 2016 CAM: sum_k W[k, c] * A_k, ReLU, min-max."""
    import keras

    feature = keras.Model(model.input, model.get_layer("last").output)
    acts = feature.predict(batch, verbose=0)
    kernel = model.get_layer("predictions").kernel.numpy()
    maps = np.einsum("bhwk,kb->bhw", acts, kernel[:, classes])
    maps = np.maximum(maps, 0)
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / np.maximum(high - low, 1e-8)


@pytest.mark.parametrize("activation", ["softmax", "linear"])
def test_gradcam_equals_cam(activation):
    import keras

    keras.utils.set_random_seed(3)
    model = gap_dense_cnn(activation=activation)
    batch = np.random.default_rng(0).uniform(0, 1, (6, 32, 32, 3)).astype(np.float32)
    engine = CamEngine(model, find_target_layer(model), (32, 32, 3))
    non_empty = 0
    for cls in range(4):
        result = engine.explain(batch, [cls] * len(batch))
        expected = cam_from_weights(model, batch, [cls] * len(batch))
        # A class with no positive evidence in an image gives an all-zero map on both sides.
        np.testing.assert_array_equal(result.empty, expected.max(axis=(1, 2)) == 0)
        assert np.abs(result.maps - expected).max() < 1e-4
        non_empty += int((~result.empty).sum())
    assert non_empty >= len(batch) * 2  # the comparison is not only between zero maps


def test_probabilities_match_the_model():
    import keras

    keras.utils.set_random_seed(4)
    model = gap_dense_cnn()
    batch = np.random.default_rng(1).uniform(0, 1, (5, 32, 32, 3)).astype(np.float32)
    engine = CamEngine(model, find_target_layer(model), (32, 32, 3))
    result = engine.explain(batch)
    expected = model.predict(batch, verbose=0)
    np.testing.assert_allclose(result.probs, expected, atol=1e-6)
    np.testing.assert_array_equal(result.classes, expected.argmax(axis=1))
    np.testing.assert_allclose(engine.predict(batch), expected, atol=1e-6)
