"""The model-randomisation sanity check (Adebayo et al., 2018).

A map that stays the same when the model's weights are re-initialised, layer
by layer from the top (:func:`cascade_steps`, :func:`randomize_layers`),
does not explain the trained model: :func:`spearman` between the maps of the
trained model and of each randomised clone must fall (:func:`sanity_passes`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import spearmanr

def spearman(a, b) -> float:
    """Spearman rank correlation in [-1, 1] between two maps of the same shape.

    Ties get average ranks (:func:`scipy.stats.spearmanr`). Returns NaN when
    either map is constant (the correlation is undefined; aggregate with
    ``np.nanmean``).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    a, b = a.reshape(-1), b.reshape(-1)
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")  # spearmanr would warn and return NaN
    return float(np.clip(spearmanr(a, b).statistic, -1.0, 1.0))


SANITY_PASS_BELOW = 0.5


def cascade_steps(model, max_steps: int = 8) -> list[tuple[str, list[str]]]:
    """Cumulative layer groups for cascading randomisation, output first.

    Weighted layers (nested models expanded) are taken from the output
    backwards and grouped into runs that share the name prefix before the
    first ``_`` (``block14_sepconv2``, ``block14_sepconv1_bn`` -> ``block14``),
    so a step resets one block as Adebayo et al. did. With more than
    ``max_steps`` groups, evenly spaced cuts are kept; the first step is
    always the output layer's group and the last always resets every layer.

    Returns [(group name, every layer path reset up to and including it)].
    """
    import keras

    from ..model.layers import walk

    weighted = [p for p in walk(model) if p.layer.weights and not isinstance(p.layer, keras.Model)]
    groups: list[tuple[str, list[str]]] = []
    for path in reversed(weighted):
        prefix = path.layer.name.split("_")[0]
        if groups and groups[-1][0] == prefix:
            groups[-1][1].append(path.name)
        else:
            groups.append((prefix, [path.name]))
    if not groups:
        return []
    if len(groups) > max_steps >= 2:
        keep = sorted({round(i * (len(groups) - 1) / (max_steps - 1)) for i in range(max_steps)})
    else:
        keep = range(len(groups))
    steps, reset = [], []
    for i, (name, layers) in enumerate(groups):
        reset = reset + layers
        if i in keep:
            steps.append((name, list(reset)))
    return steps


def sanity_passes(correlations: Sequence[float], below: float = SANITY_PASS_BELOW) -> bool:
    """Cascading-randomisation verdict for one method.

    correlations: mean Spearman(trained map, randomised map) per cascade step,
    output layer first, the whole network last. The original-vs-original
    value is 1. A method passes when both the first and the last step keep
    less than ``below`` of that rank agreement: re-initialising the output
    layer alone must change the map (otherwise it does not depend on the class
    weights, and cannot explain a class; the doctor's layer check uses the same
    step), and so must randomising the whole network (Guided Backprop, the
    method Adebayo et al. caught, stays near 1 all the way down).
    """
    values = [float(v) for v in correlations]
    if not values or any(not np.isfinite(v) for v in values):
        return False
    return values[0] < below and values[-1] < below


def randomize_layers(model, layer_names: Sequence[str], seed: int = 0):
    """A clone of ``model`` with the weights of ``layer_names`` re-initialised.

    For the cascading randomisation test, call it with the top k layer names
    for k = 1, 2, ...: a faithful method's maps must change (low
    :func:`spearman` with the trained model's maps) as more layers are reset.

    model: a Functional or Sequential Keras model; it is never modified: the
        clone is built with ``keras.models.clone_model`` (nested models are
        rebuilt too, so no variable is shared with the original) and gets a
        copy of the weights before the named layers are reset.
    layer_names: bare layer names (found at any depth, must be unique) or
        paths such as ``"xception/block14_sepconv2"``.
    seed: makes the re-initialisation reproducible.

    Every variable of a named layer is redrawn from the layer's own
    initializer for it (``kernel_initializer`` for ``kernel``,
    ``depthwise_initializer`` for ``depthwise_kernel``, ...), so biases and
    BatchNorm statistics go back to their defaults; a variable with no
    matching initializer gets Glorot-uniform (2-D and up) or zeros. Layers
    without weights are left as they are.
    """
    import keras

    from ..model.layers import walk

    # recursive=True: nested models must be rebuilt, not reused, or resetting a
    # layer of a transfer-learning base would reset the original's too.
    clone = keras.models.clone_model(model, recursive=True)
    clone.set_weights(model.get_weights())
    paths = list(walk(clone))
    for i, name in enumerate(layer_names):
        matches = [p for p in paths if p.name == name or p.layer.name == name]
        if not matches:
            raise ValueError(f"No layer named {name!r} in model {model.name!r}")
        if len(matches) > 1:
            raise ValueError(f"Layer name {name!r} is ambiguous: {', '.join(p.name for p in matches)}")
        layer = matches[0].layer
        for j, variable in enumerate(layer.weights):
            init = _initializer_for(layer, variable, seed=seed * 100003 + i * 1009 + j)
            variable.assign(init(tuple(variable.shape), dtype=variable.dtype))
    return clone


def _initializer_for(layer, variable, seed: int):
    import keras

    short = variable.name.split("/")[-1].split(":")[0]
    candidates = [f"{short}_initializer"]
    if short.endswith("_kernel"):
        # SeparableConv2D: depthwise_kernel -> depthwise_initializer.
        candidates.append(short[: -len("_kernel")] + "_initializer")
    init = None
    for attr in candidates:
        if getattr(layer, attr, None) is not None:
            init = keras.initializers.get(getattr(layer, attr))
            break
    if init is None:
        init = keras.initializers.GlorotUniform() if len(variable.shape) >= 2 else keras.initializers.Zeros()
    config = init.get_config()
    if "seed" in config:
        # A fresh seeded copy: the layer's own initializer object may be
        # unseeded (different draws each run) or shared between variables.
        config["seed"] = seed
        init = init.__class__.from_config(config)
    return init
