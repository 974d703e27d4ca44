"""The input check: scoring against known answers, the shipped reference of the default bundle,
bundles without one (or with one for other weights), and the fitting command on a user's own model."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from synthetic import write_dataset, write_tiny_bundle

from explain.bundle import load_bundle
from explain.checks.input_check import NO_CHECK, InputCheck, load_input_check
from explain.evaluation.fit_input_check import fit_reference, main as fit_main, threshold_for
from explain.pipeline import Explainer
from explain.report import check_line, report

ROOT = Path(__file__).resolve().parents[1]
NON_MRI = sorted((ROOT / "tests" / "data" / "non_mri").glob("*.png"))
EXAMPLES = sorted((ROOT / "examples").glob("*.jpg"))


def test_score_is_the_distance_to_the_nearest_centre():
    check = InputCheck(whitener=np.eye(2, dtype=np.float32), centres=np.array([[0, 0], [10, 0]], np.float32),
                       threshold=2.0)
    assert check.score(np.array([[3, 4], [10, 1]])) == pytest.approx([5.0, 1.0])
    verdicts = check.verdicts(np.array([[3, 4], [10, 1]]))
    assert [v["in_distribution"] for v in verdicts] == [False, True]
    assert verdicts[0] == {"in_distribution": False, "score": 5.0, "threshold": 2.0, "method": "mahalanobis"}


def test_a_coloured_upload_is_flagged_by_a_grayscale_models_check_whatever_its_features():
    check = InputCheck(np.eye(2, dtype=np.float32), np.zeros((1, 2), np.float32), threshold=2.0, colour_limit=0.02)
    grey = np.full((10, 10, 3), 120, np.uint8)
    tinted = grey.copy()
    tinted[..., 2] = 135  # a slight tint, like some of the dataset's slices: saturation 0.11
    coloured = grey.copy()
    coloured[:2, :, 0] = 250  # a fifth of the pixels clearly red
    verdicts = check.verdicts(np.zeros((3, 2)), [grey, tinted, coloured])
    assert [v["in_distribution"] for v in verdicts] == [True, True, False]
    assert [v["colour_share"] for v in verdicts] == [0.0, 0.0, 0.2]
    assert verdicts[0]["method"] == "mahalanobis+colour"


def test_fitted_reference_matches_scikit_learns_mahalanobis():
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(0)
    classes = np.arange(400) % 2
    features = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5)) + 4.0 * classes[:, None]
    whitener, centres = fit_reference(features, classes, 2)
    means = np.stack([features[classes == k].mean(0) for k in range(2)])
    lw = LedoitWolf(assume_centered=True).fit(features - means[classes])
    probe = rng.normal(size=(6, 5))
    expected = np.sqrt(np.min([lw.mahalanobis(probe - m) for m in means], axis=0))
    assert InputCheck(whitener, centres, 1.0).score(probe) == pytest.approx(expected, rel=1e-4)


def test_threshold_lets_the_quantile_of_every_class_pass():
    scores = np.r_[np.arange(100.0), 50 + np.arange(100.0)]
    classes = np.r_[np.zeros(100, int), np.ones(100, int)]
    threshold = threshold_for(scores, classes, 0.95)
    assert threshold == pytest.approx(np.quantile(50 + np.arange(100.0), 0.95))
    assert np.mean(scores[classes == 1] > threshold) <= 0.05


# -- the default bundle ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def default():
    return Explainer(load_bundle(ROOT / "models" / "default"), region_check=False)


def test_the_default_bundle_ships_a_check_for_its_own_weights(default):
    assert default.input_check is not None, default.input_check_status
    entry = default.bundle.input_check
    assert entry["weights_sha256"] == default.bundle.weights_digest()
    assert entry["fitted_on"]["train"] == "clean_split.csv train"


def test_the_default_bundle_flags_every_non_mri_image_and_no_example(default):
    assert len(NON_MRI) >= 8 and len(EXAMPLES) == 8
    flagged = [r.flagged for r in default.explain_batch([str(p) for p in NON_MRI])]
    assert all(flagged), [p.name for p, f in zip(NON_MRI, flagged) if not f]
    examples = default.explain_batch([str(p) for p in EXAMPLES])
    assert not any(r.flagged for r in examples), [(p.name, r.input_check) for p, r in zip(EXAMPLES, examples)]


def test_a_flag_reaches_the_report_and_the_printed_line(default):
    flagged = default.explain(str(NON_MRI[0]))
    written = report(flagged, NON_MRI[0].name)["input_check"]
    assert written["in_distribution"] is False and written["score"] > written["threshold"]
    assert written["method"] == "mahalanobis+colour"
    assert "NOT LIKE THE TRAINING SLICES" in check_line(flagged)


# -- bundles without a usable reference -------------------------------------------------------
def test_a_bundle_without_a_reference_says_so(tmp_path):
    explainer = Explainer(load_bundle(write_tiny_bundle(tmp_path / "b")), region_check=False)
    result = explainer.explain(np.full((32, 32, 3), 128, np.uint8))
    assert explainer.input_check is None
    assert result.input_check == {"in_distribution": None, "score": None, "threshold": None, "method": None,
                                  "note": NO_CHECK}
    assert not result.flagged
    assert report(result, "x")["input_check"]["note"] == NO_CHECK
    assert check_line(result).startswith(NO_CHECK)


def test_a_reference_for_other_weights_is_refused_with_a_warning(tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(ROOT / "models" / "default", folder, ignore=shutil.ignore_patterns("audit", "eval"))
    config = json.loads((folder / "bundle.json").read_text())
    config["input_check"]["weights_sha256"] = "0" * 64
    (folder / "bundle.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="fitted for other weights"):
        check, status = load_input_check(load_bundle(folder))
    assert check is None and status.startswith(NO_CHECK)


# -- a user's own model ---------------------------------------------------------------------
def test_the_fit_command_gives_a_users_own_model_a_working_check(tmp_path):
    data = write_dataset(tmp_path / "data")
    folders = {"train": tmp_path / "train", "val": tmp_path / "val"}
    for line in (data / "clean_split.csv").read_text().splitlines()[1:]:
        path, label, split = line.split(",")
        if split in folders:
            (folders[split] / label).mkdir(parents=True, exist_ok=True)
            shutil.copy(data / path, folders[split] / label)
    bundle_dir = write_tiny_bundle(tmp_path / "bundle", size=48)
    assert fit_main(["--model", str(bundle_dir), "--train", str(folders["train"]),
                     "--val", str(folders["val"]), "--quantile", "1.0"]) == 0
    entry = json.loads((bundle_dir / "bundle.json").read_text())["input_check"]
    assert entry["fitted_on"]["train_images"] == 40 and entry["fitted_on"]["val_images"] == 8
    explainer = Explainer(load_bundle(bundle_dir), region_check=False)
    assert explainer.input_check is not None
    own = explainer.explain_batch([str(p) for p in sorted(folders["val"].rglob("*.png"))])
    assert not any(r.flagged for r in own)
    assert all(r.flagged for r in explainer.explain_batch([str(p) for p in NON_MRI]))


def test_saving_a_bundle_keeps_its_reference(tmp_path):
    from explain.bundle import save_bundle

    saved = save_bundle(load_bundle(ROOT / "models" / "default"), tmp_path / "copy")
    assert (saved / "input_check.npz").is_file()
    check, status = load_input_check(load_bundle(saved))
    assert check is not None, status
