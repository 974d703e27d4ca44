"""Layer choice, nested transfer-learning models, saturation and batching."""

import keras
import numpy as np
import pytest

from explain.engine import CamEngine
from explain.errors import LayerError
from explain.model.layers import find_target_layer, spatial_candidates
from synthetic import gap_dense_cnn


@pytest.fixture(scope="module")
def xception_parts():
    keras.utils.set_random_seed(0)
    base = keras.applications.Xception(weights=None, include_top=False, input_shape=(96, 96, 3))
    pool = keras.layers.GlobalAveragePooling2D()
    head = keras.layers.Dense(4, activation="softmax")
    return base, pool, head


def test_full_xception_gets_block14_sepconv2_act():
    model = keras.applications.Xception(weights=None, input_shape=(71, 71, 3))
    assert find_target_layer(model).name == "block14_sepconv2_act"


def test_nested_models_give_the_same_maps_as_the_flat_model(xception_parts):
    base, pool, head = xception_parts
    inputs = keras.Input((96, 96, 3))
    flat = keras.Model(inputs, head(pool(base(inputs))))  # nested Functional
    seq = keras.Sequential([keras.Input((96, 96, 3)), base, pool, head])
    # The same weights rebuilt without nesting: the reference.
    flat_in = base.input
    plain = keras.Model(flat_in, head(pool(base.output)))

    batch = np.random.default_rng(0).uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)
    reference = CamEngine(plain, find_target_layer(plain), (96, 96, 3)).explain(batch, [0, 3])
    assert find_target_layer(plain).name == "block14_sepconv2_act"
    for model in (flat, seq):
        target = find_target_layer(model)
        assert target.name == "xception/block14_sepconv2_act"
        result = CamEngine(model, target, (96, 96, 3)).explain(batch, [0, 3])
        np.testing.assert_allclose(result.probs, reference.probs, atol=1e-5)
        np.testing.assert_allclose(result.maps, reference.maps, atol=1e-4)


def test_saturated_softmax_still_gives_a_map():
    keras.utils.set_random_seed(1)
    model = gap_dense_cnn()
    dense = model.get_layer("predictions")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 1e4, bias])  # logits in the thousands: softmax is exactly one-hot
    batch = np.random.default_rng(2).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
    probs = model.predict(batch, verbose=0)
    assert np.all(probs.max(axis=1) == 1.0)
    result = CamEngine(model, find_target_layer(model), (32, 32, 3)).explain(batch)
    assert not result.empty.any()
    assert np.all(result.maps.max(axis=(1, 2)) == pytest.approx(1.0))
    assert np.isfinite(result.maps).all()


def test_all_class_maps_match_single_class_maps():
    keras.utils.set_random_seed(5)
    model = gap_dense_cnn()
    engine = CamEngine(model, find_target_layer(model), (32, 32, 3))
    batch = np.random.default_rng(4).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    _, _, maps, _ = engine.explain_all(batch)
    assert maps.shape == (2, 4, 16, 16)
    for k in range(4):
        np.testing.assert_allclose(maps[:, k], engine.explain(batch, [k, k]).maps, atol=1e-6)


def test_layer_override_and_errors():
    model = gap_dense_cnn()
    assert find_target_layer(model, "last").layer.name == "last"
    with pytest.raises(LayerError, match="No layer named 'nope'.*last"):
        find_target_layer(model, "nope")
    with pytest.raises(LayerError, match="Grad-CAM needs"):
        find_target_layer(model, "gap")
    names = [p.name for p in spatial_candidates(model)]
    assert names[-1] == "last" and "gap" not in names
