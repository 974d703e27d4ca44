"""Lesion metrics and the annotation format, on cases whose answers are known."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from explain.evaluation.lesions import box_iou, box_mask, merge_annotations, read_figshare_mask, read_lesions, Lesion
from explain.metrics.localisation import (bright_blob_map, box_energy, box_energy_ratio, lesion_reliance, lesion_scores,
                                  pointing_game, top_iou, uniform_map)

SHAPE = (100, 120)


def gaussian(centre, sigma=4.0, shape=SHAPE):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def test_pointing_game_and_its_tolerance():
    mask = box_mask([40, 30, 60, 50], SHAPE)           # x 40..59, y 30..49
    assert pointing_game(gaussian((40, 50)), mask) == 1.0
    outside = gaussian((40, 65))                       # peak 6 px right of the box's last column
    assert pointing_game(outside, mask, 0) == 0.0
    assert pointing_game(outside, mask, 8) == 1.0
    assert pointing_game(gaussian((40, 75)), mask, 8) == 0.0   # 16 px away
    flat = np.zeros(SHAPE, np.float32)
    flat[45, 45] = flat[5, 5] = 1.0                    # a tie: one of the two maxima is inside
    assert pointing_game(flat, mask) == 0.5
    assert pointing_game(uniform_map(SHAPE), mask) == pytest.approx(400 / 12000)  # the box's share


def test_box_energy_and_ratio_against_analytic_values():
    mask = box_mask([0, 0, 60, 100], SHAPE)            # left half of the image
    assert box_energy(uniform_map(SHAPE), mask) == pytest.approx(0.5)
    assert box_energy_ratio(uniform_map(SHAPE), mask) == pytest.approx(1.0)
    half = np.zeros(SHAPE, np.float32)
    half[:, :60] = 1.0
    assert box_energy(half, mask) == 1.0 and box_energy_ratio(half, mask) == pytest.approx(2.0)
    assert box_energy(np.zeros(SHAPE, np.float32), mask) == 0.0


def test_top_fraction_iou_on_a_constructed_case():
    heat = np.zeros(SHAPE, np.float32)
    heat[:10, :60] = 1.0                               # exactly 5 % of 12000 pixels
    mask = box_mask([0, 0, 30, 10], SHAPE)             # half of those pixels
    assert top_iou(heat, mask, 0.05) == pytest.approx(300 / 600)
    assert top_iou(heat, box_mask([0, 0, 60, 10], SHAPE), 0.05) == 1.0
    scores = lesion_scores(heat, mask)
    assert set(scores) == {"pointing_0px", "pointing_8px", "box_energy", "box_energy_ratio",
                           "iou_top5", "iou_top10", "iou_top20"}


def test_bright_blob_peaks_on_the_bright_region():
    rgb = np.full((*SHAPE, 3), 20, np.uint8)
    rgb[60:70, 90:100] = 250
    blob = bright_blob_map(rgb)
    assert np.unravel_index(np.argmax(blob), SHAPE) in {(y, x) for y in range(60, 70) for x in range(90, 100)}
    assert blob.min() == 0.0 and blob.max() == 1.0


def test_box_iou_and_merge(tmp_path):
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    a = {"g/1.jpg": Lesion((10, 10, 30, 30), "high"), "g/2.jpg": Lesion((0, 0, 10, 10), "high"),
         "g/3.jpg": Lesion(None, "low"), "p/4.jpg": Lesion(None, "low"), "p/5.jpg": Lesion((0, 0, 4, 4), "low")}
    b = {"g/1.jpg": Lesion((12, 10, 32, 30), "medium"), "g/2.jpg": Lesion((5, 0, 15, 10), "high"),
         "g/3.jpg": Lesion((1, 1, 5, 5), "low"), "p/4.jpg": Lesion(None, "low")}
    merged, report = merge_annotations(a, b)
    assert merged["g/1.jpg"].box == (11, 10, 31, 30) and merged["g/1.jpg"].confidence == "medium"
    assert merged["p/4.jpg"].box is None and "g/2.jpg" not in merged and "g/3.jpg" not in merged
    assert report["overall"]["images"] == 4 and report["overall"]["both_boxed"] == 2
    assert report["overall"]["share_iou_at_least_0.5"] == 0.5
    assert {d["image"] for d in report["disagreements"]} == {"g/2.jpg", "g/3.jpg"}
    assert "p/5.jpg" not in merged
    kept, same_report = merge_annotations(a, b, keep_single=True)
    assert kept["p/5.jpg"].box == (0, 0, 4, 4) and kept["p/5.jpg"].note.startswith("one annotator (A)")
    assert {k: v for k, v in kept.items() if k != "p/5.jpg"} == merged and same_report == report


@pytest.mark.parametrize("entry, words", [
    ({"box": [5, 0, 3, 9], "confidence": "high"}, "x0 < x1"),
    ({"box": [0, 0, 3], "confidence": "high"}, "box must be"),
    ({"box": [-1, 0, 3, 4], "confidence": "high"}, "0 <= x0"),
    ({"box": [0, 0, 3, 4], "confidence": "sure"}, "confidence must be"),
])
def test_malformed_entries_name_the_file_and_key(tmp_path, entry, words):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"images": {"Testing/glioma/x.jpg": entry}}))
    with pytest.raises(ValueError, match=words) as info:
        read_lesions(path)
    assert "bad.json" in str(info.value) and "Testing/glioma/x.jpg" in str(info.value)


def test_figshare_mat_mask_is_read_untransposed(tmp_path):
    mask = np.zeros((6, 4), np.uint8)                  # 6 rows, 4 columns: not square on purpose
    mask[1:3, 2:4] = 1
    path = tmp_path / "1.mat"
    with h5py.File(path, "w") as f:                    # MATLAB v7.3 writes column-major: h5py sees the transpose
        f.create_group("cjdata").create_dataset("tumorMask", data=mask.T)
    assert np.array_equal(read_figshare_mask(path, (6, 4)), mask.astype(bool))
    with pytest.raises(ValueError, match="mask is"):
        read_figshare_mask(path, (4, 6))
    lesion = Lesion(None, "high", mat="1.mat")
    assert np.array_equal(lesion.mask_array((6, 4), tmp_path), mask.astype(bool))


def test_lesion_reliance_drops_only_when_the_evidence_is_in_the_box():
    x = np.zeros((32, 32, 1), np.float32)
    x[21, 21] = 1.0

    def predict(batch):  # class 1's probability is the image's brightest pixel
        top = batch.reshape(len(batch), -1).max(axis=1)
        return np.stack([1.0 - top, top], axis=1)

    on, off = np.zeros((64, 64), bool), np.zeros((64, 64), bool)  # masks at the original's 2x resolution
    on[38:48, 38:48] = True   # input pixels 19..23: holds the bright pixel
    off[0:16, 0:16] = True
    hit = lesion_reliance(x, on, predict, 1)
    assert hit["p_true"] == 1.0 and hit["p_true_lesion_blurred"] < 0.3
    assert hit["lesion_drop"] == pytest.approx(1.0 - hit["p_true_lesion_blurred"]) and hit["leaves_class"] == 1.0
    miss = lesion_reliance(x, off, predict, 1)
    assert miss == {"p_true": 1.0, "p_true_lesion_blurred": 1.0, "lesion_drop": 0.0, "leaves_class": 0.0}
