"""The annotation renderer: grid and box pictures, the peaks picture, and it never writes inside the repo."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthetic import LABELS, write_dataset, write_tiny_bundle

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("render", ROOT / "annotations" / "render.py")
render = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    data = write_dataset(root / "data", per_class=13)
    # Class k's bar lies at rows 8k..8k+12, columns 10..30 of the 48 px test images.
    images = {f"Training/{label}/img_12.png": {"box": [10, 8 * k, 30, 8 * k + 12], "confidence": "high"}
              for k, label in enumerate(LABELS) if label != "notumor"}
    lesions = root / "lesions.json"
    lesions.write_text(json.dumps({"annotator": "test", "images": images}))
    return data, lesions, write_tiny_bundle(root / "bundle", size=48)


def test_peaks_picture_has_a_row_per_class_and_marks_box_and_peak(annotated, tmp_path):
    data, lesions, bundle = annotated
    out = tmp_path / "peaks"
    assert render.main(["peaks", "--data", str(data), "--lesions", str(lesions), "--model", str(bundle),
                        "--per-class", "2", "--out", str(out)]) == 0
    picture = np.asarray(Image.open(out / "peaks.png").convert("RGB"))
    assert picture.shape == (3 * 256, 2 * 256, 3)  # glioma, meningioma, pituitary; one image each + padding
    first = picture[:256, :256]
    assert (np.all(first == (0, 255, 0), axis=-1)).sum() > 100  # the green box
    assert np.all(picture[:256, 256:] == 0)  # the missing second image is left black


def test_boxes_are_drawn_and_the_repository_is_refused(annotated, tmp_path):
    data, lesions, _ = annotated
    with pytest.raises(SystemExit, match="inside the repository"):
        render.main(["boxes", "--data", str(data), "--lesions", str(lesions), "--out", str(ROOT / "tmp-render")])
    assert not (ROOT / "tmp-render").exists()
    assert render.main(["boxes", "--data", str(data), "--lesions", str(lesions), "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.png"))) == 3
