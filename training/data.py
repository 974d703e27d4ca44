"""Dataset access, the decoded-image cache, augmentation and batching.

The input path is the app's own: :func:`explain.decode.decode_image` then
:func:`explain.preprocess.prepare_pixels` (cached once, uint8), then optional
augmentation, then :func:`explain.preprocess.finish`. With augmentation off
a batch equals what the app feeds the model for the same file.

Backend-neutral (numpy + OpenCV, a ``keras.utils.PyDataset``), so training
runs on TensorFlow and on JAX alike.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np

from explain.decode import decode_image
from explain.preprocess import InputSpec, finish, prepare_pixels

ROOT = Path(__file__).resolve().parents[1]
DATA_ENV = "BRAIN_MRI_DATA"
LABELS = ("glioma", "meningioma", "notumor", "pituitary")
CACHE_VERSION = 1


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The dataset folder: ``override``, else $BRAIN_MRI_DATA, else ../shared/data/brain-tumor-mri."""
    path = Path(override or os.environ.get(DATA_ENV) or ROOT.parent / "shared/data/brain-tumor-mri")
    if not (path / "clean_split.csv").is_file():
        raise FileNotFoundError(
            f"No dataset at {path} (clean_split.csv missing). Set {DATA_ENV} or pass --data."
        )
    return path


@dataclass(frozen=True)
class Item:
    path: str  # relative to the data folder
    label: str
    split: str


def read_split(folder: Path, split: str | None = None, csv_name: str = "clean_split.csv") -> list[Item]:
    """Rows of ``clean_split.csv`` (optionally one split), in file order."""
    with open(folder / csv_name, newline="") as f:
        items = [Item(r["path"], r["label"], r["split"]) for r in csv.DictReader(f)]
    return [i for i in items if split is None or i.split == split]


def read_list(folder: Path, list_name: str) -> list[Item]:
    """A list file of relative paths (e.g. clean_smoke.txt); labels from the folder names."""
    lines = (folder / list_name).read_text().split()
    return [Item(p, Path(p).parent.name, "list") for p in lines]


def published_testing(folder: Path) -> list[Item]:
    """Every image of the published Testing folder (leaky: for comparison only)."""
    return [Item(str(p.relative_to(folder)), p.parent.name, "published-test")
            for p in sorted((folder / "Testing").glob("*/*.jpg"))]


def fingerprint(items: list[Item]) -> str:
    """SHA-256 over the listed paths and labels: identifies the data a model saw."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.path},{item.label},{item.split}\n".encode())
    return digest.hexdigest()


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


def augment(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(h, w, c) uint8 -> (h, w, c) float32 in [0, 255]: flip, rotate +-10 deg, zoom 0.9-1.1,
    shift +-6 %, contrast x0.8-1.2, brightness +-20 grey levels.

    Applied to the single grey channel before it is replicated (a third of the cost).
    """
    h, w = pixels.shape[:2]
    image = pixels
    if rng.random() < 0.5:
        image = image[:, ::-1]
    angle = rng.uniform(-10, 10)
    scale = rng.uniform(0.9, 1.1)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-0.06, 0.06, size=2) * (w, h)
    warped = cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = warped.astype(np.float32).reshape(h, w, -1)
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.8, 1.2) + mean + rng.uniform(-20, 20)
    return np.clip(out, 0.0, 255.0)


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
