"""Bundles validate up front and say how to fix what is wrong."""

import json
import warnings

import keras
import numpy as np
import pytest

from explain.bundle import BUNDLE_JSON, MODEL_FILE, load_bundle, main as bundle_main
from explain.errors import BundleError
from synthetic import LABELS, gap_dense_cnn, write_tiny_bundle


@pytest.fixture()
def bundle_dir(tmp_path):
    return write_tiny_bundle(tmp_path / "tiny")


def test_round_trip(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert bundle.labels == LABELS
    assert bundle.spec.size == (32, 32) and bundle.spec.channels == 3
    assert bundle.spec.preprocessing == "rescale" and bundle.target_layer == "last"
    assert bundle.metadata["note"] == "random test model"
    assert (bundle_dir / "model.weights.h5").is_file()


def _edit(bundle_dir, **changes):
    path = bundle_dir / BUNDLE_JSON
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("changes, message", [
    ({"labels": ["a", "b", "c"]}, "outputs 4 classes but 3 labels"),
    ({"labels": ["a", "a", "b", "c"]}, "duplicates"),
    ({"preprocessing": "imagenet"}, "'preprocessing' must be one of"),
    ({"input_size": [64, 64]}, "input_size \\[64, 64\\] but model"),
    ({"target_layer": "nope"}, "No layer named 'nope'"),
    ({"temperature": -1}, "temperature"),
    ({"format": "other"}, "'format' must be"),
])
def test_invalid_bundles_are_rejected_with_a_reason(bundle_dir, changes, message):
    _edit(bundle_dir, **changes)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_dir)


def test_missing_pieces(tmp_path, bundle_dir):
    with pytest.raises(BundleError, match="No model at"):
        load_bundle(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="bundle.json is missing"):
        load_bundle(tmp_path / "empty")
    (bundle_dir / MODEL_FILE).unlink()
    with pytest.raises(BundleError, match="model file"):
        load_bundle(bundle_dir)


def test_the_doctor_refuses_what_the_bundle_refuses(tmp_path):
    """One set of checks: the doctor loads through the bundle's own (locate, image_classifier_shapes)."""
    from explain.doctor.claims import load_claims

    (tmp_path / "notes.txt").write_text("not a model")
    dense_only = tmp_path / "dense.keras"
    keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="softmax")]).save(dense_only)
    bare = {"labels": LABELS, "preprocessing": "rescale"}
    for load in (load_bundle, load_claims):
        for source, message in [(tmp_path / "absent", "No model at"), (tmp_path / "notes.txt", "expected a bundle"),
                                (tmp_path, "bundle.json is missing"), (dense_only, "image batch")]:
            with pytest.raises(BundleError, match=message):
                load(source, **bare)


def test_bare_model_file_needs_labels_and_preprocessing(tmp_path):
    path = tmp_path / "m.keras"
    gap_dense_cnn().save(path)
    with pytest.raises(BundleError, match="labels and preprocessing"):
        load_bundle(path)
    # Three input channels fit grey slices and colour images alike: the assumption is said aloud.
    with pytest.warns(UserWarning, match="assuming 'grayscale'"):
        bundle = load_bundle(path, labels=LABELS, preprocessing="xception")
    assert bundle.spec.preprocessing == "xception" and bundle.target_layer == "auto"
    assert bundle.spec.color_mode == "grayscale"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # given explicitly, or one channel: nothing to assume
        assert load_bundle(path, labels=LABELS, preprocessing="rescale", color_mode="rgb").spec.color_mode == "rgb"
        grey = tmp_path / "grey.keras"
        gap_dense_cnn(channels=1).save(grey)
        assert load_bundle(grey, labels=LABELS, preprocessing="rescale").spec.color_mode == "grayscale"


def test_models_that_cannot_be_explained(tmp_path):
    from explain.bundle import from_model

    dense_only = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="softmax")])
    with pytest.raises(BundleError, match="image batch"):
        from_model(dense_only, labels=LABELS, preprocessing="rescale")
    any_size = keras.Model(*_any_size_model())
    with pytest.raises(BundleError, match="set 'input_size'"):
        from_model(any_size, labels=LABELS, preprocessing="rescale")
    assert from_model(any_size, labels=LABELS, preprocessing="rescale", input_size=(40, 40)).spec.size == (40, 40)


def _any_size_model():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return inputs, keras.layers.Dense(4, activation="softmax")(x)


def test_bundle_command_wraps_a_bare_model(tmp_path, capsys):
    path = tmp_path / "m.keras"
    gap_dense_cnn().save(path)
    out = tmp_path / "wrapped"
    code = bundle_main(["--model", str(path), "--labels", ",".join(LABELS), "--preprocessing", "rescale",
                        "--out", str(out)])
    assert code == 0
    bundle = load_bundle(out)
    x = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(bundle.model.predict(x, verbose=0),
                               keras.saving.load_model(path).predict(x, verbose=0), atol=1e-6)
    assert bundle_main(["--model", str(path), "--out", str(tmp_path / "x")]) == 2
    assert "labels and preprocessing" in capsys.readouterr().err
