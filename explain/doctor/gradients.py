"""Gradients: empty maps, saturated softmax, and what a tutorial-style Grad-CAM would show.

Tutorial Grad-CAMs often differentiate the model's *softmax output*. Its
gradient is p (1 - p) times smaller than the logit's for the top class: on a
confident image (p = 0.9999) it is almost nothing, and the map is empty, or
built from rounding noise, exactly where the model is most sure. This project
differentiates the logit; the check shows the difference on the user's own
images.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..metrics import sanity
from ..engine import CHUNK, CamEngine
from ..model.graph import capture_output, run_intercepted
from ..methods import GradCAM
from ..methods.base import EMPTY_EPS, normalize_maps
from .findings import OK, WARNING, Finding
from .settings import SATURATION

#: A share of empty logit maps above this is a WARNING.
EMPTY_WARNING = 0.2


def softmax_gradient_maps(engine: CamEngine, x: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM from the gradient of the model's *output* (the tutorial way), for comparison only.

    x: float32 (N, h, w, C); classes: int (N,). Returns (raw maps float32
    (N, h', w') before ReLU, normalised maps float32 (N, h', w') in [0, 1]).
    """
    store: dict = {}
    inputs = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        out = run_intercepted(engine.model, inputs, {id(engine.target.layer): capture_output(store, "acts")})
        score = tf.reduce_sum(tf.gather(out, tf.constant(classes, tf.int32), batch_dims=1))
    grads = tape.gradient(score, store["acts"])
    raw = GradCAM().raw_map(store["acts"], grads)
    maps, _ = normalize_maps(raw)
    return raw.numpy(), maps.numpy()


def check_gradients(engine: CamEngine, x: np.ndarray, saturated_given: float | None = None,
                    given_name: str | None = None) -> tuple[dict, Finding]:
    """x: float32 (N, h, w, C) at the recommended setting; ``saturated_given``: the saturated share at the
    claimed setting when it differs (a wrong normalisation often saturates everything)."""
    result = engine.explain(x)
    # Tutorials use the model's own output, so saturation is judged without temperature scaling.
    # In chunks of the engine's size, as engine.explain runs: memory stays bounded on a large sample.
    top = np.concatenate([np.max(np.asarray(engine.model(x[i:i + CHUNK], training=False), np.float64), axis=1)
                          for i in range(0, len(x), CHUNK)])
    saturated = np.flatnonzero(1.0 - top < SATURATION)
    info = {"empty_share": float(np.mean(result.empty)), "saturated_share": float(len(saturated) / len(x)),
            "saturated": int(len(saturated)), "n": int(len(x))}
    text = (f"{info['empty_share']:.0%} of the logit-gradient maps are empty; {len(saturated)} of {len(x)} images "
            f"have a saturated softmax (top probability above {1 - SATURATION})")
    if len(saturated):
        parts = [softmax_gradient_maps(engine, x[saturated[i:i + CHUNK]], result.classes[saturated[i:i + CHUNK]])
                 for i in range(0, len(saturated), CHUNK)]
        raw, maps = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        peak = np.maximum(raw, 0.0).reshape(len(saturated), -1).max(axis=1)
        empty = peak <= EMPTY_EPS
        rho = [sanity.spearman(a, b) for a, b, e in zip(maps, result.maps[saturated], empty) if not e]
        info["softmax_gradient"] = {
            "empty": int(empty.sum()),
            "median_gradient_factor": float(np.median(top[saturated] * (1.0 - top[saturated]))),
            "spearman_with_logit_map": float(np.nanmean(rho)) if rho and not np.all(np.isnan(rho)) else None}
        sg = info["softmax_gradient"]
        text += (f"; on them a softmax-gradient Grad-CAM (the tutorial way) gives {sg['empty']} empty maps and "
                 f"gradients scaled by about {sg['median_gradient_factor']:.0e}")
        if sg["spearman_with_logit_map"] is not None:
            text += f" (Spearman {sg['spearman_with_logit_map']:.2f} with this project's logit map)"
    if saturated_given is not None and given_name:
        info["saturated_share_given_setting"] = saturated_given
        if saturated_given > info["saturated_share"]:
            # A wrong normalisation often drives the logits far apart: a symptom worth naming.
            text += f"; with the given {given_name} {saturated_given:.0%} are saturated"
    severity = WARNING if info["empty_share"] > EMPTY_WARNING else OK
    return info, Finding(severity, "gradients", text + ".")
