"""The diagnostic CLI writes the three images and a report, and fails loudly."""

import json

import numpy as np
import pytest
from PIL import Image

from explain.__main__ import main
from synthetic import write_png, write_tiny_bundle


def test_cli_writes_images_and_report(tmp_path, capsys):
    bundle = write_tiny_bundle(tmp_path / "bundle")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    write_png(images / "a.png", rng.integers(0, 256, (50, 40), dtype=np.uint8))
    write_png(images / "b.png", rng.integers(0, 256, (60, 60, 3), dtype=np.uint8))
    out = tmp_path / "out"
    code = main([str(images), "--model", str(bundle), "--out", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0, lines
    assert len(lines) == 2 and all(line.startswith("ok") for line in lines)
    for name, shape in (("a", (50, 40)), ("b", (60, 60))):
        folder = out / name
        for png in ("1_original.png", "2_heatmap.png", "3_overlay.png"):
            with Image.open(folder / png) as im:
                assert im.size == (shape[1], shape[0]) and im.mode == "RGB"
        report = json.loads((folder / "report.json").read_text())
        assert report["ok"] and report["layer"] == "last" and report["preprocessing"] == "rescale"
        assert abs(sum(report["probabilities"].values()) - 1) < 1e-5
        assert 0.0 <= report["model_input"]["min"] <= report["model_input"]["max"] <= 1.0


def test_cli_exit_codes(tmp_path, capsys):
    bundle = write_tiny_bundle(tmp_path / "bundle")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert main([str(bad), "--model", str(bundle), "--out", str(tmp_path / "o")]) == 1
    assert "FAIL" in capsys.readouterr().out
    good = write_png(tmp_path / "good.png", np.full((20, 20), 90, np.uint8))
    assert main([str(good), "--model", str(tmp_path / "missing")]) == 2
    assert main([str(good), "--model", str(bundle), "--class", "dragon"]) == 2


def test_cli_tta_flag_is_recorded(tmp_path, capsys):
    bundle = write_tiny_bundle(tmp_path / "bundle")
    image = write_png(tmp_path / "a.png", np.random.default_rng(1).integers(0, 256, (40, 40), dtype=np.uint8))
    out = tmp_path / "out"
    for flag, expected in (([], False), (["--tta"], True)):
        assert main([str(image), "--model", str(bundle), "--out", str(out / str(expected))] + flag) == 0
        report = json.loads((out / str(expected) / "a" / "report.json").read_text())
        assert report["tta"] is expected and report["ok"]


def _bundle_with(tmp_path, activation: str):
    """A tiny bundle whose first class has only negative Dense weights: its map is empty by construction
    (the CAM layer is a ReLU, so every channel is >= 0 and the weighted sum <= 0)."""
    from explain.bundle import from_model, save_bundle
    from synthetic import LABELS, gap_dense_cnn

    model = gap_dense_cnn(activation=activation)
    dense = model.get_layer("predictions")
    kernel, bias = dense.get_weights()
    kernel[:, 0] = -np.abs(kernel[:, 0]) - 0.1
    dense.set_weights([kernel, bias])
    bundle = from_model(model, labels=LABELS, preprocessing="rescale", target_layer="last")
    return save_bundle(bundle, tmp_path / activation), LABELS[0]


def test_an_empty_map_and_a_sigmoid_head_are_not_failures(tmp_path, capsys):
    image = write_png(tmp_path / "a.png", np.random.default_rng(3).integers(0, 256, (40, 40), dtype=np.uint8))
    for activation in ("softmax", "sigmoid"):
        bundle, empty_class = _bundle_with(tmp_path, activation)
        out = tmp_path / f"out-{activation}"
        assert main([str(image), "--model", str(bundle), "--out", str(out), "--class", empty_class]) == 0
        report = json.loads((out / "a" / "report.json").read_text())
        assert report["heatmap_empty"] and report["ok"], report
        # The sum check exists for softmax heads only, where it can fail.
        assert ("probabilities_sum_to_one" in report["checks"]) == (activation == "softmax")
        assert main([str(image), "--model", str(bundle), "--out", str(out)]) == 0  # predicted class


def test_a_constant_image_fails_the_input_check(tmp_path, capsys):
    bundle = write_tiny_bundle(tmp_path / "bundle")
    blank = write_png(tmp_path / "blank.png", np.full((30, 30), 128, np.uint8))
    out = tmp_path / "out"
    assert main([str(blank), "--model", str(bundle), "--out", str(out)]) == 1
    report = json.loads((out / "blank" / "report.json").read_text())
    assert report["checks"]["input_has_variation"] is False and not report["ok"]
    assert "input_has_variation" in capsys.readouterr().out


def test_folder_scan_finds_dicom_with_any_name(tmp_path):
    pytest.importorskip("pydicom")
    from explain.__main__ import collect
    from test_dicom import make_dicom

    folder = tmp_path / "scan"
    folder.mkdir()
    data = make_dicom(np.arange(400, dtype=np.uint16).reshape(20, 20))
    for name in ("a.dcm", "b.dicom", "IM0001"):
        (folder / name).write_bytes(data)
    (folder / "notes").write_text("not an image")
    (folder / "c.txt").write_text("not an image")
    assert [p.name for p in collect([str(folder)])] == ["IM0001", "a.dcm", "b.dicom"]
