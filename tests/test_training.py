"""Training code on a tiny synthetic dataset: same tensors as the app, runs end to end, resumes."""

import json

import numpy as np
import pytest

from explain.bundle import load_bundle
from explain.io.decode import decode_image
from explain.preprocess import InputSpec, preprocess
from synthetic import LABELS, write_dataset
from training import data as D
from training.train import main as train_main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"))


def test_training_batches_equal_app_preprocessing(dataset, tmp_path):
    spec = InputSpec(size=(32, 32), channels=3, color_mode="grayscale", preprocessing="rescale")
    items = D.read_split(dataset, "val")
    pixels = D.load_pixels(dataset, items, spec, tmp_path / "cache")
    cached = D.load_pixels(dataset, items, spec, tmp_path / "cache")  # second call reads the cache
    np.testing.assert_array_equal(pixels, cached)
    labels = [LABELS.index(i.label) for i in items]
    x, y = D.Batches(pixels, labels, spec, 4, batch_size=len(items))[0]
    app_inputs = np.stack([preprocess(decode_image(dataset / i.path), spec) for i in items])
    np.testing.assert_array_equal(x, app_inputs)
    np.testing.assert_array_equal(y.argmax(1), labels)


def test_augmentation_changes_images_but_keeps_range(dataset):
    spec = InputSpec(size=(32, 32))
    items = D.read_split(dataset, "train")[:8]
    pixels = D.load_pixels(dataset, items, spec, None)
    x, _ = D.Batches(pixels, [0] * 8, spec, 4, batch_size=8, training=True, seed=1)[0]
    plain = preprocess(decode_image(dataset / items[0].path), spec)
    assert x.shape == (8, 32, 32, 3) and x.min() >= 0 and x.max() <= 1
    assert not any(np.array_equal(xi, plain) for xi in x)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # grey replicated after augmentation


def test_train_end_to_end_and_resume(dataset, tmp_path, capsys):
    out, run = tmp_path / "bundle", tmp_path / "run"
    common = ["--arch", "compact", "--size", "32", "--width", "8", "--batch-size", "8",
              "--data", str(dataset), "--cache", str(tmp_path / "cache"), "--run-dir", str(run),
              "--out", str(out)]
    assert train_main(common + ["--epochs", "1"]) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 1
    assert train_main(common + ["--epochs", "2"]) == 0
    log = capsys.readouterr().out
    assert "resuming" in log and "epoch 2/2" in log
    bundle = load_bundle(out)
    assert bundle.labels == LABELS and bundle.spec.size == (32, 32)
    assert bundle.spec.color_mode == "grayscale" and bundle.spec.preprocessing == "rescale"
    assert bundle.target_layer == "final_act"
    meta = bundle.metadata
    assert meta["epochs_run"] == 2 and len(meta["history"]) == 2
    assert len(meta["data"]["fingerprint_sha256"]) == 64 and meta["data"]["train_images"] == 40


def test_evaluate_end_to_end_and_recalibration_is_idempotent(dataset, tmp_path, capsys):
    from training.evaluate import main as evaluate_main

    out = tmp_path / "bundle"
    assert train_main(["--arch", "compact", "--size", "32", "--width", "8", "--batch-size", "8",
                       "--data", str(dataset), "--cache", "", "--run-dir", str(tmp_path / "run"),
                       "--out", str(out), "--epochs", "1"]) == 0
    evaluate = ["--model", str(out), "--data", str(dataset), "--cache", "", "--calibrate",
                "--write-metrics", "--bootstrap", "50", "--no-published"]
    reports = []
    for _ in range(2):
        assert evaluate_main(evaluate) == 0
        reports.append(json.loads((out / "eval" / "metrics_test.json").read_text()))
    first, second = reports
    # The second run starts from the temperature the first one stored, yet
    # reports the same calibration against the raw model.
    assert first["calibration"]["temperature_before"] == 1.0
    assert second["calibration"] == first["calibration"]
    assert second["metrics"] == first["metrics"] and first["n_images"] == 8
    config = json.loads((out / "bundle.json").read_text())
    assert config["temperature"] == pytest.approx(first["calibration"]["temperature"])
    assert config["metadata"]["evaluation"]["test"]["metrics"] == first["metrics"]
    for name in ("confusion_test.png", "reliability_test.png"):
        assert (out / "eval" / name).stat().st_size > 0
    assert "calibration: T 1.0000 ->" in capsys.readouterr().out
