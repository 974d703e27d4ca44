"""Run a Keras model in inference mode while intercepting chosen layers.

Grad-CAM needs two tensors the model does not return: the activation of an
inner layer (possibly inside a nested base model, as in transfer learning)
and the class logits before the final softmax. Rather than building a new
"gradient model" (which fails for nested models and would need the model's
output layer to be edited), we replay the model's own graph and wrap the two
layers of interest. The user's model is never modified.

Keras 3 keeps the replay loop in ``Functional._run_through_graph``; it is the
same loop ``Functional.call`` uses, so replaying through it gives exactly the
model's own computation.

This is the only module that touches Keras internals (``keras.src``,
``_run_through_graph``, ``_call_context_args``, ``_keras_history``); they are
why Keras is pinned exactly. :func:`check_keras_internals` says, naming the
installed Keras version, which of them changed; a test calls it.
"""

from __future__ import annotations

from typing import Callable

import inspect

import keras
from keras.src.models.functional import Functional

from ..errors import BundleError

LayerCall = Callable[..., object]


def as_functional(model: keras.Model) -> Functional:
    """The Functional graph behind ``model`` (a Sequential model wraps one)."""
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise BundleError(
                f"The Sequential model {model.name!r} has no defined input. Give its first "
                "layer an input, e.g. keras.Sequential([keras.Input((299, 299, 3)), ...]), "
                "or call it once on a batch, then save it again."
            )
        return graph
    if isinstance(model, Functional):
        return model
    raise BundleError(
        f"{model.name!r} is a subclassed Keras model; Grad-CAM needs a Functional or "
        "Sequential model whose layers can be inspected."
    )


def run_intercepted(model: keras.Model, x, overrides: dict[int, Callable[[LayerCall], LayerCall]]):
    """Call ``model(x, training=False)``, but route chosen layers through wrappers.

    overrides: ``id(layer) -> wrap``, where ``wrap(call)`` returns the callable
    used instead of ``call`` (the layer's own inference-mode call). Nested
    models are replayed recursively, so layers at any depth can be wrapped.
    """
    graph = as_functional(model)

    def operation_fn(op):
        if isinstance(op, keras.Model):
            call = lambda *args, **kwargs: run_intercepted(op, args[0], overrides)  # noqa: E731
        else:
            call = _inference_call(op)
        wrap = overrides.get(id(op))
        return wrap(call) if wrap is not None else call

    outputs = graph._run_through_graph(x, operation_fn=operation_fn)
    return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs


def producing_operation(tensor):
    """The layer (or nested model) whose call produced the symbolic ``tensor``."""
    return tensor._keras_history.operation


def check_keras_internals() -> None:
    """Raise RuntimeError, naming the Keras version, if an internal this module uses is gone."""
    problems = []
    run = getattr(Functional, "_run_through_graph", None)
    if run is None or "operation_fn" not in inspect.signature(run).parameters:
        problems.append("Functional._run_through_graph(inputs, operation_fn=...)")
    inputs = keras.Input((4,))
    dense = keras.layers.Dropout(0.5)
    out = dense(inputs)
    if "training" not in getattr(dense, "_call_context_args", {}):
        problems.append("Layer._call_context_args holding 'training'")
    history = getattr(out, "_keras_history", None)
    if getattr(history, "operation", None) is not dense:
        problems.append("KerasTensor._keras_history.operation")
    if problems:
        raise RuntimeError(
            f"Keras {keras.__version__} changed internals that explain/model/graph.py relies on: "
            + "; ".join(problems) + ". The project is tested with the Keras pinned in requirements.txt."
        )


def _inference_call(op) -> LayerCall:
    # Mirrors keras' own operation_fn: pass training=False to layers that take it,
    # so BatchNorm uses moving statistics and Dropout is off.
    takes_training = "training" in getattr(op, "_call_context_args", {})

    def call(*args, **kwargs):
        if takes_training:
            kwargs["training"] = False
        return op(*args, **kwargs)

    return call


def capture_output(store: dict, key: str) -> Callable[[LayerCall], LayerCall]:
    """An override for :func:`run_intercepted` that also stores the layer's output in ``store[key]``."""

    def wrap(call: LayerCall) -> LayerCall:
        def wrapped(*args, **kwargs):
            out = call(*args, **kwargs)
            store[key] = out
            return out

        return wrapped

    return wrap
