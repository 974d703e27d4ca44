"""The shipped examples: listed, present, within the allowed number, and right for the default model."""

from __future__ import annotations

import json
from pathlib import Path

from explain.bundle import load_bundle
from explain.pipeline import Explainer
from ui.examples import EXAMPLES_JSON, example_files

ROOT = Path(__file__).resolve().parents[1]


def test_every_example_is_listed_and_the_default_model_gets_it_right():
    entries = json.loads(EXAMPLES_JSON.read_text())["examples"]
    files = sorted(p.name for p in (ROOT / "examples").glob("*.jpg"))
    assert sorted(e["file"] for e in entries) == files and 0 < len(files) <= 12
    assert {e["label"] for e in entries} == {"glioma", "meningioma", "notumor", "pituitary"}
    assert (ROOT / "examples" / "ATTRIBUTION.md").is_file()
    assert len(example_files()) == len(entries)
    explainer = Explainer(load_bundle(ROOT / "models" / "default"))
    for entry in entries:
        exp = explainer.explain(ROOT / "examples" / entry["file"])
        assert exp.predicted == entry["label"], (entry["file"], exp.probabilities)
