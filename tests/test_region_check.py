"""The region check: remove the map's top region, run the model again, compare with a random region.

Known answers come from tiny models trained in seconds on synthetic slices
(tests/synthetic.py): one whose class depends only on a local patch
(removing the map's region must flip it, a random region must not), one whose
class depends only on global brightness (removing the region must not matter).
"""

import numpy as np
import pytest

from synthetic import as_uint8, head_images, train_two_class

from explain.bundle import from_model
from explain.checks.region import MAX_SHARE, head_mask, random_region, region_sentence, top_region
from explain.pipeline import Explainer


def explainer_for(kind: str) -> Explainer:
    model = train_two_class(kind)
    bundle = from_model(model, labels=["plain", "marked"], preprocessing="rescale", color_mode="rgb",
                        target_layer="last")
    return Explainer(bundle)


@pytest.fixture(scope="module")
def patch_model():
    return explainer_for("patch")


@pytest.fixture(scope="module")
def brightness_model():
    return explainer_for("brightness")


# -- the region ------------------------------------------------------------------------------
def test_top_region_is_the_smallest_set_holding_half_the_mass():
    heat = np.zeros((10, 10), np.float32)
    heat[2, 3] = 1.0
    assert np.argwhere(top_region(heat)).tolist() == [[2, 3]]
    heat[5, 5], heat[6, 6] = 0.5, 0.5  # total 2.0: the 1.0 pixel alone holds half
    assert top_region(heat).sum() == 1
    heat[2, 3] = 0.9  # total 1.9: 0.9 is under half, one 0.5 pixel more is needed
    assert top_region(heat).sum() == 2


def test_top_region_is_capped_and_empty_for_an_empty_map():
    assert top_region(np.ones((20, 20))).sum() == int(MAX_SHARE * 400)
    assert not top_region(np.zeros((8, 8))).any()


def test_random_region_has_the_same_area_inside_the_head_away_from_the_top_region():
    images, _ = head_images(1, "patch")
    head = head_mask(images[0])
    mask = np.zeros((32, 32), bool)
    mask[12:18, 12:18] = True
    moved = random_region(mask, head)
    assert moved.sum() == mask.sum()
    assert (moved & head).sum() >= 0.9 * mask.sum()
    assert (moved & mask).sum() <= 0.1 * mask.sum()
    assert np.array_equal(moved, random_region(mask, head)), "seeded: the same image gives the same yardstick"


def test_the_audit_and_the_region_check_remove_regions_the_same_way():
    from explain.metrics import faithfulness
    from explain.perturb import blur_image

    assert faithfulness.blur_image is blur_image


# -- known answers ---------------------------------------------------------------------------
def test_removing_the_patch_flips_a_patch_model_and_a_random_region_does_not(patch_model):
    images, labels = head_images(16, "patch", seed=7)
    results = patch_model.explain_batch(as_uint8(images[labels == 1]))
    assert all(r.predicted == "marked" for r in results), "the patch model itself did not learn"
    for r in results:
        check = r.region_check
        assert check["class_after"] == "plain" and check["p_after"] < 0.5, check
        assert check["class_after_random"] == "marked" and check["p_after_random"] > 0.5, check
        assert 0 < check["removed_share"] <= MAX_SHARE
        assert "now plain: the highlighted region carries the decision" in r.region_sentence()


def test_removing_a_region_does_not_matter_to_a_brightness_model(brightness_model):
    images, labels = head_images(16, "brightness", seed=7)
    results = brightness_model.explain_batch(as_uint8(images))
    assert [r.predicted for r in results] == [["plain", "marked"][k] for k in labels]
    tested = [r for r in results if r.region_check["p_after"] is not None]
    assert len(tested) >= 8
    for r in tested:
        check = r.region_check
        assert check["class_after"] == r.explained, check
        assert abs(check["p_after"] - check["p_before"]) < 0.02, check
        assert "the decision also rests on the rest of the slice" in r.region_sentence()


def test_batch_and_single_calls_give_the_same_checks(patch_model):
    images, _ = head_images(4, "patch", seed=3)
    uploads = as_uint8(images)
    batch = patch_model.explain_batch(uploads)
    for upload, together in zip(uploads, batch):
        alone = patch_model.explain(upload)
        assert alone.region_check == pytest.approx(together.region_check, abs=1e-3)


def test_an_empty_map_has_no_region_to_test():
    result = {"p_before": 0.7, "p_after": None, "class_after": None, "p_after_random": None,
              "class_after_random": None, "removed_share": 0.0, "note": "empty map: no region to test"}
    assert region_sentence(result, "plain", "plain") == "The map is empty: there is no highlighted region to test."


def test_the_sentence_names_both_numbers_and_the_yardstick():
    result = {"p_before": 0.98, "p_after": 0.12, "class_after": "notumor", "p_after_random": 0.97,
              "class_after_random": "pituitary", "removed_share": 0.03}
    assert region_sentence(result, "pituitary", "pituitary") == (
        "Without the highlighted region: p(pituitary) 0.98 -> 0.12, now notumor: the highlighted region "
        "carries the decision. Without a random region of the same size inside the head: 0.97.")
    # A map of a class the model did not predict gets the numbers, not a verdict on the decision.
    assert region_sentence(result, "pituitary", "glioma") == (
        "Without the highlighted region: p(pituitary) 0.98 -> 0.12, now notumor. "
        "Without a random region of the same size inside the head: 0.97.")
    result.update(p_after_random=0.2, class_after_random="glioma")
    assert region_sentence(result, "pituitary", "pituitary").endswith(
        ": 0.20, now glioma: the model reacts to any removal.")
