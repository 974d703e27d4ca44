"""The audit command runs end to end, writes its reports and resumes from its cache."""

import json

import pytest

from explain.audit import main as audit_main
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
    report.write_text(json.dumps({"sanity": {"passed": ["gradcam"]}}))
    with pytest.warns(UserWarning, match="malformed sanity section"):
        assert bundle.failed_sanity_check() == set()
    report.write_text(json.dumps({"sanity": {"passed": {"layercam": False, "gradcam": True, "gradcampp": False}}}))
    assert bundle.failed_sanity_check() == {"gradcampp", "layercam"}

    exp = SimpleNamespace(predicted="glioma", explained="glioma", probabilities={"glioma": 0.9},
                          method="layercam", layer="last", empty=False, tta=False)
    assert "failed the model-randomisation sanity check" in result_note(exp, ["layercam"])
    assert "sanity" not in result_note(exp, ["gradcampp"])
