"""A CNN trained in seconds to detect a bright blob must put its heatmap peak on the blob."""

import keras
import numpy as np

from explain.engine import CamEngine
from explain.layers import find_target_layer
from explain.overlay import upsample


def blob_detector(size=32):
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_heatmap_peak_lies_inside_the_blob():
    from synthetic import blob_images

    keras.utils.set_random_seed(0)
    x_train, y_train, _ = blob_images(600, seed=1)
    model = blob_detector()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=8, batch_size=32, verbose=0)

    x_test, y_test, centres = blob_images(100, seed=2)
    blobs = np.flatnonzero(y_test == 1)[:50]
    assert len(blobs) == 50
    engine = CamEngine(model, find_target_layer(model), (32, 32, 1))
    result = engine.explain(x_test[blobs], [1] * 50)
    assert (result.probs.argmax(1) == 1).mean() >= 0.9, "the detector itself did not learn"
    hits = 0
    for i, idx in enumerate(blobs):
        heat = upsample(result.maps[i], (32, 32))
        peak = np.unravel_index(np.argmax(heat), heat.shape)
        cy, cx = centres[idx]
        hits += (peak[0] - cy) ** 2 + (peak[1] - cx) ** 2 <= 4 ** 2
    assert hits >= 45, f"peak inside the blob on only {hits}/50 images"
