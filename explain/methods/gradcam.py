"""Grad-CAM (Selvaraju et al., 2017): channel weight = spatial mean of the gradient."""

from __future__ import annotations

import tensorflow as tf

from .base import CamMethod


class GradCAM(CamMethod):
    name = "gradcam"
    label = "Grad-CAM"

    def channel_weights(self, acts: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        # Mean over each sample's own spatial positions only: batching must not mix samples.
        return tf.reduce_mean(grads, axis=(1, 2))
