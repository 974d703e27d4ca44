"""HiResCAM (Draelos & Carin, 2020): map = sum_c g_c * A_c, element-wise.

Unlike Grad-CAM it does not average the gradient over space first, so the map
provably shows the locations that raise the score for any head; for a
GAP -> Dense head the gradient is spatially constant and the two coincide.
"""

from __future__ import annotations

import tensorflow as tf

from .base import CamMethod


class HiResCAM(CamMethod):
    name = "hirescam"
    label = "HiResCAM"

    def raw_map(self, acts: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """(B, h, w, C) float32, (B, h, w, C) float32 -> (B, h, w) float32."""
        return tf.reduce_sum(grads * acts, axis=-1)
