"""Metrics with known answers on synthetic images and hand-built predict functions."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from explain.metrics import faithfulness, plausibility, road, sanity

SIZE = 32
BLOB = (slice(8, 14), slice(18, 24))  # the only informative region of the synthetic image


def _blob_image():
    image = np.full((SIZE, SIZE, 3), 0.2, np.float32)
    image[BLOB] = 1.0
    return image


def _blob_predict(calls=None, max_batch=None):
    """Two classes; P(class 1) = mean of the blob region, so only the blob matters."""

    def predict(batch):
        batch = np.asarray(batch, np.float32)
        assert batch.ndim == 4 and batch.shape[1:] == (SIZE, SIZE, 3)
        if calls is not None:
            calls.append(len(batch))
        if max_batch is not None:
            assert len(batch) <= max_batch
        p = np.clip(batch[:, BLOB[0], BLOB[1], :].mean(axis=(1, 2, 3)), 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=-1)

    return predict


def _perfect_map():
    saliency = np.zeros((SIZE, SIZE), np.float32)
    saliency[BLOB] = 1.0
    return saliency


# -- deletion / insertion ------------------------------------------------------------
def test_auc_trapezoid_known_values():
    assert faithfulness.auc([1.0, 1.0]) == pytest.approx(1.0)
    assert faithfulness.auc([1.0, 0.0]) == pytest.approx(0.5)
    assert faithfulness.auc([0.0, 1.0, 0.0]) == pytest.approx(0.5)
    assert faithfulness.auc(np.linspace(1, 0, 33)) == pytest.approx(0.5)


def test_perfect_map_beats_random_on_deletion_and_insertion():
    image = _blob_image()
    predict = _blob_predict()
    perfect = _perfect_map()
    random = plausibility.random_map((SIZE, SIZE), seed=0)
    del_perfect = faithfulness.deletion_auc(image, perfect, predict, 1)
    del_random = faithfulness.deletion_auc(image, random, predict, 1)
    ins_perfect = faithfulness.insertion_auc(image, perfect, predict, 1, blur_sigma=4.0)
    ins_random = faithfulness.insertion_auc(image, random, predict, 1, blur_sigma=4.0)
    # The blob is 36 of 1024 pixels: removed within the first two of 32 steps.
    assert del_perfect < 0.05
    assert 0.35 < del_random < 0.65
    assert ins_perfect > 0.9
    assert ins_random < ins_perfect - 0.2
    # The inverted map removes the blob last: the worst possible deletion.
    assert faithfulness.deletion_auc(image, -perfect, predict, 1) > 0.9
    for value in (del_perfect, del_random, ins_perfect, ins_random):
        assert 0.0 <= value <= 1.0


def test_low_resolution_map_is_upsampled():
    image = _blob_image()
    coarse = np.zeros((8, 8), np.float32)
    coarse[2:4, 4:6] = 1.0  # the blob at 1/4 resolution (pixels 8..15 x 16..23)
    assert faithfulness.deletion_auc(image, coarse, _blob_predict(), 1) < 0.1


def test_curves_endpoints_and_substrates():
    image = _blob_image()
    predict = _blob_predict()
    curve = faithfulness.deletion_curve(image, _perfect_map(), predict, 1, steps=16)
    assert curve.shape == (17,)
    assert curve[0] == pytest.approx(1.0) and curve[-1] == pytest.approx(0.0)
    blurred = faithfulness.deletion_curve(
        image, _perfect_map(), predict, 1, steps=16, substrate="blur", blur_sigma=4.0
    )
    # Ends at the blurred image's score, which keeps some of the blob.
    assert blurred[-1] == pytest.approx(predict(faithfulness.blur_image(image, 4.0)[None])[0, 1])
    assert 0.0 < blurred[-1] < 1.0
    ins = faithfulness.insertion_curve(image, _perfect_map(), predict, 1, steps=16, blur_sigma=4.0)
    assert ins[0] == pytest.approx(blurred[-1]) and ins[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        faithfulness.deletion_curve(image, _perfect_map(), predict, 1, substrate="noise")


def test_predictions_are_batched():
    calls = []
    predict = _blob_predict(calls, max_batch=10)
    faithfulness.deletion_auc(_blob_image(), _perfect_map(), predict, 1, steps=32, batch_size=10)
    assert calls == [10, 10, 10, 3]


def test_all_zero_map_gives_finite_auc():
    value = faithfulness.deletion_auc(_blob_image(), np.zeros((SIZE, SIZE)), _blob_predict(), 1)
    assert np.isfinite(value) and 0.0 <= value <= 1.0


# -- Average Drop / Increase in Confidence ------------------------------------------------
def test_average_drop_known_values():
    images = np.stack([_blob_image()] * 3)
    predict = _blob_predict()
    full = np.ones((3, SIZE, SIZE), np.float32)
    assert faithfulness.average_drop_and_increase(images, full, predict, [1, 1, 1]) == pytest.approx((0.0, 0.0))
    zero = np.zeros((3, SIZE, SIZE), np.float32)
    assert faithfulness.average_drop_and_increase(images, zero, predict, [1, 1, 1]) == pytest.approx((100.0, 0.0))
    half = np.zeros((3, SIZE, SIZE), np.float32)
    half[:, BLOB[0], 18:21] = 1.0  # half of the blob kept: P drops from 1 to 0.5
    drop, increase = faithfulness.average_drop_and_increase(images, half, predict, [1, 1, 1])
    assert drop == pytest.approx(50.0) and increase == 0.0


def test_increase_in_confidence_counts_gains():
    images = np.stack([_blob_image()] * 2)
    predict = _blob_predict()
    maps = np.zeros((2, SIZE, SIZE), np.float32)
    # Class 0 (= 1 - blob mean) gains when the blob is masked out.
    drop, increase = faithfulness.average_drop_and_increase(images, maps, predict, [0, 0])
    assert increase == pytest.approx(100.0) and drop == pytest.approx(0.0)


# -- head energy ---------------------------------------------------------------------------
def _head_image(size=64):
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    radius = 0.35 * size
    r = np.hypot(yy - centre, xx - centre)
    grey = np.full((size, size), 0.02, np.float32)
    grey[r <= radius] = 0.6
    grey[np.hypot(yy - centre, (xx - centre) / 2) <= 4] = 0.05  # dark "ventricle": a hole to fill
    grey[5:10, 5:10] = 0.9  # a bright patch outside the head (label, artefact), wider than the opening
    grey += np.random.default_rng(0).normal(0, 0.01, grey.shape).astype(np.float32)
    return np.repeat(grey[..., None], 3, axis=-1), r <= radius


def test_head_mask_fills_holes_and_drops_specks():
    image, disk = _head_image()
    mask = plausibility.head_mask(image)
    assert mask.dtype == bool and mask.shape == disk.shape
    assert mask[32, 32]  # inside the dark ventricle
    assert not mask[5:10, 5:10].any()
    iou = (mask & disk).sum() / (mask | disk).sum()
    assert iou > 0.95
    fixed = plausibility.head_mask(image, threshold=0.3)
    assert (fixed & disk).sum() / (fixed | disk).sum() > 0.95
    assert not plausibility.head_mask(np.zeros((16, 16, 3))).any()


def test_head_mask_keeps_a_dark_head_with_a_bright_lesion():
    image, disk = _head_image()
    grey = image[..., 0].copy()
    grey[disk] = 0.2 + np.random.default_rng(1).normal(0, 0.01, disk.sum())  # a dark brain (T1) ...
    grey[18:36, 26:46] = 1.0  # ... with a bright lesion: Otsu on linear grey keeps only the lesion
    mask = plausibility.head_mask(np.repeat(grey[..., None], 3, axis=-1))
    assert (mask & disk).sum() / (mask | disk).sum() > 0.9


def test_head_mask_ignores_a_frame_around_the_scan():
    yy, xx = np.mgrid[:64, :64]
    disk = np.hypot(yy - 31.5, xx - 31.5) <= 12  # a small head: the frame has more pixels
    grey = np.where(disk, 0.6, 0.02).astype(np.float32)
    # Thicker than the 3 px opening kernel; filled, its outline would be the whole image.
    grey[:4, :] = grey[-4:, :] = grey[:, :4] = grey[:, -4:] = 1.0
    mask = plausibility.head_mask(grey)
    assert (mask & disk).sum() / (mask | disk).sum() > 0.9


def test_head_energy_background_fails_inside_passes():
    image, disk = _head_image()
    background = np.zeros((64, 64), np.float32)
    background[:12, :] = 1.0
    background[:, :10] = 1.0
    assert plausibility.head_energy(image, background) < 0.5
    inside = plausibility.center_gaussian_map((64, 64), sigma_frac=0.1)
    assert plausibility.head_energy(image, inside) > 0.85
    # A coarse 8x8 map inside the head works the same way after upsampling.
    coarse = np.zeros((8, 8), np.float32)
    coarse[3:5, 3:5] = 1.0
    assert plausibility.head_energy(image, coarse) > 0.85
    assert plausibility.energy_inside(np.zeros((8, 8)), disk) == 0.0


# -- baselines -----------------------------------------------------------------------------
def test_baseline_maps():
    a = plausibility.random_map((5, 7), seed=3)
    assert a.shape == (5, 7) and a.dtype == np.float32 and a.min() >= 0.0 and a.max() < 1.0
    np.testing.assert_array_equal(a, plausibility.random_map((5, 7), seed=3))
    assert not np.array_equal(a, plausibility.random_map((5, 7), seed=4))
    g = plausibility.center_gaussian_map((9, 9))
    assert g[4, 4] == pytest.approx(1.0) and g.max() == g[4, 4]
    np.testing.assert_allclose(g, g.T)
    np.testing.assert_allclose(g, g[::-1, ::-1])
    assert g[0, 0] < g[2, 2] < g[4, 4]


# -- Spearman -------------------------------------------------------------------------------
def test_spearman_known_values():
    m = plausibility.random_map((8, 8), seed=1)
    assert sanity.spearman(m, m) == pytest.approx(1.0)
    assert sanity.spearman(m, -m) == pytest.approx(-1.0)
    assert sanity.spearman(m, np.exp(5 * m)) == pytest.approx(1.0)  # ranks only
    # Ties: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4) -> 4.5 / sqrt(4.5 * 5).
    assert sanity.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    assert np.isnan(sanity.spearman(np.zeros((4, 4)), m[:4, :4]))
    with pytest.raises(ValueError):
        sanity.spearman(m, m[:4])


# -- cascading randomisation ------------------------------------------------------------------
def _weights_by_layer(model):
    return {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}


def _small_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    x = keras.layers.Conv2D(4, 3, name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="out")(x)
    model = keras.Model(inputs, outputs)
    # Non-zero biases, as after training, so a reset to the zero initializer shows.
    for layer in (model.get_layer("c1"), model.get_layer("c2"), model.get_layer("out")):
        layer.bias.assign(np.full(layer.bias.shape, 0.5, np.float32))
    return model


def test_randomize_layers_changes_only_named_layers_of_a_clone():
    model = _small_model()
    before = _weights_by_layer(model)
    clone = sanity.randomize_layers(model, ["out", "c2"], seed=0)
    assert clone is not model
    after = _weights_by_layer(model)
    for name in before:
        for w0, w1 in zip(before[name], after[name]):
            np.testing.assert_array_equal(w0, w1)  # original untouched
    got = _weights_by_layer(clone)
    for name in ("out", "c2"):
        assert not np.allclose(got[name][0], before[name][0])  # kernel redrawn
        np.testing.assert_array_equal(got[name][1], 0.0)  # bias back to its zeros initializer
    for w0, w1 in zip(before["c1"], got["c1"]):
        np.testing.assert_array_equal(w0, w1)
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    assert not np.allclose(model(x), clone(x))
    again = sanity.randomize_layers(model, ["out", "c2"], seed=0)
    np.testing.assert_array_equal(again.get_layer("c2").get_weights()[0], got["c2"][0])
    with pytest.raises(ValueError):
        sanity.randomize_layers(model, ["nope"])


def test_randomize_layers_inside_a_nested_model_leaves_the_original_alone():
    keras.utils.set_random_seed(1)
    base_in = keras.Input((16, 16, 3))
    base_out = keras.layers.Conv2D(4, 3, name="inner_conv")(base_in)
    base = keras.Model(base_in, base_out, name="base")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    original = base.get_layer("inner_conv").kernel.numpy().copy()
    clone = sanity.randomize_layers(model, ["base/inner_conv"], seed=0)
    np.testing.assert_array_equal(base.get_layer("inner_conv").kernel.numpy(), original)
    changed = clone.get_layer("base").get_layer("inner_conv").kernel.numpy()
    assert not np.allclose(changed, original)


def _blocky_model():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_act")(x)
    for i in (1, 2):
        x = keras.layers.Conv2D(4, 3, name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="predictions")(x))


def test_cascade_steps_reset_whole_blocks_from_the_output_down():
    model = _blocky_model()
    steps = sanity.cascade_steps(model)
    assert [name for name, _ in steps] == ["predictions", "block2", "block1", "stem"]
    assert steps[0][1] == ["predictions"]
    assert steps[1][1] == ["predictions", "block2_bn", "block2_conv"]
    weighted = {layer.name for layer in model.layers if layer.weights}
    assert set(steps[-1][1]) == weighted  # the last step resets every layer
    thinned = sanity.cascade_steps(model, max_steps=3)
    assert [name for name, _ in thinned] == ["predictions", "block1", "stem"]
    assert set(thinned[-1][1]) == weighted
    for _, names in steps:  # every name is one randomize_layers resolves
        sanity.randomize_layers(model, names, seed=0)


def test_cascade_steps_expand_nested_models():
    base_in = keras.Input((16, 16, 3))
    base = keras.Model(base_in, keras.layers.Conv2D(4, 3, name="inner_conv")(base_in), name="base")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    steps = sanity.cascade_steps(model)
    assert steps == [("out", ["out"]), ("inner", ["out", "base/inner_conv"])]


@pytest.mark.parametrize("values, verdict", [
    ([0.3, 0.1, 0.05], True),    # Grad-CAM on the default model
    ([0.97, 0.76, 0.58], False),  # barely moves: the map ignores what was randomised
    ([0.2, 0.6], False),          # ends above the bar
    ([0.88, 0.37, 0.34], False),  # Grad-CAM++ on the default model: the class weights barely matter
    ([0.4, float("nan")], False),
    ([], False),
])
def test_sanity_verdict(values, verdict):
    assert sanity.sanity_passes(values) is verdict


def test_sanity_check_tells_a_model_blind_map_from_grad_cam():
    """A map computed from the image alone (an edge detector) cannot change when the
    model is randomised and must fail; Grad-CAM of a real model must move."""
    from explain.engine import CamEngine
    from explain.model.layers import find_target_layer
    from synthetic import gap_dense_cnn

    keras.utils.set_random_seed(3)
    model = gap_dense_cnn(size=32)
    rng = np.random.default_rng(0)
    images = rng.random((6, 32, 32, 3)).astype(np.float32)

    def edge_map(batch):
        grey = batch.mean(-1)
        return np.abs(np.diff(grey, axis=1))[:, ::2, ::2][:, :16, :15]

    def grad_cam(m):
        return CamEngine(m, find_target_layer(m, "last"), (32, 32, 3)).explain(images, [0] * 6).maps

    blind, cam = [], []
    trained_cam, trained_edges = grad_cam(model), edge_map(images)
    for _, names in sanity.cascade_steps(model):
        clone = sanity.randomize_layers(model, names, seed=1)
        cam.append(np.mean([sanity.spearman(a, b) for a, b in zip(trained_cam, grad_cam(clone))]))
        blind.append(np.mean([sanity.spearman(a, b) for a, b in zip(trained_edges, edge_map(images))]))
    assert blind == pytest.approx([1.0] * len(blind)) and not sanity.sanity_passes(blind)
    assert sanity.sanity_passes(cam), cam


# -- ROAD ------------------------------------------------------------------------------
def _ramp(h=48, w=40):
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    return np.stack([xx / w, yy / h, 0.5 * (xx + yy) / (h + w)], axis=-1)


def test_linear_imputation_reproduces_a_plane_inside_the_image():
    """A plane satisfies the neighbour-mean equation exactly away from the border,
    so an interior hole must be filled with the plane itself."""
    image = _ramp()
    removed = np.zeros(image.shape[:2], bool)
    removed[10:38, 8:30] = True
    filled = road.linear_impute(image, removed, tol=1e-8)
    np.testing.assert_allclose(filled, image, atol=1e-4)
    np.testing.assert_array_equal(filled[~removed], image[~removed])  # known pixels untouched


def test_linear_imputation_edge_cases():
    image = _ramp(16, 16)
    nothing = np.zeros((16, 16), bool)
    np.testing.assert_array_equal(road.linear_impute(image, nothing), image)
    everything = ~nothing
    np.testing.assert_allclose(road.linear_impute(image, everything), image.mean(), atol=1e-6)
    with pytest.raises(ValueError, match="mask"):
        road.linear_impute(image, np.zeros((8, 8), bool))
    one = nothing.copy()
    one[5, 7] = True  # a single pixel: the weighted mean of its 8 neighbours
    spot = image.copy()
    spot[5, 7] = 9.0
    weights = np.array([[1, 2, 1], [2, 0, 2], [1, 2, 1]], np.float32)
    expected = (image[4:7, 6:9] * weights[..., None]).sum((0, 1)) / weights.sum()
    np.testing.assert_allclose(road.linear_impute(spot, one)[5, 7], expected, atol=1e-5)


def test_noisy_imputation_adds_noise_only_where_removed():
    image = _ramp()
    removed = np.zeros(image.shape[:2], bool)
    removed[:, ::2] = True
    noisy = road.noisy_linear_impute(image, removed, noise=0.05, seed=1)
    np.testing.assert_array_equal(noisy[~removed], image[~removed])
    residual = noisy[removed] - road.linear_impute(image, removed, tol=1e-3)[removed]
    assert 0.03 < residual.std() < 0.07  # 0.05 of the image's range (which is 1)


def test_road_perfect_map_beats_random_and_zero_map_is_finite():
    image = _blob_image()
    predict = _blob_predict()
    perfect = road.road_scores(image, _perfect_map(), predict, 1)
    random = road.road_scores(image, plausibility.random_map((SIZE, SIZE), seed=0), predict, 1)
    # MoRF: the blob goes in the first 10 % and is filled with background (0.2).
    assert perfect["road_morf"] < 0.3 < random["road_morf"]
    # LeRF: even at 90 % removed the 36 blob pixels stay.
    assert perfect["road_lerf"] > 0.95 > random["road_lerf"]
    flat = road.road_scores(image, np.zeros((8, 8), np.float32), predict, 1)
    assert all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in flat.values())
