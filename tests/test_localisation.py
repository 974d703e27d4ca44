"""A CNN trained in seconds to detect a bright blob must put its heatmap peak on the blob."""

import keras
import numpy as np
import pytest

from explain.engine import CamEngine
from explain.model.layers import find_target_layer
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


@pytest.fixture(scope="module")
def trained():
    """(engine of a blob detector trained for a few seconds, blob test images, their centres)."""
    from synthetic import blob_images

    keras.utils.set_random_seed(0)
    x_train, y_train, _ = blob_images(600, seed=1)
    model = blob_detector()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=8, batch_size=32, verbose=0)
    x_test, y_test, centres = blob_images(100, seed=2)
    blobs = np.flatnonzero(y_test == 1)[:50]
    assert len(blobs) == 50
    return CamEngine(model, find_target_layer(model), (32, 32, 1)), x_test[blobs], centres[blobs]


def _peak_hits(maps, centres, radius=4) -> int:
    hits = 0
    for cam, (cy, cx) in zip(maps, centres):
        heat = upsample(cam, (32, 32))
        peak = np.unravel_index(np.argmax(heat), heat.shape)
        hits += (peak[0] - cy) ** 2 + (peak[1] - cx) ** 2 <= radius ** 2
    return hits


def test_heatmap_peak_lies_inside_the_blob(trained):
    engine, images, centres = trained
    result = engine.explain(images, [1] * len(images))
    assert (result.probs.argmax(1) == 1).mean() >= 0.9, "the detector itself did not learn"
    hits = _peak_hits(result.maps, centres)
    assert hits >= 45, f"peak inside the blob on only {hits}/50 images"


def test_tta_smoothed_peak_stays_on_the_blob(trained):
    """The flipped copies' maps must be flipped back, or the peak lands on the mirror image."""
    from explain.preprocess import InputSpec
    from explain.tta import smoothed_maps

    engine, images, centres = trained
    spec = InputSpec(size=(32, 32), channels=1, color_mode="grayscale", preprocessing="rescale")
    pixels = [np.round(x * 255.0) for x in images]
    maps, empty = smoothed_maps(engine_maps(engine), pixels, spec, [1] * len(images))
    assert not empty.any()
    # Blobs away from the vertical midline, where a mirrored map would miss.
    off_centre = np.abs(centres[:, 1] - 15.5) > 6
    assert off_centre.sum() >= 10
    hits = _peak_hits(maps[off_centre], centres[off_centre])
    assert hits >= 0.9 * off_centre.sum(), f"TTA peak on the blob for {hits}/{off_centre.sum()} images"


def engine_maps(engine):
    def run(batch, classes):
        result = engine.explain(batch, classes)
        return result.maps, result.empty
    return run
