"""The dataset folder and its leak-free split (``clean_split.csv``).

Read by training, evaluation, the audit and the annotation tools alike, so it
lives in the library (which never imports the training code). Only the
standard library: listing a split needs neither images nor TensorFlow.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

#: The repository root (the default data folder is its sibling ../shared/data/brain-tumor-mri).
ROOT = Path(__file__).resolve().parents[2]
DATA_ENV = "BRAIN_MRI_DATA"
LABELS = ("glioma", "meningioma", "notumor", "pituitary")


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
