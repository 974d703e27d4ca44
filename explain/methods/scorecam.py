"""Score-CAM (Wang et al., 2020): channel weights from forward passes, no gradient.

For each channel k of the target activation A (per sample):

1. upsample A_k bilinearly to the input size and min-max normalise it to
   [0, 1] (a constant channel gives the all-zero mask);
2. mask the model input: X * H_k (the *model input*, i.e. after
   preprocessing, so masked-out pixels become 0 in that space: black for
   [0, 1] inputs, mid-grey for [-1, 1] inputs);
3. score S_k = p_c(X * H_k), the class probability reported by the engine
   (softmax or sigmoid of the logits, with the engine's temperature).

Weights are w = softmax_k(S_k) over channels, as in Algorithm 1 of the paper
(probabilities, not logits: the paper's choice; pytorch-grad-cam uses logits,
which makes the softmax much sharper). The baseline score f(X_b) of the paper
is the same for every channel and cancels in the softmax, so it is not
computed. Map = relu(sum_k w_k A_k) at the layer's resolution.

Masked inputs go through the engine's compiled ``predict`` ``batch_size`` at a
time. Channels that are constant on a sample all give the same (all-zero)
masked input, which is run once for that sample.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .free import GradientFreeMethod

#: Below this range a channel counts as constant (its normalised mask is all zero).
RANGE_EPS = 1e-8


class ScoreCAM(GradientFreeMethod):
    """Score-CAM.

    batch_size: masked inputs per forward pass.
    max_channels: if set, only the channels with the highest spatial-mean
        activation on each sample are scored (the others get weight 0). A speed
        knob for wide layers (Xception's 2048 channels mean 2048 forwards per
        image); None (default) is the method as published.
    """

    name = "scorecam"
    label = "Score-CAM"

    def __init__(self, batch_size: int = 32, max_channels: int | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if max_channels is not None and max_channels < 1:
            raise ValueError("max_channels must be at least 1 or None")
        self.batch_size = int(batch_size)
        self.max_channels = max_channels

    @staticmethod
    def _mask_fn(engine, input_shape, map_shape):
        """The compiled mask builder for these shapes, kept by ``engine``'s family
        (:meth:`~explain.engine.CamEngine.shared`): get_method() makes a new ScoreCAM
        per request, which must not retrace it each time."""
        key = (tuple(input_shape), tuple(map_shape))
        return engine.shared(("scorecam-masks", *key), lambda: _build_mask_fn(*key))

    def channel_scores(self, engine, image: np.ndarray, acts: np.ndarray, cls: int) -> np.ndarray:
        """One sample: image (h, w, C), acts (h', w', C') -> float64 (C',) class probabilities.

        Channels left out by ``max_channels`` get -inf (weight 0 after the softmax).
        """
        channels = np.moveaxis(acts, -1, 0)  # (C', h', w')
        span = channels.max(axis=(1, 2)) - channels.min(axis=(1, 2))
        chosen = np.arange(channels.shape[0])
        if self.max_channels is not None and self.max_channels < channels.shape[0]:
            # Stable sort so ties resolve the same way for every batch composition.
            order = np.argsort(-channels.mean(axis=(1, 2)), kind="stable")
            chosen = np.sort(order[: self.max_channels])
        scores = np.full(channels.shape[0], -np.inf)
        live = chosen[span[chosen] > RANGE_EPS]
        flat = chosen[span[chosen] <= RANGE_EPS]
        if flat.size:
            blank = np.zeros((1,) + image.shape, np.float32)
            scores[flat] = engine.predict(blank)[0, cls]
        mask_fn = self._mask_fn(engine, image.shape, channels.shape[1:])
        for start in range(0, live.size, self.batch_size):
            idx = live[start : start + self.batch_size]
            masked = mask_fn(image, channels[idx]).numpy()
            scores[idx] = engine.predict(masked)[:, cls]
        return scores

    def raw_maps(self, engine, batch, acts, classes):
        """(B, h, w, C), (B, h', w', C'), (B,) -> float32 (B, h', w') = relu(sum_k w_k A_k)."""
        out = np.zeros(acts.shape[:3], np.float32)
        for b in range(batch.shape[0]):
            scores = self.channel_scores(engine, batch[b], acts[b], int(classes[b]))
            finite = np.isfinite(scores)
            if not finite.any():
                continue
            # Softmax over the scored channels, shifted by the max for stability.
            weights = np.zeros_like(scores)
            shifted = scores[finite] - scores[finite].max()
            weights[finite] = np.exp(shifted) / np.exp(shifted).sum()
            out[b] = np.maximum(np.tensordot(acts[b], weights, axes=([-1], [0])), 0.0)
        return out


def _build_mask_fn(input_shape: tuple, map_shape: tuple):
    """Compiled ``(image (h, w, C), channels (n, h', w')) -> masked images (n, h, w, C)``."""
    size = tuple(int(d) for d in input_shape[:2])

    def masked_inputs(image, channels):
        up = tf.image.resize(channels[..., None], size, method="bilinear")
        low = tf.reduce_min(up, axis=(1, 2, 3), keepdims=True)
        high = tf.reduce_max(up, axis=(1, 2, 3), keepdims=True)
        span = high - low
        mask = tf.where(span > RANGE_EPS, (up - low) / tf.maximum(span, RANGE_EPS), 0.0)
        return image[None] * mask

    return tf.function(
        masked_inputs,
        input_signature=[
            tf.TensorSpec(input_shape, tf.float32),
            tf.TensorSpec((None,) + map_shape, tf.float32),
        ],
    )
