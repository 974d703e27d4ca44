"""What the user says about their model: load it, and keep each setting as a claim to check.

A bundle folder claims everything in its ``bundle.json``; options given on
the command line override it. A bare ``.keras``/``.h5`` file claims only what
was given: every setting left out is ``None`` here, and the doctor finds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..bundle import image_classifier_shapes, load_model_file, locate


@dataclass
class Claims:
    """The model and the settings claimed for it (None: not claimed).

    model: the loaded keras.Model (never modified).
    model_file: the .keras/.h5 file it was loaded from.
    labels: class names in output order, or None.
    preprocessing / color_mode: names from explain.preprocess, or None.
    layer: Grad-CAM layer name or path; None or "auto" for the automatic choice.
    input_size: (h, w) the model takes (from the model, else the claim).
    channels: 1 or 3, the model's input channels.
    num_classes: output units.
    temperature: softmax temperature of the bundle (1.0 for a bare file).
    problems: (check, message) for claims that cannot be right whatever the data says.
    """

    model: object
    model_file: Path
    source: Path
    is_bundle: bool
    labels: list[str] | None
    preprocessing: str | None
    color_mode: str | None
    layer: str | None
    input_size: tuple[int, int] | None
    channels: int
    num_classes: int
    temperature: float = 1.0
    metadata: dict = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)


def load_claims(source, *, labels=None, preprocessing=None, color_mode=None, layer=None,
                input_size=None) -> Claims:
    """Load ``source`` (bundle folder or .keras/.h5 file) and collect the claims; options override the bundle.

    Raises :class:`explain.errors.BundleError` when there is no model to load
    or it is not a single-input image classifier (nothing to diagnose then): the
    checks of :func:`explain.bundle.load_bundle` itself (:func:`~explain.bundle.locate`,
    :func:`~explain.bundle.image_classifier_shapes`). What the bundle refuses
    but the doctor reports instead (a label count or input size that does not
    fit the model) becomes a problem here.
    """
    source = Path(source)
    config, model_file = locate(source)
    model = load_model_file(model_file)
    in_shape, out_shape = image_classifier_shapes(model)
    claims = Claims(
        model=model, model_file=model_file, source=source, is_bundle=source.is_dir(),
        labels=labels or config.get("labels"),
        preprocessing=preprocessing or config.get("preprocessing"),
        color_mode=color_mode or config.get("color_mode", "grayscale" if config else None),
        layer=layer or config.get("target_layer"),
        input_size=None, channels=int(in_shape[3]), num_classes=int(out_shape[1]),
        temperature=float(config.get("temperature", 1.0)), metadata=dict(config.get("metadata", {})),
    )
    size = input_size or config.get("input_size")
    if in_shape[1] is not None and in_shape[2] is not None:
        claims.input_size = (int(in_shape[1]), int(in_shape[2]))
        if size and tuple(size) != claims.input_size:
            claims.problems.append(("input", f"input_size {list(size)} is claimed but the model takes "
                                   f"{list(claims.input_size)}."))
    elif size:
        claims.input_size = (int(size[0]), int(size[1]))
    if claims.labels is not None and len(claims.labels) != claims.num_classes:
        claims.problems.append(("labels", f"{len(claims.labels)} labels are given ({', '.join(claims.labels)}) but the "
                               f"model has {claims.num_classes} output units; the labels are ignored."))
        claims.labels = None
    return claims
