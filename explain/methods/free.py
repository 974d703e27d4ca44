"""Shared machinery of the gradient-free CAM methods (Score-CAM, Eigen-CAM).

These methods need the target layer's activation but no gradient, and some
need extra forward passes on modified inputs, so they cannot be expressed as
a :class:`~explain.methods.base.CamMethod` inside the engine's compiled
gradient pass. Instead they take a built :class:`~explain.engine.CamEngine`
and use

* its ``model``, ``target`` and ``input_shape`` for a small compiled pass of
  their own (:class:`ActivationProbe`, built on
  :func:`explain.model.graph.run_intercepted`) that returns the target activation
  and the model output, and
* its public, compiled ``predict`` for any further forward passes, so that
  the class scores are the same (temperature-scaled) probabilities the
  engine reports.

Maps are normalised with :func:`explain.methods.base.normalize_maps`,
exactly as the gradient methods' maps are. Nothing here imports
:mod:`explain.engine`: the engine is only used through its attributes.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..errors import LayerError
from ..model.graph import capture_output, run_intercepted
from ..preprocess import as_model_batch
from .base import normalize_maps


class ActivationProbe:
    """Compiled ``x -> (target activation, model output)`` for one model and target layer.

    model: the engine's Keras model (never modified).
    target: :class:`~explain.model.layers.LayerPath` of the layer to read.
    input_shape: (h, w, C) of one model input.
    """

    def __init__(self, model, target, input_shape):
        self.model = model
        self.target = target
        self.input_shape = tuple(input_shape)
        signature = tf.TensorSpec((None,) + self.input_shape, tf.float32)
        self._fn = tf.function(self._run, input_signature=[signature])

    def _run(self, x):
        store = {}
        out = run_intercepted(self.model, x, {id(self.target.layer): capture_output(store, "acts")})
        if "acts" not in store:
            raise LayerError(f"Layer {self.target} is not on the path from the input to the output.")
        return store["acts"], out

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, h, w, C) float32 -> (acts (B, h', w', C') float32, model output (B, K) float32)."""
        acts, out = self._fn(batch)
        return acts.numpy().astype(np.float32), out.numpy().astype(np.float32)


def probe_for(engine) -> ActivationProbe:
    """The :class:`ActivationProbe` of ``engine``'s model and target layer, built once per engine family
    (:meth:`~explain.engine.CamEngine.shared`) and gone with it."""
    return engine.shared(
        "activation-probe", lambda: ActivationProbe(engine.model, engine.target, engine.input_shape)
    )


def resolve_classes(classes, scores: np.ndarray) -> np.ndarray:
    """Per-sample class indices, int32 (B,): ``None`` or -1 means argmax of ``scores`` (B, K).

    The argmax of the model output equals the engine's argmax of the logits:
    softmax and sigmoid are monotonic, and a logit head outputs the logits.
    """
    n, k = scores.shape
    predicted = np.argmax(scores, axis=-1).astype(np.int32)
    if classes is None:
        return predicted
    classes = np.asarray(classes, np.int32).reshape(-1)
    if classes.shape[0] != n:
        raise ValueError(f"{classes.shape[0]} class indices for {n} images")
    if np.any(classes >= k) or np.any(classes < -1):
        raise ValueError(f"class index out of range 0..{k - 1}")
    return np.where(classes < 0, predicted, classes).astype(np.int32)


def normalize(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, h, w) raw maps -> (float32 maps in [0, 1], bool empty flags (B,)), as the engine does."""
    maps, empty = normalize_maps(tf.convert_to_tensor(raw, tf.float32))
    return maps.numpy().astype(np.float32), empty.numpy().astype(bool)


class GradientFreeMethod:
    """A CAM method computed from activations and forward passes only.

    Subclasses implement :meth:`raw_maps`. They are not
    :class:`~explain.methods.base.CamMethod` objects and cannot be given to
    a ``CamEngine``; use :func:`explain.methods.compute_maps`.
    """

    name = "gradient-free"
    label = "gradient-free"

    def raw_map(self, acts, grads):
        # Reached only if someone hands this method to CamEngine; fail with a
        # pointer to the right entry point instead of a NotImplementedError.
        raise TypeError(
            f"{self.label} is gradient-free and cannot run inside CamEngine; "
            "use explain.methods.compute_maps(engine, batch, classes, method)."
        )

    def raw_maps(self, engine, batch: np.ndarray, acts: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """(B, h, w, C) inputs, (B, h', w', C') activations, int32 (B,) classes -> (B, h', w') raw maps."""
        raise NotImplementedError

    def compute(self, engine, batch, classes=None) -> tuple[np.ndarray, np.ndarray]:
        """(B, h, w, C) float32 -> (maps float32 (B, h', w') in [0, 1], empty bool (B,)).

        ``classes``: None, or an int per sample, -1 meaning the predicted class.
        """
        batch = as_model_batch(batch, engine.input_shape)
        acts, out = probe_for(engine)(batch)
        chosen = resolve_classes(classes, out)
        raw = self.raw_maps(engine, batch, acts, chosen)
        # A model can return NaN/inf on degenerate (e.g. fully masked) inputs;
        # such a map position carries no evidence and must not reach the UI.
        raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
        return normalize(raw)
