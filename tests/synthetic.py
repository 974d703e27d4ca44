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


def write_dataset(root, per_class: int = 14, size: int = 48):
    """A folder laid out like the real dataset: images + clean_split.csv; returns ``root``.

    Class k has a bright bar at height 8k; of each class's images the first
    10 are train, 2 val, the rest test. Every third image is a tinted RGB file,
    as in the real data.
    """
    import csv
    from pathlib import Path

    root = Path(root)
    rng = np.random.default_rng(0)
    rows = []
    for k, label in enumerate(LABELS):
        (root / "Training" / label).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (size, size), dtype=np.uint8)
            image[8 * k:8 * k + 12, 10:30] = 230
            if i % 3 == 0:
                image = np.stack([image, image, np.clip(image.astype(int) + 20, 0, 255)], -1).astype(np.uint8)
            path = f"Training/{label}/img_{i:02d}.png"
            write_png(root / path, image)
            rows.append((path, label, "train" if i < 10 else ("val" if i < 12 else "test")))
    with open(root / "clean_split.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return root


def assert_clean_message(message: str) -> None:
    """An error meant for a person: short, printable ASCII, no raw bytes quoted."""
    assert 0 < len(message) < 200, message
    assert message.isprintable() and message.isascii(), message
    assert "b'" not in message and 'b"' not in message and "\\x" not in message, message


def assert_decodes_or_fails_cleanly(variants) -> None:
    """Each of ``variants`` (bytes) decodes to (H, W, 3) uint8 or raises one clean ImageDecodeError."""
    from explain.io.decode import decode_image
    from explain.errors import ImageDecodeError

    for variant in variants:
        try:
            out = decode_image(variant)
        except ImageDecodeError as exc:
            assert_clean_message(str(exc))
        else:
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


def head_images(n: int, kind: str, size: int = 32, seed: int = 0):
    """Synthetic "slices" (n, size, size, 3) float32 in [0, 1] and labels (n,) int (alternating 0, 1).

    A noisy ellipse (the head) on black. kind="patch": the class depends only
    on a 6 x 6 patch inside the head, a black-and-white checkerboard (class 1)
    or flat grey of the same mean (class 0); a blur of sigma 1 px turns the
    first into the second. kind="brightness": the class depends only on the
    head's overall brightness (class 1 is 0.4 brighter everywhere).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    head = ((yy - size / 2) / (0.45 * size)) ** 2 + ((xx - size / 2) / (0.4 * size)) ** 2 <= 1
    labels = np.arange(n) % 2
    images = np.zeros((n, size, size), np.float32)
    checker = (np.add.outer(np.arange(6), np.arange(6)) % 2).astype(np.float32)
    for i in range(n):
        if kind == "patch":
            image = head * rng.uniform(0.15, 0.4, (size, size))
            r, c = rng.integers(size // 2 - 7, size // 2 + 1, size=2)
            image[r:r + 6, c:c + 6] = checker if labels[i] else 0.5
        elif kind == "brightness":
            image = head * (rng.uniform(0.1, 0.4, (size, size)) + 0.4 * labels[i])
        else:
            raise ValueError(kind)
        images[i] = np.clip(image, 0.0, 1.0)
    return np.repeat(images[..., None], 3, axis=-1), labels


def train_two_class(kind: str, size: int = 32, seed: int = 0):
    """:func:`gap_dense_cnn` trained for a few seconds on :func:`head_images` of ``kind``; returns the model."""
    keras.utils.set_random_seed(seed)
    x, y = head_images(600, kind, size=size, seed=seed)
    model = gap_dense_cnn(size=size, classes=2)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return model


def as_uint8(images) -> list:
    """float [0, 1] (n, h, w, 3) -> list of (h, w, 3) uint8 arrays (what an upload decodes to)."""
    return [np.rint(np.asarray(image) * 255).astype(np.uint8) for image in images]
