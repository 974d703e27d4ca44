"""Is this image like the slices the model was trained on? A per-image input check.

Class-conditional Mahalanobis distance (Lee et al., 2018, "A simple unified
framework for detecting out-of-distribution samples") on the features the
classifier reads (the input of the model's last Dense layer), with one
shared, shrunk covariance. The model's top probability cannot tell: it is as
high on photos and noise as on real slices (see docs/trust.md).

The reference is fitted once per bundle by research code
(``python -m explain.evaluation.fit_input_check``) and stored as a small
``.npz`` beside the model plus an ``"input_check"`` entry in ``bundle.json``::

    "input_check": {"file": "input_check.npz", "method": "mahalanobis",
                    "threshold": 18.3, "weights_sha256": "...", "fitted_on": {...}}

At run time scoring is one (B, D) x (D, D) product and a distance to K
class centres. A grayscale model cannot see colour, so for such a bundle the
fit also stores ``colour_limit``: an upload with a larger share of clearly
coloured pixels (:func:`colour_share`) is flagged too, whatever its features
(brain MRI slices are grey; photos, logos and colour-Doppler screens are not).
A bundle without the entry, or with one fitted for other
weights, has no check, and every surface says "no input check for this
model" instead of pretending.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

METHOD = "mahalanobis"
#: A pixel is "clearly coloured" above this saturation ((max - min) / max of R, G, B) and this value (max).
SATURATION, VALUE = 0.2, 0.15
#: The colour limit is never below this share of pixels (JPEG chroma noise, a coloured annotation).
COLOUR_FLOOR = 0.02
NO_CHECK = "no input check for this model"
WARNING = ("This does not look like a brain MRI slice of the kind the model was trained on; "
           "the class below is not meaningful.")


@dataclass(frozen=True)
class InputCheck:
    """A fitted reference.

    whitener: float32 (D, D), W with W @ W.T = the inverse of the shared covariance.
    centres: float32 (K, D), the class means of the training features times W.
    threshold: scores above it are flagged (a distance, in the units of :meth:`score`).
    """

    whitener: np.ndarray
    centres: np.ndarray
    threshold: float
    colour_limit: float | None = None  # None: colour is not checked (an RGB model sees it itself)

    @property
    def method(self) -> str:
        return METHOD if self.colour_limit is None else f"{METHOD}+colour"

    def score(self, features: np.ndarray) -> np.ndarray:
        """float (B, D) features -> float64 (B,) Mahalanobis distance to the nearest class centre (>= 0)."""
        z = np.asarray(features, np.float32).reshape(len(features), -1) @ self.whitener
        d2 = ((z[:, None, :] - self.centres[None]) ** 2).sum(-1)
        return np.sqrt(d2.min(axis=1).astype(np.float64))

    def verdicts(self, features: np.ndarray, images=None) -> list[dict]:
        """One ``{"in_distribution", "score", "threshold", "method"}`` per row of ``features`` (B, D).

        images: the B decoded uploads, (H, W, 3) uint8, for the colour part
        (then each verdict also has ``colour_share`` and ``colour_limit``).
        """
        out = []
        for i, score in enumerate(self.score(features)):
            verdict = {"in_distribution": bool(score <= self.threshold), "score": round(float(score), 4),
                       "threshold": round(self.threshold, 4), "method": self.method}
            if self.colour_limit is not None and images is not None:
                share = colour_share(images[i])
                verdict.update(colour_share=round(share, 4), colour_limit=self.colour_limit)
                verdict["in_distribution"] = verdict["in_distribution"] and share <= self.colour_limit
            out.append(verdict)
        return out


def colour_share(image: np.ndarray) -> float:
    """(H, W, 3) uint8 RGB -> share in [0, 1] of its pixels that are clearly coloured (not grey)."""
    rgb = np.asarray(image, np.float32) / 255.0
    top, bottom = rgb.max(axis=-1), rgb.min(axis=-1)
    saturation = (top - bottom) / np.maximum(top, 1e-3)
    return float(np.mean((saturation > SATURATION) & (top > VALUE)))


def no_check(reason: str = NO_CHECK) -> dict:
    """The verdict of a bundle without a usable reference: same keys, no answer."""
    return {"in_distribution": None, "score": None, "threshold": None, "method": None, "note": reason}


def load_input_check(bundle) -> tuple[InputCheck | None, str]:
    """(the bundle's fitted check or None, a sentence saying which and why).

    A missing entry is silent (most bundles have none); an entry that cannot be
    used (unreadable file, other weights, wrong shapes) is warned about once,
    here, at load time.
    """
    entry = getattr(bundle, "input_check", None)
    if not entry:
        return None, NO_CHECK
    try:
        check = _read(bundle, entry)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = f"{NO_CHECK} (its reference was ignored: {exc})"
        warnings.warn(reason, stacklevel=2)
        return None, reason
    return check, f"input check: {check.method}, threshold {check.threshold:.2f}"


def _read(bundle, entry: dict) -> InputCheck:
    if entry.get("method") != METHOD:
        raise ValueError(f"unknown method {entry.get('method')!r}")
    threshold = float(entry["threshold"])
    if not math.isfinite(threshold):
        raise ValueError("the threshold is not a finite number")
    if bundle.path is None or not bundle.path.is_dir():
        raise ValueError("the bundle is not a folder")
    if entry.get("weights_sha256") != bundle.weights_digest():
        raise ValueError("it was fitted for other weights; refit it with python -m explain.evaluation.fit_input_check")
    name = str(entry["file"])
    if "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"{name!r} is not a file name inside the bundle")
    with np.load(bundle.path / name) as data:
        whitener = np.asarray(data["whitener"], np.float32)
        centres = np.asarray(data["centres"], np.float32)
    if whitener.ndim != 2 or whitener.shape[0] != whitener.shape[1] or centres.shape[1:] != whitener.shape[1:]:
        raise ValueError(f"shapes {whitener.shape} and {centres.shape} do not fit")
    limit = entry.get("colour_limit")
    if limit is not None and not (isinstance(limit, (int, float)) and 0 <= limit <= 1):
        raise ValueError(f"colour_limit must be a share in [0, 1], found {limit!r}")
    return InputCheck(whitener, centres, threshold, None if limit is None else float(limit))
