"""The page's work without the page: ui.handlers.Handlers called directly, on a tiny model."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from synthetic import LABELS, write_png, write_tiny_bundle

from explain.bundle import load_bundle
from explain.pipeline import Explainer
from ui.files import ResultFolders
from ui.handlers import Busy, Handlers, Settings


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("handlers")
    bundle = load_bundle(write_tiny_bundle(folder / "bundle"))
    image = write_png(folder / "slice.png", np.random.default_rng(7).integers(0, 256, (36, 44), dtype=np.uint8))
    return bundle, Explainer(bundle), image, folder


def make(tiny, tmp_path, **kwargs):
    bundle, explainer, _, _ = tiny
    return Handlers(bundle, explainer, files=ResultFolders(tmp_path / "cache", ttl_seconds=60), **kwargs)


def test_predict_equals_the_explainer_and_writes_three_pngs(tiny, tmp_path):
    _, explainer, image, _ = tiny
    handlers = make(tiny, tmp_path)
    result = handlers.predict(str(image), "meningioma", 0.7, "gradcam")
    expected = explainer.explain(str(image), "meningioma")
    assert result.probabilities == pytest.approx(expected.probabilities, abs=1e-6)
    assert [c for _, c in result.pictures][1] == "Grad-CAM heatmap (meningioma)"
    with Image.open(result.pictures[2][0]) as overlay:
        np.testing.assert_array_equal(np.asarray(overlay), expected.overlay(0.7))
    assert result.slider == (result.pictures[0][0], result.pictures[2][0])
    assert "**Prediction:** " + expected.predicted in result.note


def test_archive_is_built_on_request_with_the_report(tiny, tmp_path):
    _, _, image, _ = tiny
    handlers = make(tiny, tmp_path)
    path = handlers.archive(str(image), "glioma", 0.4, "gradcam")
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["1_original.png", "2_heatmap.png", "3_overlay.png", "report.json"]
        report = json.loads(z.read("report.json"))
    assert report["image"] == image.name and report["explained_class"] == "glioma"


def test_result_fields_reach_the_note_and_the_report(tiny, tmp_path):
    """The extension points other features use: extra notes and report fields, no caller changes."""
    _, _, image, _ = tiny
    result = make(tiny, tmp_path).analyse(str(image))
    result.notes.append("An extra line.")
    result.report_fields["extra"] = {"x": 1}
    assert result.note.endswith("An extra line.")
    assert result.report()["extra"] == {"x": 1} and result.report()["image"] == image.name


def test_eigencam_caption_names_no_class(tiny, tmp_path):
    _, _, image, _ = tiny
    result = make(tiny, tmp_path).predict(str(image), "glioma", 0.4, "eigencam")
    assert not any(label in result.pictures[1][1] for label in LABELS), result.pictures[1][1]
    assert "same map for every class" in result.note


def test_gradient_free_methods_say_not_checked(tiny, tmp_path):
    _, _, image, _ = tiny
    handlers = make(tiny, tmp_path, failing=["layercam"], checked=["gradcam", "layercam"])
    assert "not checked" not in handlers.analyse(str(image), method="gradcam").note
    assert "failed the model-randomisation sanity check" in handlers.analyse(str(image), method="layercam").note
    for method in ("scorecam", "eigencam"):
        assert "**not checked**" in handlers.analyse(str(image), method=method).note


def test_a_second_slow_request_is_refused_not_queued(tiny, tmp_path):
    _, _, image, _ = tiny
    handlers = make(tiny, tmp_path)
    with handlers._slow():
        with pytest.raises(Busy):
            handlers.analyse(str(image), method="scorecam")
        handlers.analyse(str(image), method="gradcam")  # the quick lane is free
    handlers.analyse(str(image), method="gradcam", tta=True)


def test_batch_rows_columns_and_csv(tiny, tmp_path):
    _, _, image, folder = tiny
    bad = folder / "bad.png"
    bad.write_text("not a picture\n" * 20)
    handlers = make(tiny, tmp_path, settings=Settings(max_batch=5))
    result = handlers.batch([str(image), str(bad)])
    assert result.header == (["file", "prediction"] + [f"p({c})" for c in LABELS]
                             + ["empty map", "input check", "without the region", "error"])
    assert [row[0] for row in result.table] == [image.name, bad.name]
    assert "not an image" in result.table[1][-1] and len(result.overlays) == 1
    with open(result.csv_path) as f:
        assert f.readline().strip() == ",".join(result.header)


def test_a_failing_request_leaves_no_folder(tiny, tmp_path):
    _, _, image, _ = tiny
    handlers = make(tiny, tmp_path)
    with pytest.raises(ValueError):
        list(handlers.compare(str(image), "no-such-class"))
    assert handlers.files.folders() == []


def test_the_sanity_verdicts_and_score_cam_setting_come_from_a_trusted_audit(tiny, tmp_path):
    _, _, image, _ = tiny
    audit = {"sanity": {"passed": {"gradcam": True, "layercam": False}},
             "summary": {"overall": {"gradcam": {}, "scorecam": {}}}, "score_cam_channels": None}
    handlers = make(tiny, tmp_path, audit=audit, settings=Settings(score_cam_channels=128))
    assert handlers.failing == ("layercam",) and handlers.checked == ("gradcam", "layercam")
    note = handlers.analyse(str(image), method="scorecam").note
    assert "scores the 128 most active channels" in note and "audit scored every channel" in note
    untrusted = make(tiny, tmp_path, audit=None)
    assert untrusted.failing == () and "no audit that matches its weights" in untrusted.analyse(str(image)).note
