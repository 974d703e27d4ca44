"""The Keras internals explain/model/graph.py replays models through are still there.

If this fails after a Keras upgrade, the message names the version and the
internal that changed; the pin in requirements.txt is what the project is
tested with.
"""

import keras
import numpy as np

from explain.model.graph import capture_output, check_keras_internals, run_intercepted


def test_keras_internals_are_present():
    check_keras_internals()


def test_replay_equals_the_models_own_inference_and_captures_the_inner_layer():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(hidden)
    x = keras.layers.Dropout(0.9, name="drop")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    batch = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    store = {}
    replayed = run_intercepted(model, batch, {id(model.get_layer("conv")): capture_output(store, "conv")})
    # Inference mode: Dropout off, BatchNorm on moving statistics; the same numbers as model(x).
    np.testing.assert_allclose(np.asarray(replayed), np.asarray(model(batch, training=False)), rtol=1e-6)
    assert tuple(store["conv"].shape) == (2, 6, 6, 3)
