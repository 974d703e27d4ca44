"""Shared base of the gradient-family CAM methods.

Every method receives, from one compiled forward/backward pass,

    acts:  float32 (B, h, w, C)  activation of the target layer
    grads: float32 (B, h, w, C)  d logit[class] / d acts, per sample

and returns an unnormalised map of shape (B, h, w). ReLU and per-map
min-max normalisation (:func:`normalize_maps`) are applied afterwards,
identically for every method, gradient-free ones included. Subclasses override :meth:`channel_weights` (the common case)
or :meth:`raw_map` when the map is not a weighted sum of channels.
"""

from __future__ import annotations

import tensorflow as tf

#: Maps whose maximum (after ReLU) is at or below this have no positive evidence.
EMPTY_EPS = 1e-8


def normalize_maps(raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(B, ..., h, w) raw maps -> (ReLU + per-map min-max in [0, 1], empty flags (B, ...)).

    A map with no positive evidence is returned as zeros and flagged, never NaN.
    """
    cam = tf.nn.relu(raw)
    high = tf.reduce_max(cam, axis=(-2, -1), keepdims=True)
    low = tf.reduce_min(cam, axis=(-2, -1), keepdims=True)
    empty = high <= EMPTY_EPS
    scaled = (cam - low) / tf.maximum(high - low, EMPTY_EPS)
    scaled = tf.where(empty, tf.zeros_like(scaled), scaled)
    return scaled, tf.squeeze(empty, axis=(-2, -1))


class CamMethod:
    name = "base"
    label = "base"

    def channel_weights(self, acts: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """(B, h, w, C), (B, h, w, C) -> (B, C) weight per channel."""
        raise NotImplementedError

    def raw_map(self, acts: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """(B, h, w, C), (B, h, w, C) -> (B, h, w) map before ReLU and normalisation."""
        weights = self.channel_weights(acts, grads)
        return tf.einsum("bhwc,bc->bhw", acts, weights)
