"""Lesion-guided fine-tuning: the loss terms on known answers, the training map equals the app's
Grad-CAM, lesion removal, class balancing, and a tiny run end to end with resume."""

import json
import math
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from explain.bundle import load_bundle
from explain.engine import CamEngine
from explain.model.layers import find_target_layer
from synthetic import LABELS, gap_dense_cnn, write_dataset, write_tiny_bundle
from training import lesion_finetune as L
from training import lesion_record as R


def test_box_coverage_has_fractional_edges():
    # A 100 x 50 (W x H) image at a 20 x 10 input: 0.2 input px per original px.
    cover = L.box_coverage([12, 0, 27, 10], (100, 50), (10, 20))
    assert cover.shape == (10, 20) and cover.dtype == np.float32
    np.testing.assert_allclose(cover[0, 1:7], [0, 0.6, 1, 1, 0.4, 0], atol=1e-6)
    np.testing.assert_allclose(cover[:, 3], [1, 1] + [0] * 8, atol=1e-6)
    assert cover.sum() == pytest.approx(15 * 10 * 0.2 * 0.2)


def test_loss_terms_on_known_answers():
    mask = tf.constant([[[0.0, 1.0], [0.0, 0.0]]])
    cam = tf.constant([[[1.0, 3.0], [0.0, 0.0]]])
    assert float(L.share_inside(cam, mask)[0]) == pytest.approx(0.75)
    # Softmax of S over the cells: (1, 3, 1, 1) / 6, so half the mass is in the box.
    signed = tf.constant([[[0.0, math.log(3.0)], [0.0, 0.0]]])
    assert float(L.point_loss(signed, mask)[0]) == pytest.approx(math.log(2.0), abs=1e-5)
    assert float(L.evidence_loss(signed, mask)[0]) == pytest.approx(0.0)
    weak = tf.constant([[[5.0, 0.4], [5.0, 5.0]]])  # strong evidence only outside the box
    assert float(L.evidence_loss(weak, mask)[0]) == pytest.approx(0.6, abs=1e-6)


def test_removal_loss_and_its_margin():
    probs = tf.constant([[0.75, 0.25], [0.4, 0.6]])
    onehot = tf.constant([[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(L.removal_loss(probs, onehot).numpy(), [math.log(4.0), -math.log(0.6)], rtol=1e-5)
    # margin 0.5: p = 0.75 costs log 4 - log 2; p = 0.4 is under the margin and free
    np.testing.assert_allclose(L.removal_loss(probs, onehot, 0.5).numpy(), [math.log(2.0), 0.0], atol=1e-5)


def test_training_map_is_the_apps_gradcam():
    keras.utils.set_random_seed(3)
    model = gap_dense_cnn()
    x = np.random.default_rng(0).random((3, 32, 32, 3)).astype(np.float32)
    classes = np.array([1, 3, 0])
    acts = keras.Model(model.input, model.get_layer("last").output)(x)
    cam = tf.nn.relu(L.class_map(acts, model.layers[-1].kernel, classes)).numpy()
    result = CamEngine(model, find_target_layer(model), (32, 32, 3)).explain(x, classes)
    assert cam.shape == result.maps.shape == (3, 16, 16)
    peak = cam.max(axis=(1, 2), keepdims=True)
    np.testing.assert_array_equal(result.empty, peak[:, 0, 0] == 0)  # no positive evidence: empty map
    assert (peak > 0).sum() >= 2, "the oracle needs maps with positive evidence"
    np.testing.assert_allclose(np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0), result.maps, atol=1e-5)


def test_remove_lesion_fills_the_box_from_its_surroundings():
    image = np.full((32, 32, 3), 100.0, np.float32)
    image[12:18, 12:18] = 250.0
    mask = np.zeros((32, 32), np.float32)
    mask[12:18, 12:18] = 1.0
    out = L.remove_lesion(image, mask)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.abs(out[12:18, 12:18] - 100.0).max() < 10  # the bright square is gone
    np.testing.assert_array_equal(out[:9], image[:9])  # away from the box nothing changes
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_pick_boxed_balances_classes_on_request():
    labels = np.array([0] * 90 + [1] * 10)
    rng = np.random.default_rng(0)
    plain = labels[L.pick_boxed(rng, labels, 4000, balance=False)]
    balanced = labels[L.pick_boxed(rng, labels, 4000, balance=True)]
    assert 0.07 < plain.mean() < 0.13
    assert 0.46 < balanced.mean() < 0.54


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A synthetic dataset, a random GAP -> Dense bundle, and a box file of train images."""
    root = tmp_path_factory.mktemp("lesion")
    data = write_dataset(root / "data")
    bundle = write_tiny_bundle(root / "bundle")
    # Class k's bar lies at rows 8k..8k+12, columns 10..30 of the 48 px image (see write_dataset).
    images = {f"Training/{label}/img_{i:02d}.png": {"box": [10, 8 * k, 30, 8 * k + 12], "confidence": "high"}
              for k, label in enumerate(LABELS[:3]) for i in range(4)}
    boxes = root / "boxes.json"
    boxes.write_text(json.dumps({"annotator": "test", "images": images}))
    return data, bundle, boxes


def _common(bundle, boxes, data, tmp_path, *extra):
    return ["--from", str(bundle), "--boxes", str(boxes), "--out", str(tmp_path / "out"),
            "--run-dir", str(tmp_path / "run"), "--data", str(data), "--cache", "", "--steps", "2",
            "--batch-size", "4", "--boxed-per-batch", "2", "--holdout-share", "0.3", "--removal-weight", "0.5",
            "--counterfactual-weight", "1", "--control-weight", "1", "--balance-classes", *extra]


def test_finetune_runs_records_every_term_and_keeps_earlier_stages(tiny, tmp_path):
    data, bundle, boxes = tiny
    summary = tmp_path / "candidates.json"
    assert L.main(_common(bundle, boxes, data, tmp_path, "--epochs", "2", "--summary", str(summary))) == 0
    meta = load_bundle(tmp_path / "out").metadata["lesion_finetune"]
    assert [h["epoch"] for h in meta["history"]] == [1, 2]
    held = [k for k in sorted(json.loads(boxes.read_text())["images"]) if R.hash_fraction(k) < 0.3]
    assert meta["holdout"]["held"] == held and meta["boxes_held_out"] == len(held) and len(held) > 0
    assert meta["boxes_used"] + len(held) == 12
    assert meta["from"]["path"] == str(bundle) and len(meta["from"]["weights_sha256"]) == 64
    last = meta["history"][-1]
    for term in L.TERMS:
        assert math.isfinite(last[term]), term
    assert last["removal_loss"] > 0 and last["counterfactual_loss"] > 0
    assert 0 <= last["held_p_true_lesion_removed"] <= 1 and "val_balanced_accuracy" in last
    record = R.read_summary(summary)["out"]
    assert record["status"] == "done" and record["history"] == meta["history"]
    assert record["settings"] == meta["settings"] and record["settings"]["counterfactual_weight"] == 1.0
    # The commit is the checkout's own HEAD, asked of git here independently (None outside a git checkout).
    head = subprocess.run(["git", "-C", str(Path(L.__file__).resolve().parents[1]), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip() or None
    assert record["code"]["commit"] == head and record["hardware"]["backend"] == keras.backend.backend()
    # Fine-tuned again, the bundle keeps the first stage's record and its hold-out share.
    again = ["--from", str(tmp_path / "out"), "--boxes", str(boxes), "--out", str(tmp_path / "again"),
             "--run-dir", str(tmp_path / "run2"), "--data", str(data), "--cache", "", "--steps", "1",
             "--epochs", "1", "--batch-size", "4", "--boxed-per-batch", "2"]
    with pytest.raises(SystemExit, match="must be 0.3"):
        L.main(again)
    assert L.main(again + ["--holdout-share", "0.3"]) == 0
    twice = load_bundle(tmp_path / "again").metadata
    assert twice["lesion_finetune_earlier"] == [meta]
    assert twice["lesion_finetune"]["holdout"]["held"] == held
    # The second stage knows which of its held-out boxes the first trained on: none.
    assert twice["lesion_finetune"]["holdout"]["trained_by_earlier_stage"] == []


def test_an_interrupted_run_equals_an_uninterrupted_one(tiny, tmp_path, capsys):
    data, bundle, boxes = tiny
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert L.main(_common(bundle, boxes, data, whole, "--epochs", "2")) == 0
    assert L.main(_common(bundle, boxes, data, parts, "--epochs", "2", "--stop-after", "1")) == 0
    assert not (parts / "out").exists()  # stopped: no bundle yet
    assert L.main(_common(bundle, boxes, data, parts, "--epochs", "2")) == 0
    assert "resuming" in capsys.readouterr().out
    a, b = load_bundle(whole / "out"), load_bundle(parts / "out")
    for x, y in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_allclose(x, y, atol=1e-5)
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in a.metadata["lesion_finetune"]["history"]]
    resumed = [{k: v for k, v in h.items() if k != "seconds"} for h in b.metadata["lesion_finetune"]["history"]]
    assert len(resumed) == len(history)
    for h, r in zip(history, resumed):
        for key, value in h.items():
            assert r[key] == pytest.approx(value, abs=1e-4), key
    assert [r["epoch"] for r in b.metadata["lesion_finetune"]["resumes"]] == [1]


def test_resume_refuses_changed_settings(tiny, tmp_path):
    data, bundle, boxes = tiny
    assert L.main(_common(bundle, boxes, data, tmp_path, "--epochs", "2", "--stop-after", "1")) == 0
    with pytest.raises(SystemExit, match="epochs: 2 -> 3"):
        L.main(_common(bundle, boxes, data, tmp_path, "--epochs", "3"))
    with pytest.raises(SystemExit, match="lr"):
        L.main(_common(bundle, boxes, data, tmp_path, "--epochs", "2", "--lr", "1e-3"))


def test_finetune_refuses_boxes_outside_the_train_split(tiny, tmp_path):
    data, bundle, _ = tiny
    boxes = tmp_path / "test_boxes.json"
    boxes.write_text(json.dumps({"annotator": "test", "images": {
        "Training/glioma/img_13.png": {"box": [10, 0, 30, 12], "confidence": "high"}}}))
    with pytest.raises(SystemExit, match="img_13.png is not a train image"):
        L.main(["--from", str(bundle), "--boxes", str(boxes), "--out", str(tmp_path / "out"),
                "--data", str(data), "--cache", "", "--epochs", "1", "--steps", "1"])


def test_pack_replaces_the_data_folder(tiny, tmp_path):
    data, bundle, boxes = tiny
    pack = tmp_path / "pack.npz"
    common = ["--from", str(bundle), "--boxes", str(boxes), "--cache", "", "--epochs", "1", "--steps", "1",
              "--batch-size", "4", "--boxed-per-batch", "2", "--holdout-share", "0"]
    assert L.main(common + ["--data", str(data), "--write-pack", str(pack), "--out", str(tmp_path / "x")]) == 0
    assert not (tmp_path / "x").exists()  # writing the pack trains nothing
    folder = L.load_data(L.parse_args(common + ["--data", str(data), "--out", "x"]), load_bundle(bundle).spec, LABELS)
    packed = L.read_pack(pack)
    np.testing.assert_array_equal(packed["pixels"], folder["pixels"])
    assert packed["train_paths"] == folder["train_paths"] and set(packed["coverage"]) == set(folder["coverage"])
    out = tmp_path / "out"
    assert L.main(common + ["--pack", str(pack), "--data", str(tmp_path / "nowhere"), "--out", str(out),
                            "--run-dir", str(tmp_path / "run")]) == 0
    assert load_bundle(out).metadata["lesion_finetune"]["boxes_used"] == 12
