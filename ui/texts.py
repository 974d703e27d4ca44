"""What the page says: the disclaimer, the note under a result, "How to read this"."""

from __future__ import annotations

from explain.checks.input_check import WARNING
from explain.methods import METHODS
from explain.tta import TTA_COPIES

DISCLAIMER = (
    "**Research demo, not a medical device.** Predictions and heatmaps illustrate Grad-CAM on a public "
    "dataset; do not use them for diagnosis or treatment. Do not upload images that identify a patient."
)
#: The split the accuracy must have been measured on for the page to call it leak-free.
CLEAN_SPLIT_CSV = "clean_split.csv"


def method_title(name: str, tta: bool = False) -> str:
    return METHODS[name].label + (" + TTA" if tta else "")


def class_agnostic(method: str) -> bool:
    """True for a method whose map does not depend on the class (Eigen-CAM)."""
    return bool(getattr(METHODS[method], "class_agnostic", False))


def heatmap_caption(exp, short: bool = False) -> str:
    """What a heatmap is of: ``heatmap (glioma)``, or for a class-agnostic method what it shows instead."""
    if class_agnostic(exp.method):
        return "any class" if short else "heatmap (any class: the activations' main component)"
    return exp.explained if short else f"heatmap ({exp.explained})"


#: The label's headline for an image the input check flags (the classes stay listed below it).
FLAGGED_HEADLINE = "Not like the training slices"


def input_check_text(exp) -> str:
    """The input check's verdict in one markdown paragraph (a warning first when flagged)."""
    verdict = exp.input_check
    if verdict.get("in_distribution") is None:
        return f"**Input check:** {verdict.get('note', 'no input check for this model')}."
    numbers = f"distance {verdict['score']:.1f}, threshold {verdict['threshold']:.1f}"
    if "colour_share" in verdict:
        numbers += f"; coloured pixels {verdict['colour_share']:.0%}, limit {verdict['colour_limit']:.0%}"
    if exp.flagged:
        return f"**Warning: {WARNING}** ({numbers}.)"
    return f"**Input check:** like the training slices ({numbers})."


def result_note(exp, failing=()) -> str:
    """Markdown under one result: the input check's warning, prediction, the region check,
    what the map shows, and its caveats."""
    what = (f"the activations' first principal component (method {METHODS[exp.method].label}: the same map "
            "for every class)" if class_agnostic(exp.method) else f"{exp.explained}, method {METHODS[exp.method].label}")
    # An explanation from elsewhere (an older backend, a stand-in) may carry no checks: say nothing then.
    flagged = getattr(exp, "flagged", False)
    region = exp.region_sentence() if hasattr(exp, "region_sentence") else ""
    lines = [input_check_text(exp)] if flagged else []
    answer = "Model's answer (not meaningful for this image)" if flagged else "Prediction"
    lines.append(f"**{answer}:** {exp.predicted} ({exp.probabilities[exp.predicted]:.1%}).")
    if region:
        lines.append(f"**Region check:** {region}")
    lines += [f"**Heatmap of:** {what}, layer `{exp.layer}`"
             + (f", averaged over {TTA_COPIES} flipped and brightness-shifted copies." if exp.tta else ".")]
    if exp.empty:
        lines.append(f"No region of the image raises the {exp.explained} score: the heatmap is empty.")
    if exp.method in failing:
        lines.append(sanity_failed(exp.method))
    if not flagged and hasattr(exp, "input_check"):
        lines.append(input_check_text(exp))
    return "\n\n".join(lines)


def sanity_failed(method: str) -> str:
    return (f"{METHODS[method].label} failed the model-randomisation sanity check in this "
            "model's audit: its map changes little when the model's weights are randomised, so it "
            "shows where features are active more than what the class relies on.")


def method_caveats(exp, failing=(), checked=(), score_cam_channels: int | None = None, audited=()) -> list[str]:
    """Paragraphs after :func:`result_note`'s first lines: the sanity check's verdict on this
    method (failed, or not checked at all), and Score-CAM's channel cap. ``audited``:
    ``(channels,)`` when the bundle's audit scored Score-CAM with that many channels
    (None: every channel), ``()`` when it did not."""
    out = []
    if exp.method in failing:
        out.append(sanity_failed(exp.method))
    elif exp.method not in checked:
        why = ("this model has no audit that matches its weights" if not checked
               else "the audit's check covers the gradient methods only")
        out.append(f"{METHODS[exp.method].label}: sanity check **not checked** ({why}), so nothing "
                   "shows that this map depends on what the model learned.")
    if exp.method == "scorecam":
        def channels(n):
            return f"the {n} most active channels" if n else "every channel"
        line = f"Score-CAM here scores {channels(score_cam_channels)} of the layer"
        if audited and audited[0] != score_cam_channels:
            line += f"; the model's audit scored {channels(audited[0])}, so its Score-CAM figures describe that setting"
        out.append(line + ".")
    return out


def test_accuracy(metadata: dict) -> str:
    """One sentence on the bundle's measured accuracy, or "" when it carries no leak-free figure.

    Only an evaluation on the test part of ``clean_split.csv`` is called
    leak-free; another split is named as what it is.
    """
    ev = (metadata.get("evaluation") or {}).get("test") or {}
    acc = (ev.get("metrics") or {}).get("accuracy") or {}
    value = acc.get("value") if isinstance(acc, dict) else None
    if not isinstance(value, (int, float)):
        return ""
    ci = acc.get("ci95")
    interval = f" (95 % interval {ci[0]:.1%} to {ci[1]:.1%})" if isinstance(ci, list) and len(ci) == 2 else ""
    count = f", {ev['n_images']} images" if isinstance(ev.get("n_images"), int) else ""
    if ev.get("csv") == CLEAN_SPLIT_CSV and ev.get("split") == "test":
        where = "the leak-free test split"
    else:
        where = f"the test split of {ev.get('csv', 'an unnamed split file')} (not checked for leakage)"
    return f"Accuracy on {where}: {value:.1%}{interval}{count}."


def how_to_read(bundle, layer: str, map_shape, failing, checked=()) -> str:
    """The "How to read this" text for ``bundle``; ``failing``: method names in menu order;
    ``checked``: the methods the bundle's (trusted) audit ran the sanity check on."""
    h, w = bundle.spec.size
    parts = [
        "- **Colours.** Red marks the regions that raised the explained class's score the most, blue "
        "those that did not raise it. The map is scaled to its own maximum, so red means "
        "\"most, in this image\", not \"certain\".",
        f"- **Where it comes from.** The default method is Grad-CAM on layer `{layer}` "
        f"({map_shape[0]}x{map_shape[1]} cells for a {h}x{w} input), taken from the gradient of the "
        "class score before the softmax, then enlarged to the image.",
        "- **What it is not.** Grad-CAM shows what the model used for its answer, not where the tumour is: "
        "it is not a segmentation, and a model can be right for the wrong reasons. "
        "The image is resized to the model's input without cropping.",
    ]
    accuracy = test_accuracy(bundle.metadata)
    if accuracy:
        parts.append(f"- **Accuracy.** {accuracy}")
    if failing:
        names = ", ".join(METHODS[m].label for m in failing)
        parts.append(f"- **Sanity check.** {names} failed this model's randomisation check (their maps "
                     "barely change when the weights are randomised); read them as activity maps.")
    unchecked = [METHODS[m].label for m in METHODS if m not in checked]
    if unchecked:
        parts.append(f"- **Not checked.** {', '.join(unchecked)}: no randomisation sanity check of this model "
                     "covers them, so nothing shows that their maps depend on what the model learned.")
    if getattr(bundle, "input_check", None):
        parts.append("- **Input check.** Each upload's features (what the classifier reads) are compared with "
                     "those of the training slices; one far from all of them, or clearly coloured, gets a warning "
                     "instead of a verdict. It catches photos, documents, noise and most other scans, not all: a "
                     "head CT can pass. Passing it does not make the answer right.")
    else:
        parts.append("- **Input check.** This model has none: any image gets a class, even a photo.")
    parts.append("- **Region check.** The map's top region (the pixels holding half of its mass, at most a fifth "
                 "of the image) is blurred away and the model runs again, next to a random region of the same "
                 "size inside the head. A class that holds without it rests on the rest of the slice too.")
    parts.append("- **Not a diagnosis.** A research demo on a public dataset; see the disclaimer above.")
    return "\n".join(parts)
