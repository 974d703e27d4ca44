"""Shared base of the gradient-family CAM methods.

Every method receives, from one compiled forward/backward pass,

    acts:  float32 (B, h, w, C)  activation of the target layer
    grads: float32 (B, h, w, C)  d logit[class] / d acts, per sample

and returns an unnormalised map of shape (B, h, w). ReLU and per-map
min-max normalisation are applied afterwards by the engine, identically for
every method. Subclasses override :meth:`channel_weights` (the common case)
or :meth:`raw_map` when the map is not a weighted sum of channels.
"""

from __future__ import annotations

import tensorflow as tf


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
