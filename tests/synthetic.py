"""Synthetic images and tiny models whose right answers are known (no real data needed)."""

from __future__ import annotations

import keras
import numpy as np


def gap_dense_cnn(size=32, channels=3, classes=4, activation="softmax", name="tiny") -> keras.Model:
    """Conv -> pool -> conv('last') -> GAP -> Dense: the head for which Grad-CAM equals CAM."""
    inputs = keras.Input((size, size, channels), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(classes, activation=activation, name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def blob_images(n: int, size: int = 32, radius: int = 4, seed: int = 0):
    """Grey images (n, size, size, 1) in [0, 1], half with one bright disk.

    Returns (images float32, labels int (1 = blob), centres (n, 2) int (row, col), -1 if none).
    Background is noise plus dim random squares, so "bright anywhere" is not enough.
    """
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.25, size=(n, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros(n, np.int64)
    centres = np.full((n, 2), -1)
    for i in range(n):
        r0, c0 = rng.integers(0, size - 6, size=2)
        images[i, r0:r0 + 6, c0:c0 + 6] += 0.2  # distractor: dim square
        if i % 2 == 0:
            cy, cx = rng.integers(radius + 1, size - radius - 1, size=2)
            images[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = 1.0
            labels[i], centres[i] = 1, (cy, cx)
    return np.clip(images, 0, 1)[..., None], labels, centres


LABELS = ["glioma", "meningioma", "notumor", "pituitary"]


def write_tiny_bundle(folder, size=32, preprocessing="rescale", seed=0):
    """Save a random GAP->Dense model as a bundle folder; returns the folder."""
    from explain.bundle import from_model, save_bundle

    keras.utils.set_random_seed(seed)
    model = gap_dense_cnn(size=size)
    bundle = from_model(model, labels=LABELS, preprocessing=preprocessing, target_layer="last",
                        metadata={"note": "random test model"})
    return save_bundle(bundle, folder)


def write_png(path, array):
    """Save a (H, W) or (H, W, 3) uint8 array as PNG; returns the path."""
    from PIL import Image

    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return path
