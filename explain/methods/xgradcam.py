"""XGrad-CAM (Fu et al., 2020): w_c = sum_ij(g * A) / sum_ij(A), map = sum_c w_c A_c."""

from __future__ import annotations

import tensorflow as tf

from .base import CamMethod

#: Keeps the normalising sum away from zero (all-zero channels, dead ReLUs).
EPS = 1e-7


class XGradCAM(CamMethod):
    name = "xgradcam"
    label = "XGrad-CAM"

    def channel_weights(self, acts: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """(B, h, w, C) float32, (B, h, w, C) float32 -> (B, C) float32 weights."""
        num = tf.reduce_sum(grads * acts, axis=(1, 2))
        den = tf.reduce_sum(acts, axis=(1, 2))
        # eps with the sign of the sum: after a ReLU this is the paper's
        # sum(A) + eps; before one (negative sums) a plain + eps could itself
        # cancel the sum and divide by zero.
        sign = tf.where(den < 0.0, -tf.ones_like(den), tf.ones_like(den))
        return num / (den + sign * EPS)
