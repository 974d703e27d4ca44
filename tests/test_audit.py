"""The audit command runs end to end, writes its reports and resumes from its cache."""

import json

import pytest

from explain.evaluation.audit import main as audit_main
from synthetic import write_dataset, write_tiny_bundle


def test_audit_writes_reports_and_resumes(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", per_class=13)
    bundle = write_tiny_bundle(tmp_path / "bundle")
    out = tmp_path / "audit"
    args = ["--model", str(bundle), "--data", str(data), "--split", "test", "--methods", "gradcam", "eigencam",
            "--steps", "4", "--bootstrap", "50", "--sanity-images", "2", "--out", str(out)]
    assert audit_main(args) == 0
    report = json.loads((out / "audit.json").read_text())
    assert report["n_images"] == 4
    overall = report["summary"]["overall"]
    assert set(overall) == {"gradcam", "eigencam", "gradcam+tta", "random", "centre"}
    for stats in overall.values():
        for metric in ("deletion_auc", "insertion_auc", "head_energy"):
            assert 0.0 <= stats[metric]["low"] <= stats[metric]["mean"] <= stats[metric]["high"] <= 1.0
    assert set(report["summary"]["per_class"]) == {"glioma", "meningioma", "notumor", "pituitary"}
    # The tumour-class block pools the 3 tumour images (one per class), not the no-tumour one.
    tumour = report["summary"]["tumour_classes"]["gradcam"]["head_energy"]
    per_class = report["summary"]["per_class"]
    assert tumour["n"] == 3
    assert abs(tumour["mean"] - sum(per_class[c]["gradcam"]["head_energy"]["mean"]
                                    for c in ("glioma", "meningioma", "pituitary")) / 3) < 1e-9
    sanity = report["sanity"]
    # The tiny model's blocks: out, last, first conv; the last step resets all of them.
    assert sanity["layers"] == ["predictions", "last", "conv2d"]
    assert len(sanity["methods"]["gradcam"]) == 3 and isinstance(sanity["passed"]["gradcam"], bool)
    markdown = (out / "audit.md").read_text()
    assert "| Grad-CAM |" in markdown and "| Grad-CAM + TTA |" in markdown and "| passes |" in markdown
    assert "## Head energy on the tumour classes (3 images)" in markdown

    cached = (out / "cache.jsonl").read_text().splitlines()
    assert len(cached) == 4 * 5  # 4 images x (2 methods + Grad-CAM with TTA + 2 baselines)
    assert audit_main(args) == 0  # second run: everything from the cache
    assert (out / "cache.jsonl").read_text().splitlines() == cached

    # Other weights (a retrain) or another setting: the cached records are not reused.
    write_tiny_bundle(bundle, seed=1)
    assert audit_main(args) == 0
    again = (out / "cache.jsonl").read_text().splitlines()
    assert len(again) == 2 * len(cached)
    assert len({json.loads(line)["key"] for line in again}) == 2
    assert audit_main(args[:-2] + ["--steps", "5", "--out", str(out)]) == 0
    assert len((out / "cache.jsonl").read_text().splitlines()) == 3 * len(cached)

    # --lesions-only adds lesion rows to the report already there.
    before = json.loads((out / "audit.json").read_text())
    assert audit_main(["--model", str(bundle), "--data", str(data), "--split", "test", "--methods", "gradcam",
                       "--bootstrap", "20", "--lesions", str(write_lesions(tmp_path)), "--lesions-only",
                       "--out", str(out)]) == 0
    after = json.loads((out / "audit.json").read_text())
    assert after["summary"] == before["summary"] and after["sanity"] == before["sanity"]
    assert after["lesions"]["n_images"] == 3
    markdown = (out / "audit.md").read_text()
    assert "| Grad-CAM |" in markdown and "Lesion localisation (3 annotated images" in markdown


def test_sanity_failures_are_read_from_the_bundles_own_audit(tmp_path):
    from types import SimpleNamespace

    from explain.bundle import load_bundle
    from ui.texts import result_note

    bundle = load_bundle(write_tiny_bundle(tmp_path / "bundle"))
    assert bundle.failed_sanity_check() == set()  # no audit yet
    (tmp_path / "bundle" / "audit").mkdir()
    report = tmp_path / "bundle" / "audit" / "audit.json"
    report.write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable audit report"):
        assert bundle.failed_sanity_check() == set()
    digest = bundle.weights_digest()
    report.write_text(json.dumps({"weights_digest": digest, "sanity": {"passed": ["gradcam"]}}))
    with pytest.warns(UserWarning, match="malformed sanity section"):
        assert bundle.failed_sanity_check() == set()
    verdicts = {"sanity": {"passed": {"layercam": False, "gradcam": True, "gradcampp": False}}}
    report.write_text(json.dumps({"weights_digest": digest, **verdicts}))
    assert bundle.failed_sanity_check() == {"gradcampp", "layercam"}
    # Another model's audit (or one that records no weights) vouches for nothing here.
    for other in ({"weights_digest": "0" * 64}, {}):
        report.write_text(json.dumps({**other, **verdicts}))
        with pytest.warns(UserWarning, match="made for other weights"):
            assert bundle.failed_sanity_check() == set() and bundle.audit() is None

    exp = SimpleNamespace(predicted="glioma", explained="glioma", probabilities={"glioma": 0.9},
                          method="layercam", layer="last", empty=False, tta=False)
    assert "failed the model-randomisation sanity check" in result_note(exp, ["layercam"])
    assert "sanity" not in result_note(exp, ["gradcampp"])


def write_lesions(folder):
    """Boxes on the test images of write_dataset(per_class=13); returns the file."""
    from synthetic import LABELS

    # Each test image's brightest region is its class's bar (write_dataset); box it. The
    # notumor image gets no box, and one image outside the split must be ignored.
    images = {f"Training/{label}/img_12.png": {"box": [10, 8 * k, 30, 8 * k + 12], "confidence": "high"}
              for k, label in enumerate(LABELS) if label != "notumor"}
    images["Training/glioma/img_00.png"] = {"box": [0, 0, 5, 5], "confidence": "low"}  # train split
    lesions = folder / "lesions.json"
    lesions.write_text(json.dumps({"format": "brain-mri-gradcam-lesions", "version": 1, "images": images}))
    return lesions


def test_audit_lesion_rows_on_known_boxes(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", per_class=13)
    bundle = write_tiny_bundle(tmp_path / "bundle")
    lesions = write_lesions(tmp_path)
    out = tmp_path / "audit"
    assert audit_main(["--model", str(bundle), "--data", str(data), "--split", "test", "--methods", "gradcam",
                       "--bootstrap", "50", "--lesions", str(lesions), "--lesions-only", "--out", str(out)]) == 0
    report = json.loads((out / "audit.json").read_text())
    assert "summary" not in report and "sanity" not in report  # --lesions-only
    rows = report["lesions"]["rows"]
    assert report["lesions"]["n_images"] == 3
    assert set(rows) == {"gradcam", "gradcam+tta", "baseline: uniform", "baseline: centre", "baseline: bright blob"}
    assert set(rows["gradcam"]) == {"overall", "glioma", "meningioma", "pituitary"}
    assert rows["baseline: bright blob"]["overall"]["pointing_0px"]["mean"] == 1.0
    assert abs(rows["baseline: uniform"]["overall"]["box_energy_ratio"]["mean"] - 1.0) < 1e-6
    reliance = report["lesions"]["reliance"]
    assert set(reliance) == {"overall", "glioma", "meningioma", "pituitary"}
    for block in reliance.values():
        drop = block["lesion_drop"]["mean"]
        assert drop == pytest.approx(block["p_true"]["mean"] - block["p_true_lesion_blurred"]["mean"], abs=1e-9)
    text = (out / "audit.md").read_text()
    assert "Lesion localisation (3 annotated images" in text and "Does the score need the lesion?" in text
