"""The diagnostic CLI writes the three images and a report, and fails loudly."""

import json

import numpy as np
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
