"""Grad-CAM++ (Chattopadhyay et al., 2018), closed form under the exp-logit assumption.

With the class score taken as Y = exp(S) (S the logit), the higher-order
derivatives of Y are powers of the first derivative g = dS/dA and the
pixel-wise coefficients have the closed form

    alpha_ij = g_ij^2 / (2 g_ij^2 + sum_ab(A_ab) g_ij^3)
    w_c      = sum_ij alpha_ij * relu(g_ij)

(the common factor exp(S) of all weights cancels in the min-max normalisation).
"""

from __future__ import annotations

import tensorflow as tf

from .base import CamMethod


class GradCAMPlusPlus(CamMethod):
    name = "gradcampp"
    label = "Grad-CAM++"

    def channel_weights(self, acts: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """(B, h, w, C) float32, (B, h, w, C) float32 -> (B, C) float32 weights."""
        # Per-sample, per-channel spatial sum: never reduce across the batch.
        act_sum = tf.reduce_sum(acts, axis=(1, 2), keepdims=True)
        # alpha = g^2 / (g^2 (2 + sum(A) g)) = 1 / (2 + sum(A) g) where g != 0.
        # Dividing out g^2 symbolically keeps float32 from underflowing g^3 to
        # zero (and alpha to 0/0) for the tiny gradients of deep layers.
        denom = 2.0 + act_sum * grads
        # denom can only vanish when sum(A) < 0 (a layer before its ReLU); such
        # a pixel gets alpha = 0 instead of an infinite weight.
        valid = tf.logical_and(tf.not_equal(grads, 0.0), tf.not_equal(denom, 0.0))
        alpha = tf.where(valid, 1.0 / tf.where(valid, denom, tf.ones_like(denom)), tf.zeros_like(denom))
        return tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2))
