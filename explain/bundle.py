"""Model bundles: a Keras model plus everything needed to feed it correctly.

A bundle is a folder::

    model.keras         the Keras 3 model
    model.weights.h5    the same weights alone (survives Keras version drift)
    bundle.json         labels, input spec, Grad-CAM layer, metadata

``bundle.json`` fields: ``format`` ("brain-mri-gradcam-bundle"), ``version``
(1), ``labels`` (class names in output order), ``input_size`` ([h, w]),
``color_mode`` ("grayscale" | "rgb"), ``preprocessing`` (see
:mod:`explain.preprocess`), ``target_layer`` (name, path or "auto"),
``temperature`` (float, 1.0 = none), ``metadata`` (free-form: metrics, data
fingerprint, training config, ...) and, optionally, ``input_check`` (the
reference of the run-time input check and its ``.npz`` file, see
:mod:`explain.checks.input_check`; written by
``python -m explain.evaluation.fit_input_check``).

Everything is validated when the bundle is loaded, so a mismatch shows up at
start-up with a message that says how to fix it, not as a wrong heatmap later.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BundleError, ExplainError
from .preprocess import COLOR_MODES, NORMALIZATIONS, InputSpec

FORMAT = "brain-mri-gradcam-bundle"
VERSION = 1
BUNDLE_JSON = "bundle.json"
MODEL_FILE = "model.keras"
WEIGHTS_FILE = "model.weights.h5"


@dataclass
class Bundle:
    """A loaded, validated model bundle."""

    model: object  # keras.Model; typed loosely so this module imports without keras
    labels: list[str]
    spec: InputSpec
    target_layer: str = "auto"
    temperature: float = 1.0
    metadata: dict = field(default_factory=dict)
    path: Path | None = None
    input_check: dict | None = None  # bundle.json's "input_check" entry, None if it has none

    def audit(self) -> dict | None:
        """The bundle's own audit report (``<folder>/audit/audit.json``), None if it has none.

        Written by ``python -m explain.evaluation.audit --out <folder>/audit``. A report
        that cannot be read, or whose ``weights_digest`` is not these weights' (a
        retrained or replaced model, or a report from before the digest was recorded),
        is reported with a warning and treated as absent: the app must start, but
        never vouch for these weights with another model's audit.
        """
        report = self.path / "audit" / "audit.json" if self.path is not None and self.path.is_dir() else None
        if report is None or not report.is_file():
            return None
        try:
            data = json.loads(report.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            warnings.warn(f"Ignoring the unreadable audit report {report}: {exc}", stacklevel=2)
            return None
        if data.get("weights_digest") != self.weights_digest():
            warnings.warn(f"Ignoring the audit report {report}: it was made for other weights "
                          "(its weights_digest is missing or differs); run the audit again", stacklevel=2)
            return None
        return data

    def failed_sanity_check(self) -> set[str]:
        """Names of the methods that failed the randomisation sanity check in the bundle's own audit."""
        passed = (self.audit() or {}).get("sanity", {}).get("passed", {})
        if not isinstance(passed, dict):
            warnings.warn(f"Ignoring the malformed sanity section of {self.path}/audit/audit.json", stacklevel=2)
            return set()
        return {name for name, ok in passed.items() if ok is False}

    def weights_digest(self) -> str:
        """SHA-256 (hex) over every weight array of the model, in layer order: names the
        numbers a model computes, so results cached for one set of weights are never
        reused for another (a retrain, a fine-tune, another file)."""
        import hashlib

        import numpy as np

        digest = hashlib.sha256()
        for array in self.model.get_weights():
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def describe(self) -> str:
        h, w = self.spec.size
        where = str(self.path) if self.path else "(in memory)"
        return (
            f"model {where}: {self.model.name}, input {h}x{w}x{self.spec.channels} "
            f"({self.spec.color_mode}), preprocessing {self.spec.preprocessing!r}, "
            f"classes {', '.join(self.labels)}"
        )


def read_config(folder: str | Path) -> dict:
    """Read and check ``bundle.json`` of ``folder`` without loading the model."""
    folder = Path(folder)
    path = folder / BUNDLE_JSON
    if not path.is_file():
        raise BundleError(
            f"{folder} is not a model bundle: {BUNDLE_JSON} is missing. Create one with "
            f"`python -m explain.bundle --model MODEL.keras --labels a,b,c --preprocessing rescale --out {folder}`."
        )
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None
    if config.get("format") != FORMAT:
        raise BundleError(f"{path}: 'format' must be {FORMAT!r}, found {config.get('format')!r}.")
    if config.get("version") != VERSION:
        raise BundleError(f"{path}: unsupported bundle version {config.get('version')!r} (this code reads {VERSION}).")
    _check_fields(config, str(path))
    return config


def _check_fields(config: dict, where: str) -> None:
    labels = config.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise BundleError(f"{where}: 'labels' must be a non-empty list of class names in output order.")
    if len(set(labels)) != len(labels):
        raise BundleError(f"{where}: 'labels' has duplicates: {labels}.")
    size = config.get("input_size")
    if size is not None and not (
        isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)
    ):
        raise BundleError(f"{where}: 'input_size' must be [height, width], found {size!r}.")
    if config.get("color_mode", "grayscale") not in COLOR_MODES:
        raise BundleError(f"{where}: 'color_mode' must be one of {COLOR_MODES}.")
    if config.get("preprocessing") not in NORMALIZATIONS:
        raise BundleError(
            f"{where}: 'preprocessing' must be one of {NORMALIZATIONS}, found "
            f"{config.get('preprocessing')!r}. Use 'rescale' for models trained with rescale=1./255, "
            "'xception' for keras.applications.xception.preprocess_input, 'none' if the model rescales itself."
        )
    temperature = config.get("temperature", 1.0)
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise BundleError(f"{where}: 'temperature' must be a positive number, found {temperature!r}.")


def locate(source: str | Path) -> tuple[dict, Path]:
    """(checked ``bundle.json`` config, model file) of a bundle folder; ({}, the file) for a bare ``.keras``/``.h5``.

    The one place that decides what a model source is, for the app, the CLI and the doctor.
    """
    source = Path(source)
    if source.is_dir():
        config = read_config(source)
        return config, source / config.get("model_file", MODEL_FILE)
    if source.is_file():
        if source.suffix not in (".keras", ".h5"):
            raise BundleError(f"{source}: expected a bundle folder, a .keras or an .h5 file.")
        return {}, source
    raise BundleError(
        f"No model at {source}. Train the default one with "
        "`python -m training.train --arch compact --out models/default`, or point --model "
        "at a bundle folder or a .keras file."
    )


def load_bundle(
    source: str | Path,
    *,
    labels: list[str] | None = None,
    preprocessing: str | None = None,
    color_mode: str | None = None,
    target_layer: str | None = None,
    input_size: tuple[int, int] | None = None,
) -> Bundle:
    """Load a bundle folder, or a bare ``.keras``/``.h5`` file plus options.

    For a bare model file, ``labels`` and ``preprocessing`` are required
    (guessing the preprocessing is how heatmaps silently go wrong). For a
    folder, given options override ``bundle.json``.
    """
    source = Path(source)
    config, model_path = locate(source)
    if not config:  # a bare model file: nothing is claimed but what was given
        missing = [n for n, v in (("labels", labels), ("preprocessing", preprocessing)) if not v]
        if missing:
            raise BundleError(
                f"{source} is a bare model file: give {' and '.join(missing)} "
                "(e.g. --labels glioma,meningioma,notumor,pituitary --preprocessing rescale), "
                "or make a bundle with `python -m explain.bundle`."
            )
    overrides = {"labels": labels, "preprocessing": preprocessing, "color_mode": color_mode,
                 "target_layer": target_layer, "input_size": list(input_size) if input_size else None}
    config.update({k: v for k, v in overrides.items() if v})
    _check_fields(config, str(source))
    model = load_model_file(model_path)
    if "color_mode" not in config:
        config["color_mode"] = _assumed_color_mode(model, source)
    return from_model(
        model,
        labels=config["labels"],
        preprocessing=config["preprocessing"],
        color_mode=config["color_mode"],
        input_size=config.get("input_size"),
        target_layer=config.get("target_layer", "auto"),
        temperature=config.get("temperature", 1.0),
        metadata=config.get("metadata", {}),
        path=source,
        input_check=config.get("input_check"),
    )


def _assumed_color_mode(model, source: Path) -> str:
    """The colour mode of a bare model file given without one: detected where the input says, else assumed aloud.

    One input channel can only be grayscale. Three channels fit both modes
    (grey slices replicated, or colour images), so the assumption is named in
    a warning instead of being made silently.
    """
    inputs = getattr(model, "inputs", None) or []
    channels = inputs[0].shape[-1] if inputs and len(inputs[0].shape) == 4 else None
    if channels != 3:
        return "grayscale"
    warnings.warn(f"{source}: no colour mode given; assuming 'grayscale' (each image converted to grey and "
                  "copied to the 3 input channels, as for MRI slices). Pass --color-mode rgb if the model "
                  "was trained on colour images; `python -m explain.doctor` measures which fits.", stacklevel=3)
    return "grayscale"


def load_model_file(path: Path):
    """A ``.keras``/``.h5`` file as an uncompiled Keras model; BundleError saying why not."""
    import keras

    if not path.is_file():
        raise BundleError(f"The bundle's model file {path} is missing.")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise BundleError(
            f"Could not load {path} with Keras {keras.__version__}: {exc}. If it was saved by another "
            f"Keras version, load its {WEIGHTS_FILE} into the same architecture and save it again."
        ) from None


def from_model(
    model,
    *,
    labels: list[str],
    preprocessing: str,
    color_mode: str = "grayscale",
    input_size=None,
    target_layer: str = "auto",
    temperature: float = 1.0,
    metadata: dict | None = None,
    path: Path | None = None,
    input_check: dict | None = None,
) -> Bundle:
    """Validate an in-memory model against its description and make a :class:`Bundle`."""
    from .model.layers import find_target_layer

    name = getattr(model, "name", "model")
    shape, out_shape = image_classifier_shapes(model)
    size = _input_size(name, shape, input_size)
    if out_shape[1] != len(labels):
        raise BundleError(
            f"Model {name!r} outputs {out_shape[1]} classes but {len(labels)} labels were given "
            f"({', '.join(labels)}). Give one label per output unit, in output order."
        )
    try:
        spec = InputSpec(size=size, channels=int(shape[3]), color_mode=color_mode, preprocessing=preprocessing)
    except ValueError as exc:
        raise BundleError(f"Model {name!r}: {exc}.") from None
    try:
        find_target_layer(model, target_layer)
    except ExplainError as exc:
        raise BundleError(str(exc)) from None
    return Bundle(model, list(labels), spec, target_layer or "auto", float(temperature),
                  dict(metadata or {}), path, input_check if isinstance(input_check, dict) else None)


def image_classifier_shapes(model) -> tuple[tuple, tuple]:
    """(input shape (None, H, W, 1 or 3), output shape (None, K)) of a single-input image classifier.

    BundleError saying what is wrong for any other model: nothing can be explained (or diagnosed) then.
    """
    name = getattr(model, "name", "model")
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise BundleError(
            f"Model {name!r} has no defined input. Sequential models need one: "
            "keras.Sequential([keras.Input((h, w, 3)), ...])."
        )
    if len(inputs) != 1:
        raise BundleError(f"Model {name!r} has {len(inputs)} inputs; expected one image input.")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[3] not in (1, 3):
        raise BundleError(
            f"Model {name!r} takes input of shape {shape}; expected an image batch (None, H, W, 1 or 3)."
        )
    outputs = getattr(model, "outputs", None)
    out_shape = tuple(outputs[0].shape) if outputs and len(outputs) == 1 else None
    if out_shape is None or len(out_shape) != 2:
        raise BundleError(f"Model {name!r} must have one output of shape (None, classes); found {out_shape}.")
    return shape, out_shape


def _input_size(name, shape, input_size) -> tuple[int, int]:
    model_size = shape[1:3]
    if input_size is not None:
        given = tuple(int(v) for v in input_size)
        if all(d is not None for d in model_size) and given != tuple(model_size):
            raise BundleError(
                f"bundle.json says input_size {list(given)} but model {name!r} takes {list(model_size)}."
            )
        return given
    if any(d is None for d in model_size):
        raise BundleError(f"Model {name!r} accepts any image size; set 'input_size' in bundle.json.")
    return int(model_size[0]), int(model_size[1])


def _without_optimizer(model):
    """The model alone: a compiled model would also store its optimizer state (3x the file)."""
    if getattr(model, "optimizer", None) is None:
        return model
    # clone_model and model_from_json both carry the compile state over (and with it the
    # optimizer's slots); get_config() holds the architecture alone.
    lean = type(model).from_config(model.get_config())
    lean.set_weights(model.get_weights())
    return lean


def save_bundle(bundle: Bundle, folder: str | Path) -> Path:
    """Write ``bundle`` to ``folder`` (model.keras, model.weights.h5, bundle.json)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = _without_optimizer(bundle.model)
    model.save(folder / MODEL_FILE)
    model.save_weights(folder / WEIGHTS_FILE)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "model_file": MODEL_FILE,
        "labels": bundle.labels,
        "input_size": list(bundle.spec.size),
        "color_mode": bundle.spec.color_mode,
        "preprocessing": bundle.spec.preprocessing,
        "target_layer": bundle.target_layer,
        "temperature": bundle.temperature,
        "metadata": bundle.metadata,
    }
    if bundle.input_check and _copy_reference(bundle, folder):
        config["input_check"] = bundle.input_check
    (folder / BUNDLE_JSON).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def _copy_reference(bundle: Bundle, folder: Path) -> bool:
    """Copy the input check's reference file next to the saved model; False if there is none to copy."""
    import shutil

    name = str(bundle.input_check.get("file", ""))
    source = bundle.path / name if bundle.path is not None and bundle.path.is_dir() and name else None
    if source is None or not source.is_file():
        return False
    if source.resolve() != (folder / name).resolve():
        shutil.copyfile(source, folder / name)
    return True


DEFAULT_BUNDLE_ENV = "BRAIN_MRI_MODEL"


def default_bundle_path() -> Path:
    """$BRAIN_MRI_MODEL, else the bundled default model ``models/default`` of this repository."""
    import os

    return Path(os.environ.get(DEFAULT_BUNDLE_ENV) or Path(__file__).resolve().parents[1] / "models" / "default")


def add_model_options(parser) -> None:
    """The command-line options shared by every entry point that loads a model."""
    parser.add_argument("--model", default=None,
                        help=f"bundle folder or .keras/.h5 file (default ${DEFAULT_BUNDLE_ENV} or models/default)")
    parser.add_argument("--labels", help="comma-separated class names in output order (bare model files)")
    parser.add_argument("--preprocessing", choices=NORMALIZATIONS, help="normalisation the model was trained with")
    parser.add_argument("--color-mode", choices=COLOR_MODES, help="grayscale (default) or rgb")
    parser.add_argument("--layer", help="Grad-CAM layer name or path (default: automatic)")
    parser.add_argument("--input-size", help="HxW, only for models that accept any input size")


def load_from_args(args) -> Bundle:
    """Load the bundle an argparse namespace made by :func:`add_model_options` points at."""
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    size = None
    if args.input_size:
        try:
            size = tuple(int(v) for v in args.input_size.lower().split("x"))
        except ValueError:
            raise BundleError(f"--input-size must look like 299x299, not {args.input_size!r}") from None
    return load_bundle(args.model or default_bundle_path(), labels=labels,
                       preprocessing=args.preprocessing, color_mode=args.color_mode,
                       target_layer=args.layer, input_size=size)


def main(argv=None) -> int:
    """``python -m explain.bundle``: wrap a bare .keras/.h5 model into a bundle folder."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m explain.bundle", description=main.__doc__)
    add_model_options(parser)
    parser.add_argument("--out", required=True, help="bundle folder to write")
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("--model is required")
    try:
        bundle = load_from_args(args)
    except (ExplainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bundle.metadata.setdefault("source_model", str(args.model))
    save_bundle(bundle, args.out)
    print(f"wrote {args.out}: {bundle.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
