"""Baseline for the benchmark: Grad-CAM as the keras.io tutorial writes it.

This is ``make_gradcam_heatmap`` from the keras.io example "Grad-CAM class
activation visualization" (fchollet), kept as the tutorial has it so that the
benchmark compares against what most projects copy:

* a new ``keras.Model`` mapping the input to (target activation, output) is
  built on *every* call;
* the forward and backward passes run eagerly under ``tf.GradientTape``;
* the gradient is taken of the model's *output*, i.e. of the softmax
  probability of the class (the tutorial removes the softmax with
  ``model.layers[-1].activation = None``; that edits the user's model, so it
  is not done here, which is what most copies end up doing).

It handles only top-level layers (``model.get_layer`` does not look inside
nested models). Used by ``benchmarks/engine_bench.py`` for timing only; the project's
implementation is :class:`explain.engine.CamEngine`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def make_gradcam_heatmap(img_array, model, last_conv_layer_name, pred_index=None) -> np.ndarray:
    """(1, h, w, C) preprocessed image -> (h', w') float32 heatmap in [0, 1] (keras.io version)."""
    # The tutorial rebuilds this "gradient model" on every call.
    grad_model = keras.models.Model(
        model.inputs, [model.get_layer(last_conv_layer_name).output, model.output]
    )

    with tf.GradientTape() as tape:
        last_conv_layer_output, preds = grad_model(img_array)
        if pred_index is None:
            pred_index = tf.argmax(preds[0])
        class_channel = preds[:, pred_index]

    grads = tape.gradient(class_channel, last_conv_layer_output)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))

    last_conv_layer_output = last_conv_layer_output[0]
    heatmap = last_conv_layer_output @ pooled_grads[..., tf.newaxis]
    heatmap = tf.squeeze(heatmap)

    # As in the tutorial: divides by zero (NaN map) when the maximum is 0.
    heatmap = tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)
    return heatmap.numpy()
