"""The compiled CAM engine: probabilities and heatmaps from one forward pass.

Built once per model (not per request): the forward pass is replayed through
:func:`explain.model.graph.run_intercepted` so that the target layer's activation
and the pre-softmax logits are captured, and wrapped in ``tf.function`` with a
fixed input signature that is traced at construction time. Gradients are of
the class *logit*: the softmax output saturates (p = 1.0 gives zero gradient),
the logit does not.

Engines of one model, layer, input shape and temperature form a family: each
method's engine is built once, on first use, by :meth:`CamEngine.for_method`
and shared by every caller that reaches it through the family (the pipeline,
:func:`explain.methods.compute_maps`). The family also keeps the gradient-free
methods' compiled helpers (:meth:`CamEngine.shared`). It is the only cache of
compiled functions, and it lives as long as its engines (the Explainer's): no
module-level store outlives them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from .errors import LayerError
from .model.graph import capture_output, run_intercepted
from .model.layers import LayerPath, output_layer
from .methods import CamMethod, GradCAM
from .methods.base import normalize_maps
from .preprocess import as_model_batch

#: Most images one compiled CAM call takes (larger batches run in chunks of this size):
#: bounds memory; above 4-8 images a call gains no throughput on a CPU (docs/serving.md).
CHUNK = 32


@dataclass
class CamResult:
    """Output of one batch.

    probs: float32 (B, K) class probabilities (after temperature scaling).
    logits: float32 (B, K) pre-softmax scores.
    maps: float32 (B, h, w) in [0, 1] at the target layer's resolution.
    empty: bool (B,) True where a map had no positive evidence (map is all zeros).
    classes: int32 (B,) the class each map explains.
    features: float32 (B, D) the head's input (the pooled features the classifier
        reads; the logits themselves for a head that is only an activation).
    """

    probs: np.ndarray
    logits: np.ndarray
    maps: np.ndarray
    empty: np.ndarray
    classes: np.ndarray
    features: np.ndarray | None = None


class CamEngine:
    """Compiled probabilities + CAM for one model, one target layer and one method.

    model: Functional or Sequential Keras model (never modified).
    target: the layer to explain (see :func:`explain.model.layers.find_target_layer`).
    input_shape: (h, w, C) of one model input.
    temperature: logits are divided by it before the softmax (calibration).
    """

    def __init__(
        self,
        model: keras.Model,
        target: LayerPath,
        input_shape: tuple[int, int, int],
        method: CamMethod | None = None,
        temperature: float = 1.0,
        *,
        _family: "_Family | None" = None,
    ):
        self.model = model
        self.target = target
        self.method = method or GradCAM()
        self.temperature = float(temperature)
        self.input_shape = tuple(input_shape)
        # Private: only for_method passes a family, so that a family only ever
        # holds engines of the same model, layer, input shape and temperature.
        self._family = _family if _family is not None else _Family()
        self._head = output_layer(model)
        self._activation = _head_activation(self._head.layer)
        signature = tf.TensorSpec((None,) + self.input_shape, tf.float32)
        self._explain_fn = tf.function(
            self._explain, input_signature=[signature, tf.TensorSpec((None,), tf.int32)]
        )
        self._explain_all_fn = tf.function(self._explain_all, input_signature=[signature])
        self._predict_fn = tf.function(self._predict, input_signature=[signature])
        self._predict_features_fn = tf.function(self._predict_features, input_signature=[signature])
        self._logits_fn = tf.function(lambda x: self._forward(x)[1], input_signature=[signature])
        dummy = np.zeros((1,) + self.input_shape, np.float32)
        out = self._explain_fn(dummy, np.array([-1], np.int32))  # trace now, not on the first request
        self.num_classes = int(out[0].shape[-1])
        self.map_shape = tuple(int(d) for d in out[2].shape[1:])
        self._verify_logits()
        self._family.engines.setdefault(type(self.method), self)

    def for_method(self, method: CamMethod) -> "CamEngine":
        """The engine of this model, layer, input shape and temperature for gradient ``method``.

        ``self`` when it already runs that method; otherwise the family's engine
        for it, built (and traced) on first use and reused afterwards. Safe to
        call from several threads: each engine is built once.
        """
        if not isinstance(method, CamMethod):
            raise TypeError(f"not a gradient CAM method: {method!r}")
        if type(self.method) is type(method):
            return self
        family = self._family
        with family.lock:
            engine = family.engines.get(type(method))
            if engine is None:
                engine = CamEngine(self.model, self.target, self.input_shape, method=method,
                                   temperature=self.temperature, _family=family)
            return engine

    def shared(self, key, build):
        """The family's value for ``key``, ``build()`` on first use: helpers compiled once per model,
        layer, input shape and temperature (the gradient-free methods' probe and mask builders).

        Thread-safe: a key is built once however many threads ask at the same time.
        ``build`` runs under the family's lock, so it must be cheap (create a
        ``tf.function``, do not trace it).
        """
        family = self._family
        with family.lock:
            if key not in family.helpers:
                family.helpers[key] = build()
            return family.helpers[key]

    def _verify_logits(self) -> None:
        """Fail at start-up if the captured logits do not reproduce the model's own output.

        The Dense head's pre-activation is recomputed from its kernel and bias;
        a head with extra behaviour (quantisation, a custom call) would make
        every map silently wrong, so compare once against ``model(x)``.
        """
        x = np.random.default_rng(0).uniform(0.0, 1.0, (2,) + self.input_shape).astype(np.float32)
        logits = self._logits_fn(x)
        if self._activation == "sigmoid":
            rebuilt = tf.sigmoid(logits)
        elif self._activation == "softmax":
            rebuilt = tf.nn.softmax(logits, axis=-1)
        else:
            rebuilt = logits
        expected = self.model(x, training=False)
        if not np.allclose(np.asarray(rebuilt), np.asarray(expected), atol=1e-4):
            raise LayerError(
                f"The logits captured before {self._head.name!r} do not reproduce the model's output; "
                "Grad-CAM on this head would be wrong. Supported heads: Dense with softmax/sigmoid/linear, "
                "or an Activation/Softmax layer."
            )

    # -- graph pieces -------------------------------------------------------
    def _forward(self, x):
        """x (B, h, w, C) -> (target activation (B, h', w', C'), logits (B, K))."""
        store = self._run(x)
        return store["acts"], store["logits"]

    def _run(self, x) -> dict:
        """x (B, h, w, C) -> {"acts": target activation, "logits": (B, K), "features": head input (B, D)}."""
        store = {}
        head = self._head.layer
        overrides = {id(self.target.layer): capture_output(store, "acts"), id(head): self._logit_capture(store)}
        run_intercepted(self.model, x, overrides)
        if "acts" not in store:
            raise LayerError(f"Layer {self.target} is not on the path from the input to the output.")
        return store

    def _logit_capture(self, store):
        head = self._head.layer

        def wrap(call):
            def wrapped(inputs, *args, **kwargs):
                # The head's input: the features the input check scores, from this same pass.
                store["features"] = tf.reshape(inputs, (tf.shape(inputs)[0], -1))
                if isinstance(head, keras.layers.Dense):
                    z = tf.matmul(inputs, head.kernel)
                    if head.bias is not None:
                        z = z + head.bias
                    store["logits"] = z
                    return head.activation(z) if head.activation is not None else z
                out = call(inputs, *args, **kwargs)
                store["logits"] = inputs if self._activation != "linear_output" else out
                return out

            return wrapped

        return wrap

    def _probs(self, logits):
        scaled = logits / self.temperature
        if self._activation == "sigmoid":
            return tf.sigmoid(scaled)
        return tf.nn.softmax(scaled, axis=-1)

    def _predict(self, x):
        return self._probs(self._logits_fn(x))

    def _predict_features(self, x):
        store = self._run(x)
        return self._probs(store["logits"]), store["features"]

    def _explain(self, x, class_idx):
        with tf.GradientTape() as tape:
            tape.watch(x)
            store = self._run(x)
            acts, logits = store["acts"], store["logits"]
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
            classes = tf.where(class_idx < 0, predicted, class_idx)
            # Sum over the batch: each logit depends only on its own sample's
            # activations, so this gives per-sample gradients in one backward pass.
            score = tf.reduce_sum(tf.gather(logits, classes, batch_dims=1))
        grads = tape.gradient(score, acts)
        maps, empty = normalize_maps(self.method.raw_map(acts, grads))
        return self._probs(logits), logits, maps, empty, classes, store["features"]

    def _explain_all(self, x):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            acts, logits = self._forward(x)
            scores = [tf.reduce_sum(logits[:, k]) for k in range(logits.shape[-1])]
        raws = [self.method.raw_map(acts, tape.gradient(s, acts)) for s in scores]
        del tape
        maps, empty = normalize_maps(tf.stack(raws, axis=1))
        return self._probs(logits), logits, maps, empty

    # -- public API ----------------------------------------------------------
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(B, h, w, C) float32 -> (B, K) probabilities, no heatmap."""
        return self._predict_fn(as_model_batch(batch, self.input_shape)).numpy()

    def predict_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, h, w, C) float32 -> (probabilities (B, K), head input features (B, D)), one forward pass."""
        probs, features = self._predict_features_fn(as_model_batch(batch, self.input_shape))
        return probs.numpy(), features.numpy()

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(B, h, w, C) float32 -> (B, K) pre-activation class scores (forward pass only)."""
        return self._logits_fn(as_model_batch(batch, self.input_shape)).numpy()

    @property
    def head_name(self) -> str:
        """Name of the model's output layer; its input is what :meth:`predict_features` returns."""
        return self._head.name

    @property
    def head_activation(self) -> str:
        """"softmax", "sigmoid" or "linear_output" (the model already outputs logits)."""
        return self._activation

    def explain(self, batch: np.ndarray, classes=None) -> CamResult:
        """(B, h, w, C) float32 -> :class:`CamResult`. ``classes``: int per sample, -1 = predicted."""
        batch = as_model_batch(batch, self.input_shape)
        if classes is None:
            classes = np.full((batch.shape[0],), -1, np.int32)
        classes = np.asarray(classes, np.int32).reshape(-1)
        if classes.shape[0] != batch.shape[0]:
            raise ValueError(f"{classes.shape[0]} class indices for {batch.shape[0]} images")
        if np.any(classes >= self.num_classes) or np.any(classes < -1):
            raise ValueError(f"class index out of range 0..{self.num_classes - 1}")
        # In chunks: the gradient pass holds every activation of the batch, so memory
        # grows with it; a chunk of CHUNK images keeps it bounded for any caller.
        parts = [self._explain_fn(batch[i:i + CHUNK], classes[i:i + CHUNK]) for i in range(0, len(batch), CHUNK)]
        if len(parts) == 1:
            return CamResult(*(t.numpy() for t in parts[0]))
        return CamResult(*(np.concatenate([p[k].numpy() for p in parts]) for k in range(len(parts[0]))))

    def explain_all(self, batch: np.ndarray):
        """(B, h, w, C) -> (probs (B, K), logits (B, K), maps (B, K, h', w'), empty (B, K))."""
        out = self._explain_all_fn(as_model_batch(batch, self.input_shape))
        return tuple(t.numpy() for t in out)


class _Family:
    """What one model, target layer, input shape and temperature share: an engine per method type,
    and the helpers of :meth:`CamEngine.shared` (a few per family: their keys are fixed by it)."""

    def __init__(self):
        # Reentrant: building an engine registers it in the family while the lock is held.
        self.lock = threading.RLock()
        self.engines: dict[type, CamEngine] = {}
        self.helpers: dict = {}


def _head_activation(layer) -> str:
    """How the model's last layer turns logits into its output.

    "softmax"/"sigmoid": the logits are the pre-activation (Dense with that
    activation, or an Activation/Softmax layer). "linear_output": the model
    already outputs logits.
    """
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    if name in ("softmax", "sigmoid"):
        return name
    if name == "linear":
        return "linear_output"
    if isinstance(layer, keras.layers.Activation) or (
        activation is not None and name not in ("linear", None)
    ):
        raise LayerError(
            f"The model's last layer {layer.name!r} applies {name!r}; expected softmax, sigmoid or "
            "linear logits. Grad-CAM needs the pre-activation class scores."
        )
    if activation is not None and not isinstance(layer, keras.layers.Dense):
        raise LayerError(f"Unsupported output layer {layer.name!r} ({type(layer).__name__}).")
    return "linear_output"
