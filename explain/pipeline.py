"""The whole path of one image: decode -> preprocess -> model -> CAM -> overlay.

:class:`Explainer` is built once per bundle (it traces the compiled engine)
and is safe to call from several threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bundle import Bundle
from .checks.input_check import load_input_check, no_check
from .checks.region import region_checks, region_sentence
from .io.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, decode_image
from .engine import CamEngine
from .model.layers import LayerPath, find_target_layer
from .methods import METHODS, compute_maps, get_method, is_gradient_free
from .methods.free import resolve_classes
from .overlay import blend, colorize, upsample
from .preprocess import prepare_pixels, preprocess
from .tta import smoothed_maps

DEFAULT_METHOD = "gradcam"


@dataclass
class Explanation:
    """Everything shown about one image.

    image: (H, W, 3) uint8 RGB original, as decoded.
    model_input: (h, w, C) float32, exactly what the model saw.
    probabilities: label -> probability (sums to 1 for softmax models).
    predicted / explained: label of the top class / of the class the map explains.
    cam: (h', w') float32 in [0, 1] at the target layer's resolution.
    heatmap: (H, W) float32 in [0, 1], ``cam`` upsampled to the original image.
    empty: True if the class had no positive evidence (the map is all zeros).
    tta: True if the map is the test-time-augmentation average (see explain.tta).
    input_check: is the image like the training slices? ``{"in_distribution": bool | None,
        "score", "threshold", "method"}`` (None values and a ``note`` for a bundle
        without a check; see explain.checks.input_check).
    region_check: does the decision need the map's top region? ``{"p_before", "p_after",
        "class_after", "p_after_random", "class_after_random", "removed_share"}``
        (see explain.checks.region); empty dict if the explainer was built without it.
    """

    image: np.ndarray
    model_input: np.ndarray
    probabilities: dict[str, float]
    predicted: str
    explained: str
    cam: np.ndarray
    heatmap: np.ndarray
    empty: bool
    layer: str
    method: str
    preprocessing: str
    checks: dict[str, bool] = field(default_factory=dict)
    tta: bool = False
    input_check: dict = field(default_factory=no_check)
    region_check: dict = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        """True if the input check says this image is unlike the training slices."""
        return self.input_check.get("in_distribution") is False

    def region_sentence(self) -> str:
        """The region check in one plain sentence ("" if it was not run)."""
        return region_sentence(self.region_check, self.explained, self.predicted) if self.region_check else ""

    def heatmap_rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 JET rendering of the heatmap."""
        return colorize(self.heatmap)

    def overlay(self, alpha: float = 0.4) -> np.ndarray:
        """(H, W, 3) uint8 image with the heatmap blended in at opacity ``alpha``."""
        return blend(self.image, self.heatmap, alpha)


class Front:
    """The caller's half of a backend (see explain.serving): class names, decoding and
    preprocessing within the size limits. Needs ``labels``, ``spec``, ``max_bytes`` and ``max_pixels``."""

    labels: list[str]
    spec: object
    max_bytes: int
    max_pixels: int

    def class_index(self, class_name: str | None) -> int:
        """Label -> output index; None or "" -> -1 (the predicted class)."""
        if not class_name:
            return -1
        if class_name not in self.labels:
            raise ValueError(f"Unknown class {class_name!r}; the model knows {', '.join(self.labels)}.")
        return self.labels.index(class_name)

    def decode(self, source) -> np.ndarray:
        """Any image source -> (H, W, 3) uint8 RGB original, within this explainer's size limits."""
        return decode_image(source, max_bytes=self.max_bytes, max_pixels=self.max_pixels)

    def load(self, source) -> tuple[np.ndarray, np.ndarray]:
        """Any image source -> (original (H, W, 3) uint8, model input (h, w, C) float32)."""
        image = self.decode(source)
        return image, preprocess(image, self.spec)


class Explainer(Front):
    """Bundle-bound pipeline. ``method``: a name from :data:`explain.methods.METHODS`."""

    def __init__(self, bundle: Bundle, method: str = DEFAULT_METHOD, *,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
                 score_cam_channels: int | None = None, region_check: bool = True):
        self.bundle = bundle
        self.spec = bundle.spec
        self.labels = list(bundle.labels)
        self.target: LayerPath = find_target_layer(bundle.model, bundle.target_layer)
        self.input_shape = (*self.spec.size, self.spec.channels)
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        self.default_method = method
        # Score-CAM costs one forward pass per channel (2048 for Xception); an
        # interactive caller can cap it to the most active channels.
        self.score_cam_channels = score_cam_channels
        # The input check's reference (None: the bundle has none, or one for other
        # weights) and the sentence that says which; the region check costs one
        # extra forward pass per batch and can be turned off (benchmarks).
        self.input_check, self.input_check_status = load_input_check(bundle)
        self.region_check = region_check
        # Traced at start-up, not on the first request. The other methods'
        # engines are its family (CamEngine.for_method): built on first use,
        # shared with compute_maps, never built twice.
        first = self._method_name(method)
        if is_gradient_free(first):
            first = DEFAULT_METHOD
        self._engine = CamEngine(self.bundle.model, self.target, self.input_shape,
                                 method=get_method(first), temperature=self.bundle.temperature)

    @staticmethod
    def _method_name(method: str) -> str:
        name = method.lower()
        if name not in METHODS:
            raise ValueError(f"Unknown CAM method {name!r}; available: {', '.join(METHODS)}")
        return name

    def engine(self, method: str | None = None) -> CamEngine:
        """The compiled engine for gradient ``method`` (built and traced on first use, then reused).

        Gradient-free methods run their own passes on top of the default
        gradient engine, which then only provides the probabilities.
        """
        name = self._method_name(method or self.default_method)
        if is_gradient_free(name):
            name = DEFAULT_METHOD
        return self._engine.for_method(get_method(name))

    def explain(self, source, class_name: str | None = None, *, method: str | None = None,
                tta: bool = False) -> Explanation:
        """Explain one image; ``class_name`` None explains the predicted class."""
        return self.explain_batch([source], [class_name], method=method, tta=tta)[0]

    def explain_batch(self, sources, class_names=None, *, method: str | None = None,
                      tta: bool = False) -> list[Explanation]:
        """Explain several images in one compiled call (same maps as one by one).

        tta: average the maps of flipped and brightness-shifted copies (six
        times the CAM cost); probabilities stay those of the image itself.
        """
        loaded = [self.load(s) for s in sources]
        names = list(class_names) if class_names is not None else [None] * len(loaded)
        name = self._method_name(method or self.default_method)
        engine = self.engine(name)
        batch = np.stack([x for _, x in loaded])
        requested = [self.class_index(n) for n in names]
        chosen = get_method(name) if is_gradient_free(name) else None
        if chosen is not None and hasattr(chosen, "max_channels") and self.score_cam_channels:
            chosen.max_channels = self.score_cam_channels
        if chosen is None and not tta:
            result = engine.explain(batch, requested)
            probs, maps, empty, classes = result.probs, result.maps, result.empty, result.classes
            features = result.features
        else:
            # The map comes from another pass (a gradient-free method, or the
            # TTA copies), so the engine's own Grad-CAM would be thrown away:
            # a forward pass gives the probabilities, the features and the classes to explain.
            probs, features = engine.predict_features(batch)
            classes = resolve_classes(requested, probs)
            if tta:
                maps, empty = smoothed_maps(
                    lambda b, c: compute_maps(engine, b, c, method=chosen),
                    [prepare_pixels(image, self.spec) for image, _ in loaded], self.spec, classes)
            else:
                maps, empty = compute_maps(engine, batch, classes, method=chosen)
        verdicts = (self.input_check.verdicts(features, [image for image, _ in loaded]) if self.input_check is not None
                    else [no_check(self.input_check_status) for _ in loaded])
        regions = (region_checks(engine.predict, batch, maps, classes, probs, empty, self.labels)
                   if self.region_check else [{} for _ in loaded])
        out = []
        for i, (image, x) in enumerate(loaded):
            heatmap = upsample(maps[i], image.shape[:2])
            out.append(Explanation(
                image=image, model_input=x,
                probabilities={label: float(p) for label, p in zip(self.labels, probs[i])},
                predicted=self.labels[int(np.argmax(probs[i]))],
                explained=self.labels[int(classes[i])],
                cam=maps[i], heatmap=heatmap, empty=bool(empty[i]),
                layer=self.target.name, method=name,
                preprocessing=self.spec.preprocessing, tta=tta,
                checks=self._checks(engine, x, probs[i], maps[i], bool(empty[i])),
                input_check=verdicts[i], region_check=regions[i],
            ))
        return out

    def _checks(self, engine, x, probs, cam, empty) -> dict[str, bool]:
        """Checks that can fail on a real input; each False makes the CLI exit 1.

        An empty map (no positive evidence for the class) is a supported
        outcome, flagged by ``Explanation.empty``, not a failed check. The
        model input's range is not checked: it is this code's own
        normalisation, so such a check could never fail; a constant input
        (a blank or saturated image) can, and means the model saw nothing.
        """
        checks = {
            "finite": bool(np.isfinite(probs).all() and np.isfinite(cam).all()),
            "input_has_variation": bool(float(x.max() - x.min()) > 1e-6),
            "heatmap_has_spatial_variation": bool(empty or float(cam.max() - cam.min()) > 1e-3),
        }
        if engine.head_activation == "softmax":
            # Sigmoid heads score each class on its own: their outputs need not sum to 1.
            checks["probabilities_sum_to_one"] = bool(abs(float(np.sum(probs)) - 1.0) < 1e-3)
        return checks
