"""Dataset access, the decoded-image cache, augmentation and batching.

The input path is the app's own: :func:`explain.io.decode.decode_image` then
:func:`explain.preprocess.prepare_pixels` (cached once, uint8), then optional
augmentation, then :func:`explain.preprocess.finish`. With augmentation off
a batch equals what the app feeds the model for the same file.

Backend-neutral (numpy + OpenCV, a ``keras.utils.PyDataset``), so training
runs on TensorFlow and on JAX alike.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import keras
import numpy as np

# The split reader lives in the library; re-exported so training code keeps one namespace.
from explain.evaluation.dataset import (DATA_ENV, LABELS, ROOT, Item, data_dir, fingerprint,  # noqa: F401
                             published_testing, read_split)
from explain.io.decode import decode_image
from explain.preprocess import InputSpec, finish, prepare_pixels

CACHE_VERSION = 1


def load_pixels(folder: Path, items: list[Item], spec: InputSpec, cache_dir: Path | None) -> np.ndarray:
    """(N, h, w, c) uint8 prepared pixels, decoded once and cached as .npy."""
    key = hashlib.sha256(
        f"{CACHE_VERSION}|{spec.size}|{spec.color_mode}|{folder.resolve()}|".encode()
        + "\n".join(i.path for i in items).encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"pixels-{key}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        return np.load(cache)
    pixels = np.stack([prepare_pixels(decode_image(folder / i.path), spec) for i in items])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, pixels)
        tmp.replace(cache)
    return pixels


def augment(pixels: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None):
    """(h, w, c) uint8 -> (h, w, c) float32 in [0, 255]: flip, rotate +-10 deg, zoom 0.9-1.1,
    shift +-6 %, contrast x0.8-1.2, brightness +-20 grey levels.

    Applied to the single grey channel before it is replicated (a third of the cost).
    With ``mask`` ((h, w) float32 in [0, 1], e.g. a lesion box), returns ``(image, mask)``
    with the mask moved by the same flip and warp (bilinear, so box edges stay fractional).
    """
    h, w = pixels.shape[:2]
    flip = rng.random() < 0.5
    angle = rng.uniform(-10, 10)
    scale = rng.uniform(0.9, 1.1)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-0.06, 0.06, size=2) * (w, h)

    def warp(array):
        array = np.ascontiguousarray(array[:, ::-1] if flip else array)
        return cv2.warpAffine(array, matrix, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    out = warp(pixels).astype(np.float32).reshape(h, w, -1)
    mean = out.mean()
    out = np.clip((out - mean) * rng.uniform(0.8, 1.2) + mean + rng.uniform(-20, 20), 0.0, 255.0)
    if mask is None:
        return out
    return out, warp(mask.astype(np.float32))


class Batches(keras.utils.PyDataset):
    """Model-ready batches: x float32 (B, h, w, C), y one-hot float32 (B, K)."""

    def __init__(self, pixels, labels, spec: InputSpec, num_classes: int, batch_size=32,
                 training=False, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.pixels, self.labels, self.spec = pixels, np.asarray(labels), spec
        self.num_classes, self.batch_size, self.training = num_classes, batch_size, training
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(pixels))
        if training:
            self.rng.shuffle(self.order)

    def __len__(self):
        return int(np.ceil(len(self.pixels) / self.batch_size))

    def __getitem__(self, index):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        if self.training:
            raw = np.stack([augment(self.pixels[i], self.rng) for i in idx])
        else:
            raw = self.pixels[idx]
        x = finish(raw, self.spec)
        y = np.eye(self.num_classes, dtype=np.float32)[self.labels[idx]]
        return x, y

    def on_epoch_end(self):
        if self.training:
            self.rng.shuffle(self.order)
