"""Eigen-CAM (Muhammad & Yeasin, 2020): first principal component of the activations.

Per sample, the activation (h', w', C) is reshaped to X (h'*w', C), each
channel is centred over the positions (so this is the principal component,
as in pytorch-grad-cam; the paper projects the uncentred matrix), and the
map is the projection of every position onto the first right singular vector
of the SVD, X v_1 = u_1 s_1. Singular vectors have no intrinsic sign, so the
sign is chosen to make the map correlate positively with the channel-mean
activation. The map does not depend on the class (no gradient, no score).
"""

from __future__ import annotations

import numpy as np

from .free import GradientFreeMethod


class EigenCAM(GradientFreeMethod):
    name = "eigencam"
    label = "Eigen-CAM"
    #: The map is the same whatever class is asked for: captions must not name one.
    class_agnostic = True

    def raw_maps(self, engine, batch, acts, classes):
        """(B, h, w, C), (B, h', w', C'), (B,) -> float32 (B, h', w') projections (before ReLU)."""
        return first_component(acts)


def first_component(acts: np.ndarray) -> np.ndarray:
    """(B, h', w', C) float -> float32 (B, h', w') projection on the first principal component.

    All-zero or constant activations give an all-zero map, never NaN.
    """
    b, h, w, c = acts.shape
    x = acts.reshape(b, h * w, c).astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    # Batched LAPACK SVD treats each sample's matrix separately: batching does
    # not change any sample's result.
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    proj = u[:, :, 0] * s[:, :1]  # (B, h'*w') = X v_1
    reference = acts.reshape(b, h * w, c).mean(axis=-1)
    reference = reference - reference.mean(axis=1, keepdims=True)
    # proj is already zero-mean (X is centred), so this dot is the covariance.
    sign = np.where(np.sum(proj * reference, axis=1) < 0, -1.0, 1.0)
    return (proj * sign[:, None]).reshape(b, h, w).astype(np.float32)
