"""The Grad-CAM layer: list the candidates, measure a few, recommend one, say why a claim fails.

Measured per layer, on the sample at the recommended setting, with maps of
the predicted class:

* ``randomisation``: mean Spearman correlation between the map and the map
  after the output block is re-initialised (Adebayo et al. 2018); a map that
  shows what the classifier learned must change: pass below
  :data:`explain.metrics.sanity.SANITY_PASS_BELOW`.
* ``class_change``: mean Spearman correlation between the maps of the top two
  classes; near 1 means the layer draws the same map whatever the class.
* ``head_energy``: share of the map's mass inside the head mask, in [0, 1].
* ``deletion_auc`` against ``random_deletion_auc``: deletion AUC (lower is
  better) of the map and of a random map of the same resolution (a finer
  random map deletes faster, so each layer gets its own baseline).
* ``empty_share``: share of maps with no positive evidence.

All on :data:`LAYER_IMAGES` images spread over the sample (the deletion
curves on :data:`DELETION_IMAGES` of them), which keeps the check to seconds.
"""

from __future__ import annotations

from contextlib import contextmanager

import keras
import numpy as np

from ..metrics import faithfulness, plausibility, sanity
from ..engine import CamEngine
from ..errors import LayerError
from ..model.layers import LayerPath, find_target_layer, spatial_candidates, walk
from ..model.layers import output_shape as _shape
from .findings import ERROR, OK, WARNING, Finding

#: Images every layer is measured on (spread over the sample), and the images
#: and steps of the deletion curves among them: the costly part, kept small.
LAYER_IMAGES = 16
DELETION_IMAGES, DELETION_STEPS = 8, 8
#: Other layers measured besides the claimed and the automatic one.
EXTRA_LAYERS = 2
#: Maps of the top two classes correlating above this are class-blind.
CLASS_BLIND = 0.9
#: The claimed layer is kept unless its deletion AUC is worse than the automatic one's by more.
DELETION_MARGIN = 0.05
_FLATTENING = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D, keras.layers.Flatten,
               keras.layers.GlobalAveragePooling1D, keras.layers.GlobalMaxPooling1D)


def candidates(model) -> list[dict]:
    """Every spatial layer (nested models included): [{"name", "map_size": [h, w], "channels"}] in graph order."""
    return [{"name": p.name, "map_size": list(_shape(p.layer)[1:3]), "channels": _shape(p.layer)[3]}
            for p in spatial_candidates(model)]


def rejection(model, name: str) -> str | None:
    """One sentence on why layer ``name`` cannot be a Grad-CAM layer, or None when it can."""
    try:
        find_target_layer(model, name)
        return None
    except LayerError as exc:
        matches = [p for p in walk(model) if p.name == name or p.layer.name == name]
        if len(matches) != 1:
            return str(exc)
        layer, shape = matches[0].layer, _shape(matches[0].layer)
        if shape is not None and len(shape) == 4:
            return f"{name}'s map is {shape[1]}x{shape[2]}, too small to show where anything is."
        order = [p.layer for p in walk(model)]
        flat = [lay for lay in order[: order.index(layer) + 1] if isinstance(lay, _FLATTENING)]
        where = ""
        if flat and flat[0] is layer:
            where = f" ({name} is the {type(layer).__name__} layer that removes them)"
        elif flat:
            where = f" (it comes after {flat[0].name}, which pools the map away)"
        return (f"{name} has no spatial dimensions{where}: its output is {shape}, Grad-CAM needs "
                f"(batch, H, W, C) with H, W > 1.")


def layers_to_measure(model, chosen: LayerPath | None, auto: LayerPath, extra: int = EXTRA_LAYERS) -> list[LayerPath]:
    """The claimed layer, the automatic one and up to ``extra`` others, in graph order.

    The others: the end of the block before the automatic layer's at the same
    map size (a later block is usually better, this shows by how much), and
    the last layer before the map size last changed (an earlier stage).
    """
    paths = spatial_candidates(model)
    names = [p.name for p in paths]
    sizes = [_shape(p.layer)[1:3] for p in paths]
    at = names.index(auto.name)
    others = []
    start = at
    while start > 0 and sizes[start - 1] == sizes[at]:
        start -= 1
    block = auto.layer.name.split("_")[0]
    same_size = [i for i in range(start, at) if paths[i].layer.name.split("_")[0] != block]
    if same_size:
        others.append(paths[same_size[-1]])
    if start > 0:
        others.append(paths[start - 1])
    chosen_list = [chosen] if chosen is not None else []
    picked = {p.name: p for p in [*chosen_list, auto, *others[:extra]]}
    return sorted(picked.values(), key=lambda p: names.index(p.name))


@contextmanager
def randomised_head(model):
    """Temporarily give the output block of ``model`` re-initialised weights (restored on exit).

    Compiled engines read the variables at call time, so every engine built on
    ``model`` sees the randomised head without being traced again. The
    re-initialised values come from :func:`explain.metrics.sanity.randomize_layers`.
    """
    steps = sanity.cascade_steps(model)
    if not steps:
        yield []
        return
    group, names = steps[0]
    clone = sanity.randomize_layers(model, names, seed=1)
    originals = {p.name: p.layer for p in walk(model)}
    replaced = {p.name: p.layer for p in walk(clone)}
    saved = {name: originals[name].get_weights() for name in names}
    try:
        for name in names:
            originals[name].set_weights(replaced[name].get_weights())
        yield names
    finally:
        for name in names:
            originals[name].set_weights(saved[name])


def _mean_rho(a, b) -> float:
    rho = [sanity.spearman(x, y) for x, y in zip(a, b)]
    return float(np.nanmean(rho)) if not np.all(np.isnan(rho)) else float("nan")


def _spread_index(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int))


def measure(engines: dict[str, CamEngine], model, x: np.ndarray, on_layer=None) -> tuple[dict, list[str]]:
    """Measure every engine's layer on up to :data:`LAYER_IMAGES` of ``x`` (float32 (N, h, w, C) model inputs).

    Returns ({layer name: scores}, names of the re-initialised layers).
    """
    x = x[_spread_index(len(x), LAYER_IMAGES)]
    subset = _spread_index(len(x), DELETION_IMAGES)
    masks = [plausibility.head_mask(image) for image in x]
    # Every engine wraps the same model, so one compiled predict serves all deletion curves.
    predict = next(iter(engines.values())).predict
    base, results = {}, {}
    for name, engine in engines.items():
        result = engine.explain(x)
        order = np.argsort(-result.probs, axis=1)
        second = engine.explain(x, order[:, 1].astype(np.int32)) if result.probs.shape[1] > 1 else result
        shape = engine.map_shape
        if shape not in base:
            base[shape] = float(np.mean([faithfulness.deletion_auc(x[i], plausibility.random_map(shape, seed=int(i)), predict,
                                                        int(result.classes[i]), steps=DELETION_STEPS)
                                         for i in subset]))
        results[name] = {
            "map_size": list(shape),
            "class_change": _mean_rho(result.maps, second.maps),
            "head_energy": float(np.mean([plausibility.energy_inside(m, k) for m, k in zip(result.maps, masks)])),
            "deletion_auc": float(np.mean([faithfulness.deletion_auc(x[i], result.maps[i], predict,
                                                          int(result.classes[i]), steps=DELETION_STEPS)
                                           for i in subset])),
            "random_deletion_auc": base[shape],
            "empty_share": float(np.mean(result.empty)),
            "_maps": result.maps, "_classes": result.classes,
        }
    with randomised_head(model) as reset:
        for name, engine in engines.items():
            randomised = engine.explain(x, results[name]["_classes"])
            results[name]["randomisation"] = _mean_rho(results[name]["_maps"], randomised.maps)
            if on_layer is not None:
                on_layer()
    for scores in results.values():
        scores.pop("_maps"), scores.pop("_classes")
        scores["passes"] = bool(_problem(scores, "") is None)
    return results, reset


def _problem(s: dict, name: str) -> str | None:
    """The first failed measurement of a layer, as one sentence, or None."""
    if not s["randomisation"] < sanity.SANITY_PASS_BELOW:
        return (f"{name} maps barely change when the output layer is re-initialised (Spearman "
                f"{s['randomisation']:.2f}; a map of what the classifier learned falls below "
                f"{sanity.SANITY_PASS_BELOW}).")
    if s["class_change"] > CLASS_BLIND:
        return (f"{name} maps barely change when the class changes (Spearman {s['class_change']:.2f} "
                "between the maps of the top two classes).")
    if not s["deletion_auc"] < s["random_deletion_auc"]:
        return (f"deleting the pixels {name} marks lowers the score no faster than deleting random ones "
                f"(deletion AUC {s['deletion_auc']:.3f} vs {s['random_deletion_auc']:.3f}).")
    return None


def _summary(name: str, s: dict) -> str:
    return (f"{name} ({s['map_size'][0]}x{s['map_size'][1]}): randomisation {s['randomisation']:.2f}, "
            f"deletion AUC {s['deletion_auc']:.3f} vs random {s['random_deletion_auc']:.3f}, "
            f"head energy {s['head_energy']:.2f}")


def plan_layers(model, claimed: str | None):
    """(claimed name or None, automatic LayerPath, claimed LayerPath or None, why the claim cannot be used
    or None, the layers to measure). Raises LayerError when the model has no spatial layer at all."""
    claimed = None if claimed in (None, "", "auto") else claimed
    auto = find_target_layer(model, "auto")
    reason = rejection(model, claimed) if claimed else None
    chosen = find_target_layer(model, claimed) if claimed and reason is None else None
    return claimed, auto, chosen, reason, layers_to_measure(model, chosen, auto)


def check_layer(model, claimed: str | None, x: np.ndarray, temperature: float = 1.0, on_layer=None):
    """The layer check. x: float32 (N, h, w, C) inputs at the recommended setting.

    Returns (recommended layer name, JSON-ready info, Finding, CamEngine of the recommended layer).
    """
    input_shape = tuple(x.shape[1:])
    claimed, auto, chosen, reason, plan = plan_layers(model, claimed)
    engines = {p.name: CamEngine(model, p, input_shape, temperature=temperature) for p in plan}
    scores, reset = measure(engines, model, x, on_layer)
    passing = [name for name, s in scores.items() if s["passes"]]
    if chosen is not None and scores[chosen.name]["passes"] and not (
            scores[auto.name]["passes"]
            and scores[chosen.name]["deletion_auc"] > scores[auto.name]["deletion_auc"] + DELETION_MARGIN):
        recommended = chosen.name
    elif scores[auto.name]["passes"] or not passing:
        recommended = auto.name
    else:
        recommended = min(passing, key=lambda n: scores[n]["deletion_auc"])
    info = {"given": claimed, "automatic": auto.name, "recommended": recommended,
            "candidates": candidates(model), "measured": scores, "reinitialised_for_randomisation": reset,
            "measured_on": {"images": int(min(len(x), LAYER_IMAGES)),
                            "deletion_images": int(min(len(x), LAYER_IMAGES, DELETION_IMAGES)),
                            "deletion_steps": DELETION_STEPS}}
    best = _summary(recommended, scores[recommended])
    count = f"{len(info['candidates'])} spatial layers"
    if reason is not None:
        finding = Finding(ERROR, "layer", f"{reason} Use --layer {recommended}: {best}.")
    elif chosen is not None and recommended != chosen.name:
        s = scores[chosen.name]
        why = _problem(s, chosen.name) or (
            f"{chosen.name} is less faithful than {recommended}: deletion AUC {s['deletion_auc']:.3f} vs "
            f"{scores[recommended]['deletion_auc']:.3f} (lower is better).")
        severity = ERROR if not s["randomisation"] < sanity.SANITY_PASS_BELOW else WARNING
        finding = Finding(severity, "layer", f"{why} Use --layer {recommended}: {best}.")
    elif not scores[recommended]["passes"]:
        finding = Finding(WARNING, "layer", f"no measured layer passes: {_problem(scores[recommended], recommended)}"
                                            f" {best}; {count}.")
    elif recommended != auto.name and chosen is None:
        finding = Finding(WARNING, "layer", f"the automatic layer fails: {_problem(scores[auto.name], auto.name)} "
                                            f"Use --layer {recommended}: {best}.")
    else:
        finding = Finding(OK, "layer", f"{best}; {count}.")
    return recommended, info, finding, engines[recommended]
