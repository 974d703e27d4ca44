"""The model doctor (explain.doctor).

Synthetic part: tiny CNNs trained in seconds on shapes whose class, preprocessing
("rescale", grayscale) and label order (sorted folder names, as Keras' directory
loaders number them) are known, so every recommendation has a right answer.
Real part: a bare copy of the bundled default model with a wrong preprocessing
and rotated labels, diagnosed from 40 images of the clean test split.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from explain.bundle import default_bundle_path, from_model, load_bundle, save_bundle
from explain.io.decode import decode_image
from explain.doctor import ERROR, OK, diagnose
from explain.doctor.__main__ import main as doctor_main
from explain.doctor.layer import candidates, rejection
from explain.preprocess import InputSpec, preprocess
from synthetic import write_png

SIZE = 32
#: Folder names; sorted, so this is also the output order the models learn.
CLASSES = ["bar_h", "bar_v", "disk", "empty"]
PER_CLASS = 10
TRUE_SPEC = InputSpec((SIZE, SIZE), 3, "grayscale", "rescale")


def shapes(n: int, seed: int):
    """(n, SIZE, SIZE, 3) uint8 grey RGB images and int (n,) classes (index into CLASSES).

    A bright horizontal bar, vertical bar or disk at a random place on a noisy
    background, or background only: the class is in the shape, not the position.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    labels = np.arange(n) % len(CLASSES)
    images = rng.uniform(0, 60, (n, SIZE, SIZE))
    for image, k in zip(images, labels):
        cy, cx = rng.integers(8, SIZE - 8, 2)
        value = rng.uniform(170, 250)
        if k == 0:
            image[cy - 1:cy + 2, cx - 6:cx + 6] = value
        elif k == 1:
            image[cy - 6:cy + 6, cx - 1:cx + 2] = value
        elif k == 2:
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = value
    return np.repeat(images.astype(np.uint8)[..., None], 3, axis=-1), labels


def tiny_model() -> keras.Model:
    """conv -> BN -> ReLU -> pool -> conv('last') -> BN -> ReLU('relu2') -> GAP('gap') -> Dense('predictions')."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    # Momentum 0.8: the moving statistics must settle within a few hundred steps.
    x = keras.layers.ReLU(name="relu1")(keras.layers.BatchNormalization(momentum=0.8, name="bn1")(x))
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="last")(x)
    x = keras.layers.ReLU(name="relu2")(keras.layers.BatchNormalization(momentum=0.8, name="bn2")(x))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny_shapes")


_MODELS: dict[int, keras.Model] = {}


def trained(seed: int) -> keras.Model:
    """A tiny model trained (about 2 s) on 256 shapes with the pipeline's rescale/grayscale preprocessing."""
    if seed not in _MODELS:
        keras.utils.set_random_seed(seed)
        images, labels = shapes(256, seed)
        x = np.stack([preprocess(image, TRUE_SPEC) for image in images])
        model = tiny_model()
        model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        model.fit(x, labels, epochs=8, batch_size=32, verbose=0)
        _MODELS[seed] = model
    return _MODELS[seed]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """(labelled folder with one sub-folder per class, flat folder of the same 40 PNGs)."""
    root = tmp_path_factory.mktemp("doctor-images")
    rgb, labels = shapes(len(CLASSES) * PER_CLASS, seed=100)
    for i, (image, k) in enumerate(zip(rgb, labels)):
        (root / "labelled" / CLASSES[k]).mkdir(parents=True, exist_ok=True)
        (root / "flat").mkdir(exist_ok=True)
        write_png(root / "labelled" / CLASSES[k] / f"{i:02d}.png", image[..., 0])
        write_png(root / "flat" / f"{i:02d}.png", image[..., 0])
    return root / "labelled", root / "flat"


@pytest.fixture(scope="module")
def bare_model(tmp_path_factory):
    """The seed-0 model as a bare .keras file: settings and labels are only the user's claims."""
    path = tmp_path_factory.mktemp("doctor-model") / "tiny.keras"
    trained(0).save(path)
    return path


def by_check(diagnosis) -> dict:
    return {f.check: f for f in diagnosis.findings}


def test_wrong_preprocessing_is_found_exits_1_and_the_written_bundle_fixes_it(bare_model, images, tmp_path):
    labelled, _ = images
    out, fixed = tmp_path / "report.json", tmp_path / "fixed"
    code = doctor_main(["--model", str(bare_model), "--images", str(labelled), "--labels", ",".join(CLASSES),
                        "--preprocessing", "none", "--json", str(out), "--write-bundle", str(fixed)])
    assert code == 1
    report = json.loads(out.read_text())
    assert report["preprocessing"]["given"] == "none"
    assert report["preprocessing"]["recommended"] == "rescale"
    by = report["preprocessing"]["by_setting"]
    assert by["rescale/grayscale"]["accuracy"]["mean"] >= 0.9 > by["none/grayscale"]["accuracy"]["mean"] + 0.5
    assert by["tf/grayscale"]["same_as"] == "xception/grayscale"
    assert report["color_mode"]["recommended"] == "grayscale"
    assert report["labels"]["given"] == report["labels"]["recommended"] == CLASSES
    assert report["layer"]["recommended"] == "relu2"
    severities = {f["check"]: f["severity"] for f in report["findings"]}
    assert severities["preprocessing"] == ERROR and severities["labels"] == OK
    assert report["exit_code"] == 1

    bundle = load_bundle(fixed)
    assert (bundle.spec.preprocessing, bundle.labels, bundle.target_layer) == ("rescale", CLASSES, "relu2")
    rgb, truth = shapes(24, seed=7)
    probs = bundle.model.predict(np.stack([preprocess(image, bundle.spec) for image in rgb]), verbose=0)
    assert np.mean(probs.argmax(axis=1) == truth) >= 0.9


def test_permuted_labels_are_put_back_in_order(bare_model, images):
    labelled, _ = images
    rotated = CLASSES[1:] + CLASSES[:1]
    diagnosis = diagnose(bare_model, labelled, labels=rotated, preprocessing="rescale")
    found = by_check(diagnosis)
    assert diagnosis.report["labels"]["recommended"] == CLASSES
    assert found["labels"].severity == ERROR and ",".join(CLASSES) in found["labels"].message
    assert found["preprocessing"].severity == OK  # judged in the order that fits, so not misled
    assert diagnosis.exit_code == 1
    table = diagnosis.report["labels"]["confusion_matrix"]
    rows, columns = table["rows (folder class)"], table["columns (output unit)"]
    assert rows == CLASSES and columns == rotated
    agreeing = sum(n for r, row in zip(rows, table["counts"]) for c, n in zip(columns, row) if r == c)
    assert agreeing <= 2 and np.sum(table["counts"]) == len(CLASSES) * PER_CLASS


def test_labels_are_found_for_a_bare_file_given_nothing(bare_model, images):
    labelled, _ = images
    diagnosis = diagnose(bare_model, labelled)
    assert diagnosis.recommended() == {"labels": CLASSES, "preprocessing": "rescale",
                                       "color_mode": "grayscale", "layer": "relu2"}
    assert diagnosis.exit_code == 0  # nothing was claimed, so nothing is wrong


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_right_settings_raise_no_false_alarm(seed, images, tmp_path):
    labelled, flat = images
    folder = save_bundle(from_model(trained(seed), labels=CLASSES, preprocessing="rescale"), tmp_path / "b")
    with_labels = diagnose(folder, labelled)
    assert [f for f in with_labels.findings if f.severity == ERROR] == []
    assert with_labels.recommended()["preprocessing"] == "rescale"
    assert with_labels.recommended()["labels"] == CLASSES
    label_free = diagnose(folder, flat)
    assert by_check(label_free)["preprocessing"].severity == OK
    assert [f for f in label_free.findings if f.severity == ERROR] == []


def test_label_free_flags_a_grossly_wrong_preprocessing(bare_model, images):
    _, flat = images
    diagnosis = diagnose(bare_model, flat, labels=CLASSES, preprocessing="none")
    finding = by_check(diagnosis)["preprocessing"]
    assert finding.severity == ERROR and "BatchNorm shift" in finding.message
    assert diagnosis.report["preprocessing"]["evidence"] == "batchnorm"
    assert diagnosis.report["preprocessing"]["recommended"] == "rescale"
    wrong = diagnosis.report["preprocessing"]["by_setting"]["none/grayscale"]["label_free"]
    assert wrong["largest_class_share"] >= 0.9


def test_a_layer_without_spatial_dimensions_is_rejected_with_a_reason(bare_model, images):
    labelled, _ = images
    diagnosis = diagnose(bare_model, labelled, labels=CLASSES, preprocessing="rescale", layer="gap", limit=12)
    finding = by_check(diagnosis)["layer"]
    assert finding.severity == ERROR and diagnosis.exit_code == 1
    assert finding.message.startswith("gap has no spatial dimensions (gap is the GlobalAveragePooling2D layer")
    assert "Use --layer relu2: relu2 (16x16): randomisation" in finding.message
    assert diagnosis.report["layer"]["recommended"] == "relu2"
    measured = diagnosis.report["layer"]["measured"]
    assert measured["relu2"]["passes"] and measured["relu2"]["randomisation"] < 0.5
    assert {c["name"] for c in diagnosis.report["layer"]["candidates"]} >= {"conv1", "pool1", "relu2"}
    # The dense layer after it gets the same one-sentence reason, naming the pooling layer.
    dense = rejection(trained(0), "predictions")
    assert dense.startswith("predictions has no spatial dimensions (it comes after gap, which pools the map away)")


def test_candidates_and_reasons_reach_into_nested_models():
    inner = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3, name="c1"),
                              keras.layers.Conv2D(4, 3, strides=30, name="tiny_map")], name="base")
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), inner, keras.layers.GlobalAveragePooling2D(name="gap"),
                              keras.layers.Dense(2, name="head")])
    assert candidates(model)[0] == {"name": "base/c1", "map_size": [30, 30], "channels": 4}
    assert rejection(model, "base/c1") is None
    assert "1x1" in rejection(model, "tiny_map")
    assert "comes after gap" in rejection(model, "head")
    assert "No layer named 'nope'" in rejection(model, "nope")


def test_a_saturated_softmax_empties_tutorial_maps_but_not_logit_maps(bare_model):
    from explain.doctor.gradients import check_gradients
    from explain.engine import CamEngine
    from explain.model.layers import find_target_layer

    model = keras.saving.load_model(bare_model)
    head = model.get_layer("predictions")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 200.0, bias])  # confident enough to saturate float32's softmax
    rgb, _ = shapes(8, seed=3)
    x = np.stack([preprocess(image, TRUE_SPEC) for image in rgb])
    engine = CamEngine(model, find_target_layer(model, "relu2"), (SIZE, SIZE, 3))
    info, finding = check_gradients(engine, x)
    assert info["saturated"] >= 6 and info["empty_share"] <= 0.25
    assert info["softmax_gradient"]["median_gradient_factor"] < 1e-6
    assert "softmax-gradient Grad-CAM" in finding.message


# -- the bundled default model on the real data ------------------------------------------
DEFAULT = default_bundle_path()


@pytest.mark.skipif(not (DEFAULT / "bundle.json").is_file(), reason=f"no default bundle at {DEFAULT}")
def test_default_model_with_wrong_preprocessing_and_rotated_labels(tmp_path):
    from explain.evaluation.audit import spread
    from explain.evaluation.dataset import data_dir, read_split

    try:
        folder = data_dir()  # $BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    items = spread(read_split(folder, "test"), 40)
    for item in items:  # class folders of links: no dataset image is copied
        (tmp_path / "images" / item.label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "images" / item.label / Path(item.path).name).symlink_to(folder / item.path)
    bare = tmp_path / "model.keras"
    shutil.copy(DEFAULT / "model.keras", bare)
    truth = load_bundle(DEFAULT)
    rotated = truth.labels[1:] + truth.labels[:1]
    code = doctor_main(["--model", str(bare), "--images", str(tmp_path / "images"), "--labels", ",".join(rotated),
                        "--preprocessing", "xception", "--json", str(tmp_path / "r.json"),
                        "--write-bundle", str(tmp_path / "fixed")])
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 1
    assert report["preprocessing"]["recommended"] == truth.spec.preprocessing == "rescale"
    assert report["color_mode"]["recommended"] == truth.spec.color_mode
    assert report["labels"]["recommended"] == truth.labels
    assert report["layer"]["recommended"] == truth.target_layer
    severities = {f["check"]: f["severity"] for f in report["findings"]}
    assert severities["preprocessing"] == severities["labels"] == ERROR
    assert severities["layer"] == severities["color_mode"] == OK

    files = sorted((tmp_path / "images").rglob("*.jpg"))
    fixed = load_bundle(tmp_path / "fixed")
    assert (fixed.spec, fixed.labels, fixed.target_layer) == (truth.spec, truth.labels, truth.target_layer)
    assert predictions(fixed, files) == predictions(truth, files)


def predictions(bundle, files) -> list[str]:
    """The class the bundle's model predicts for each file through the pipeline's own decode + preprocess."""
    x = np.stack([preprocess(decode_image(f), bundle.spec) for f in files])
    return [bundle.labels[k] for k in bundle.model.predict(x, verbose=0).argmax(axis=1)]


def test_label_free_without_batchnorm_falls_back_to_the_spread_of_predictions():
    from types import SimpleNamespace

    from explain.doctor.sample import Sample
    from explain.doctor.settings import Setting, evaluate

    n, rng = 40, np.random.default_rng(0)
    spread = np.eye(4)[np.arange(n) % 4] * 0.9 + 0.025
    collapsed = np.tile([0.97, 0.01, 0.01, 0.01], (n, 1))
    results = {"rescale/grayscale": Setting("rescale", "grayscale", spread, None),
               "none/grayscale": Setting("none", "grayscale", collapsed, None)}
    sample = Sample(Path("."), [Path("x")] * n, [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)] * n)
    for given, severity in (("none", "WARNING"), ("rescale", OK)):
        claims = SimpleNamespace(preprocessing=given, color_mode="grayscale", labels=None, channels=3)
        out = evaluate(results, sample, claims)
        assert out["evidence"] == "predictions" and out["recommended"] == ("rescale", "grayscale")
        assert out["findings"][0].severity == severity, out["findings"][0]


def test_resampled_balanced_accuracy_follows_the_shared_metric():
    from explain.metrics.classification import balanced_accuracy, confusion_matrix
    from explain.doctor.settings import resampled_balanced_accuracy

    rng = np.random.default_rng(1)
    truth, pred = rng.integers(0, 4, (5, 30)), rng.integers(0, 4, (5, 30))
    truth[0] = np.where(truth[0] == 3, 0, truth[0])  # a resample without class 3
    expected = [balanced_accuracy(confusion_matrix(t, p, 4)) for t, p in zip(truth, pred)]
    assert np.allclose(resampled_balanced_accuracy(truth, pred), expected)
