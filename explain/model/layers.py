"""Pick the layer Grad-CAM reads, and the layer whose pre-activation is the logit.

Layers are addressed by *paths*: the tuple of layers from the top model down
to the layer, so ``(base_model, block14_sepconv2_act)`` for a layer inside a
nested transfer-learning base. A path prints as ``"xception/block14_sepconv2_act"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from ..errors import LayerError

#: Xception's last spatial layers, best first: the ReLU after the last
#: separable conv gives the sharpest class-discriminative map.
XCEPTION_LAYERS = (
    "block14_sepconv2_act",
    "block14_sepconv2",
    "block14_sepconv1_act",
    "block13_sepconv2_act",
)


@dataclass(frozen=True)
class LayerPath:
    """A layer and the chain of nested models that holds it."""

    layers: tuple

    @property
    def layer(self) -> keras.Layer:
        return self.layers[-1]

    @property
    def name(self) -> str:
        return "/".join(layer.name for layer in self.layers)

    def __str__(self) -> str:
        return self.name


def walk(model: keras.Model, prefix: tuple = ()):
    """Yield a :class:`LayerPath` for every layer, nested models expanded in place."""
    for layer in model.layers:
        path = prefix + (layer,)
        if isinstance(layer, keras.Model):
            yield from walk(layer, path)
        yield LayerPath(path)


def spatial_candidates(model: keras.Model) -> list[LayerPath]:
    """Layers whose output is (batch, H, W, C) with H > 1 and W > 1, in graph order."""
    found = []
    for path in walk(model):
        layer = path.layer
        if isinstance(layer, (keras.layers.InputLayer, keras.Model)):
            continue
        shape = output_shape(layer)
        if shape is not None and len(shape) == 4 and _above_one(shape[1]) and _above_one(shape[2]):
            found.append(path)
    return found


def find_target_layer(model: keras.Model, name: str | None = None) -> LayerPath:
    """The Grad-CAM layer: ``name`` if given, else a known Xception layer, else the last spatial one.

    ``name`` may be a bare layer name (searched at every depth) or a path such
    as ``"xception/block14_sepconv2_act"``. Raises :class:`LayerError` listing
    the candidates when nothing fits.
    """
    candidates = spatial_candidates(model)
    if not candidates:
        raise LayerError(
            f"Model {model.name!r} has no layer with a spatial (batch, H, W, C) output larger "
            "than 1x1, so there is nothing Grad-CAM can map."
        )
    if name and name != "auto":
        return _by_name(model, name, candidates)
    for preferred in XCEPTION_LAYERS:
        matches = [p for p in candidates if p.layer.name == preferred]
        if matches:
            return matches[-1]
    return candidates[-1]


def _by_name(model, name: str, candidates: list[LayerPath]) -> LayerPath:
    every = list(walk(model))
    matches = [p for p in every if p.name == name or p.layer.name == name]
    listing = ", ".join(p.name for p in candidates[-8:])
    if not matches:
        raise LayerError(
            f"No layer named {name!r} in model {model.name!r}. "
            f"Spatial layers that can be used (last 8): {listing}"
        )
    if len(matches) > 1:
        raise LayerError(
            f"Layer name {name!r} is ambiguous: {', '.join(p.name for p in matches)}. "
            "Give the full path."
        )
    if matches[0] not in candidates:
        shape = output_shape(matches[0].layer)
        raise LayerError(
            f"Layer {name!r} has output shape {shape}; Grad-CAM needs a (batch, H, W, C) "
            f"output with H, W > 1. Candidates (last 8): {listing}"
        )
    return matches[0]


def output_layer(model: keras.Model) -> LayerPath:
    """The layer that produces the model's output, following nested models."""
    from .graph import as_functional, producing_operation

    graph = as_functional(model)
    if len(graph.outputs) != 1:
        raise LayerError(f"Model {model.name!r} has {len(graph.outputs)} outputs; expected one.")
    layer = producing_operation(graph.outputs[0])
    if isinstance(layer, keras.Model):
        return LayerPath((layer,) + output_layer(layer).layers)
    return LayerPath((layer,))


def output_shape(layer) -> tuple | None:
    """The layer's symbolic output shape, None where it has no single defined output."""
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _above_one(dim) -> bool:
    return dim is None or dim > 1
