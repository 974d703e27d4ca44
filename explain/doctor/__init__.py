"""Model doctor: find out why a model's heatmaps look random, and which settings fix them.

    python -m explain.doctor --model MODEL --images DIR [--labels a,b,...] [--preprocessing MODE]
        [--color-mode MODE] [--layer NAME] [--limit N] [--json OUT] [--write-bundle OUT]

The model runs on a sample of the user's images under every setting the
pipeline knows. Each check (one module here) returns findings (OK / WARNING /
ERROR, with the numbers) and a recommendation:

=============  =============================================================
input, file    :mod:`.inputs`: input size and channels against the images; Keras versions
preprocessing  :mod:`.settings`: every normalisation x colour mode; accuracy with class
color_mode     folders, label-free scores (prediction spread, BatchNorm statistics) without
labels         :mod:`.labels`: confusion matrix and the label order that fits (optimal assignment)
layer          :mod:`.layer`: candidates, randomisation check, head energy, deletion AUC vs random
gradients      :mod:`.gradients`: empty maps, saturated softmax, tutorial softmax-gradient maps
=============  =============================================================

:func:`diagnose` runs them all and returns a :class:`Diagnosis`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..quiet import import_tensorflow

# Before the checks import TensorFlow themselves: keeps its C++ start-up lines off the report
# (``python -m explain.doctor --verbose`` brings them back).
import_tensorflow(quiet="--verbose" not in sys.argv[1:])

from ..errors import LayerError  # noqa: E402
from ..progress import progress  # noqa: E402
from .claims import Claims, load_claims  # noqa: E402
from .findings import ERROR, OK, WARNING, Finding  # noqa: E402
from .gradients import check_gradients  # noqa: E402
from .inputs import check_file, check_input  # noqa: E402
from .labels import check_labels  # noqa: E402
from .layer import check_layer, plan_layers  # noqa: E402
from .sample import list_images, load_sample  # noqa: E402
from .settings import (ForwardPass, candidate_settings, canonical, evaluate, key,  # noqa: E402
                       model_inputs, run_settings)

__all__ = ["Diagnosis", "Finding", "diagnose", "OK", "WARNING", "ERROR"]


@dataclass
class Diagnosis:
    """The outcome of one doctor run.

    report: JSON-ready dict (see the README section "My heatmaps look random").
    findings: every Finding, in check order.
    claims: the model and what was claimed for it.
    """

    report: dict
    findings: list[Finding]
    claims: Claims

    @property
    def exit_code(self) -> int:
        """1 when any finding is an ERROR, else 0."""
        return int(any(f.severity == ERROR for f in self.findings))

    def recommended(self) -> dict:
        """{"labels", "preprocessing", "color_mode", "layer"} the doctor recommends."""
        r = self.report
        return {"labels": r["labels"]["recommended"], "preprocessing": r["preprocessing"]["recommended"],
                "color_mode": r["color_mode"]["recommended"], "layer": r["layer"]["recommended"]}

    def bundle(self):
        """A :class:`explain.bundle.Bundle` of the model with the recommended settings."""
        from ..bundle import from_model

        rec, c = self.recommended(), self.claims
        meta = dict(c.metadata)
        meta["doctor"] = {"source_model": str(c.source), "images": self.report["images"]["n"],
                          "evidence": self.report["preprocessing"]["evidence"],
                          "findings": [f.as_dict() for f in self.findings if f.severity != OK]}
        return from_model(c.model, labels=rec["labels"], preprocessing=rec["preprocessing"],
                          color_mode=rec["color_mode"], input_size=c.input_size,
                          target_layer=rec["layer"] or "auto", temperature=c.temperature, metadata=meta)


class _Progress:
    def __init__(self, show: bool):
        self.show, self.done, self.total = show, 0, 0

    def step(self):
        self.done += 1
        if self.show:
            progress(min(self.done, self.total), self.total)


def _clean(value):
    """JSON-ready copy: NaN/inf become None (JSON has no NaN), numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def diagnose(model, images, *, labels=None, preprocessing=None, color_mode=None, layer=None,
             limit: int | None = None, input_size=None, show_progress: bool = False) -> Diagnosis:
    """Run every check of the doctor.

    model: bundle folder or .keras/.h5 file. images: folder of images, or of
    one sub-folder per class. labels / preprocessing / color_mode / layer: the
    user's claims (None: take the bundle's, or find them for a bare file).
    limit: at most that many images, spread evenly. input_size: (h, w) for
    models that accept any size. Raises :class:`explain.errors.ExplainError`
    when the model or the images cannot be read at all.
    """
    started = time.time()
    bar = _Progress(show_progress)
    claims = load_claims(model, labels=labels, preprocessing=preprocessing, color_mode=color_mode,
                         layer=layer, input_size=input_size)
    paths, classes, truth = list_images(images, limit)
    findings = [Finding(ERROR, check, message) for check, message in claims.problems]
    if claims.input_size is None:
        from ..io.decode import decode_image

        first = decode_image(paths[0])
        claims.input_size = (int(first.shape[0]), int(first.shape[1]))
        findings.append(Finding(WARNING, "input", f"the model accepts any size and none is claimed; using the "
                                                  f"first image's {claims.input_size[0]}x{claims.input_size[1]}."))
    size, channels = claims.input_size, claims.channels
    settings = candidate_settings(size, channels)
    try:
        plan = plan_layers(claims.model, claims.layer)[4]
    except LayerError:
        plan = []
    bar.total = len(paths) + len(settings) + len(plan) + 1
    sample = load_sample(paths, classes, truth, images, on_image=bar.step)

    report: dict = {"model": str(claims.source), "images": {
        "folder": str(Path(images)), "n": len(sample), "labelled": sample.labelled,
        "classes": sample.counts() if sample.labelled else None}}
    report["input"], finding = check_input(size, channels, sample)
    findings.append(finding)
    report["file"], finding = check_file(claims.model_file)
    findings.append(finding)

    forward = ForwardPass(claims.model, (*size, channels))
    results = run_settings(forward, sample, size, channels, on_setting=bar.step)
    chosen = evaluate(results, sample, claims)
    rec_p, rec_c = chosen["recommended"]
    report["preprocessing"] = {"given": claims.preprocessing, "recommended": rec_p, "evidence": chosen["evidence"],
                               "batchnorm_layers": len(forward.norms), "by_setting": chosen["by_setting"]}
    report["color_mode"] = {"given": claims.color_mode, "recommended": rec_c}
    findings += chosen["findings"]
    rec_key = key(canonical(rec_p), rec_c)
    _, report["labels"], finding = check_labels(results[rec_key].probs, sample, claims.labels,
                                                claims.num_classes)
    findings.append(finding)

    from ..preprocess import InputSpec

    x = model_inputs(sample, InputSpec(size, channels, rec_c, canonical(rec_p)))
    try:
        _, report["layer"], finding, engine = check_layer(claims.model, claims.layer, x,
                                                                   claims.temperature, on_layer=bar.step)
    except LayerError as exc:
        engine = None
        report["layer"] = {"given": claims.layer, "recommended": None, "candidates": []}
        finding = Finding(ERROR, "layer", str(exc))
    findings.append(finding)
    if engine is not None:
        given_key = key(canonical(claims.preprocessing), rec_c) if claims.preprocessing else None
        saturated_given = None
        if given_key in chosen["by_setting"] and given_key != rec_key:
            saturated_given = chosen["by_setting"][given_key]["label_free"]["saturated_share"]
        report["gradients"], finding = check_gradients(engine, x, saturated_given, claims.preprocessing)
        findings.append(finding)
    bar.done = bar.total - 1
    bar.step()
    report["findings"] = [f.as_dict() for f in findings]
    report["exit_code"] = int(any(f.severity == ERROR for f in findings))
    report["seconds"] = round(time.time() - started, 1)
    return Diagnosis(_clean(report), findings, claims)
