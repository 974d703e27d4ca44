"""Layer-CAM (Jiang et al., 2021): map = sum_c relu(g_c) * A_c, element-wise.

Each location keeps its own positive gradient as weight, which keeps the
spatial detail of shallow layers where Grad-CAM's averaged weights blur it.
"""

from __future__ import annotations

import tensorflow as tf

from .base import CamMethod


class LayerCAM(CamMethod):
    name = "layercam"
    label = "Layer-CAM"

    def raw_map(self, acts: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """(B, h, w, C) float32, (B, h, w, C) float32 -> (B, h, w) float32."""
        return tf.reduce_sum(tf.nn.relu(grads) * acts, axis=-1)
