"""CAM methods, one file each.

Gradient methods (:class:`CamMethod` subclasses) only say how a map is made
from the activations and gradients of the shared compiled pass (see
:mod:`explain.methods.base`) and run inside :class:`explain.engine.CamEngine`.
Gradient-free methods (:class:`GradientFreeMethod` subclasses, see
:mod:`explain.methods.free`) read the engine's model and target layer and run
their own forward passes. :func:`compute_maps` runs either kind with the same
call shape.

This package never imports :mod:`explain.engine` (which is built on it): an
engine is only used through its methods and attributes, and another gradient
method's engine is asked of the engine itself (:meth:`CamEngine.for_method`,
which builds and caches it).
"""

from __future__ import annotations

import numpy as np

from .base import CamMethod
from .eigencam import EigenCAM
from .free import GradientFreeMethod
from .gradcam import GradCAM
from .gradcampp import GradCAMPlusPlus
from .hirescam import HiResCAM
from .layercam import LayerCAM
from .scorecam import ScoreCAM
from .xgradcam import XGradCAM

#: Every method by name, in menu order. Gradient-free classes are not CamMethods:
#: check :func:`is_gradient_free` before giving one to CamEngine.
METHODS: dict[str, type] = {
    cls.name: cls
    for cls in (GradCAM, GradCAMPlusPlus, HiResCAM, XGradCAM, LayerCAM, ScoreCAM, EigenCAM)
}
GRADIENT_METHODS: tuple[str, ...] = tuple(n for n, c in METHODS.items() if issubclass(c, CamMethod))
GRADIENT_FREE_METHODS: tuple[str, ...] = tuple(
    n for n, c in METHODS.items() if issubclass(c, GradientFreeMethod)
)


def get_method(name: str):
    """Instantiate a method by its name (e.g. ``"gradcam"``, ``"scorecam"``)."""
    try:
        return METHODS[name.lower()]()
    except KeyError:
        raise ValueError(f"Unknown CAM method {name!r}; available: {', '.join(METHODS)}") from None


def is_gradient_free(method) -> bool:
    """True for a gradient-free method (instance, class or name)."""
    if isinstance(method, str):
        method = METHODS.get(method.lower())
        if method is None:
            raise ValueError(f"Unknown CAM method; available: {', '.join(METHODS)}")
    cls = method if isinstance(method, type) else type(method)
    return issubclass(cls, GradientFreeMethod)


def compute_maps(engine, batch, classes=None, method=None) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps of any method, one call shape for all.

    engine: a built :class:`explain.engine.CamEngine` (its model, target layer,
        input shape and temperature are used).
    batch: float32 (B, h, w, C) model inputs (preprocessed), or one (h, w, C) image.
    classes: None (predicted class) or int per sample, -1 meaning predicted.
    method: None (the engine's own method), a name, or a method instance.
        A gradient method other than the engine's runs on the engine's
        sibling for that method (:meth:`CamEngine.for_method`: built once,
        then shared).

    Returns (maps float32 (B, h', w') in [0, 1] at the target layer's
    resolution, empty bool (B,) True where a map had no positive evidence and
    is all zeros).
    """
    if method is None:
        method = engine.method
    elif isinstance(method, str):
        method = get_method(method)
    if isinstance(method, GradientFreeMethod):
        return method.compute(engine, batch, classes)
    if not isinstance(method, CamMethod):
        raise TypeError(f"not a CAM method: {method!r}")
    result = engine.for_method(method).explain(batch, classes)
    return result.maps.astype(np.float32), result.empty.astype(bool)


__all__ = [
    "CamMethod",
    "GradientFreeMethod",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "XGradCAM",
    "LayerCAM",
    "ScoreCAM",
    "EigenCAM",
    "METHODS",
    "GRADIENT_METHODS",
    "GRADIENT_FREE_METHODS",
    "get_method",
    "is_gradient_free",
    "compute_maps",
]
