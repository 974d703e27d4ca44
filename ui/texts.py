"""What the page says: the disclaimer, the note under a result, "How to read this"."""

from __future__ import annotations

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


def result_note(exp, failing=()) -> str:
    """Markdown under one result: prediction, what the map shows, and its caveats."""
    lines = [f"**Prediction:** {exp.predicted} ({exp.probabilities[exp.predicted]:.1%}).",
             f"**Heatmap of:** {exp.explained}, method {METHODS[exp.method].label}, layer `{exp.layer}`"
             + (f", averaged over {TTA_COPIES} flipped and brightness-shifted copies." if exp.tta else ".")]
    if exp.empty:
        lines.append(f"No region of the image raises the {exp.explained} score: the heatmap is empty.")
    if exp.method in failing:
        lines.append(f"{METHODS[exp.method].label} failed the model-randomisation sanity check in this "
                     "model's audit: its map changes little when the model's weights are randomised, so it "
                     "shows where features are active more than what the class relies on.")
    return "\n\n".join(lines)


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


def how_to_read(bundle, layer: str, map_shape, failing) -> str:
    """The "How to read this" text for ``bundle``; ``failing``: method names in menu order."""
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
    parts.append("- **Not a diagnosis.** A research demo on a public dataset; see the disclaimer above.")
    return "\n".join(parts)
