"""CAM methods on tiny models: shapes, ranges, batching, degenerate inputs, theory."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from explain.engine import CamEngine
from explain.model.layers import find_target_layer
from explain.methods import (
    GRADIENT_FREE_METHODS,
    GRADIENT_METHODS,
    METHODS,
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
    compute_maps,
    get_method,
    is_gradient_free,
)
from explain.methods.base import normalize_maps
from explain.methods.eigencam import first_component
from explain.methods.free import probe_for, resolve_classes

SIZE = 16
CLASSES = 3


def _tiny(head: str = "gap", seed: int = 0) -> keras.Model:
    """(16, 16, 3) -> conv 6 ch, 8x8 -> GAP or Flatten -> Dense 3-way softmax.

    The conv has a ReLU and no bias, so an all-zero input gives all-zero activations.
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(
        6, 3, strides=2, padding="same", activation="relu", use_bias=False, name="conv"
    )
    x = conv(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x) if head == "gap" else keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=f"tiny_{head}")


@pytest.fixture(scope="module")
def gap_model():
    return _tiny("gap")


@pytest.fixture(scope="module")
def engines(gap_model):
    target = find_target_layer(gap_model, "conv")
    built = {}
    for name in GRADIENT_METHODS:
        built[name] = CamEngine(gap_model, target, (SIZE, SIZE, 3), method=get_method(name))
    # Gradient-free methods run on any engine of the same model and layer.
    for name in GRADIENT_FREE_METHODS:
        built[name] = built["gradcam"]
    return built


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).random((3, SIZE, SIZE, 3)).astype(np.float32)


def _maps(engines, name, batch, classes=None):
    return compute_maps(engines[name], batch, classes, method=name)


def _acts(model, batch):
    sub = keras.Model(model.input, model.get_layer("conv").output)
    return np.asarray(sub(batch, training=False), np.float64)


def _norm(raw):
    maps, _ = normalize_maps(tf.constant(np.asarray(raw, np.float32)))
    return maps.numpy()


def test_registry_lists_every_method():
    expected = {"gradcam", "gradcampp", "hirescam", "xgradcam", "layercam", "scorecam", "eigencam"}
    assert set(METHODS) == expected
    assert set(GRADIENT_METHODS) | set(GRADIENT_FREE_METHODS) == set(METHODS)
    assert is_gradient_free("scorecam") and is_gradient_free(EigenCAM) and not is_gradient_free(GradCAM())
    with pytest.raises(ValueError):
        get_method("nope")


@pytest.mark.parametrize("name", list(METHODS))
def test_batch_of_three_equals_three_singles(engines, images, name):
    classes = np.array([2, 0, 1], np.int32)  # one class per sample, none the same
    maps, empty = _maps(engines, name, images, classes)
    assert maps.shape == (3, 8, 8) and maps.dtype == np.float32
    assert empty.shape == (3,) and empty.dtype == bool
    assert np.all(np.isfinite(maps)) and maps.min() >= 0.0 and maps.max() <= 1.0
    assert not empty.any()
    for i in range(3):
        single, single_empty = _maps(engines, name, images[i : i + 1], [classes[i]])
        assert single.shape == (1, 8, 8)
        np.testing.assert_allclose(single[0], maps[i], atol=1e-5)
        assert single_empty[0] == empty[i]
    # The three samples differ, so a method that mixed them would not show up
    # as "all maps equal" by accident.
    assert np.abs(maps[0] - maps[1]).max() > 1e-3
    # None and -1 both mean "the predicted class".
    predicted = np.argmax(engines["gradcam"].predict(images), axis=-1)
    expected, _ = _maps(engines, name, images, predicted)
    for default in (None, [-1, -1, -1]):
        np.testing.assert_allclose(_maps(engines, name, images, default)[0], expected, atol=1e-6)


def test_batch_probabilities_equal_single_calls(engines, images):
    together = engines["gradcam"].explain(images, [2, 0, 1]).probs
    for i in range(3):
        single = engines["gradcam"].explain(images[i:i + 1], [[2, 0, 1][i]]).probs
        np.testing.assert_allclose(single[0], together[i], atol=1e-6)
    assert np.abs(together[0] - together[1]).max() > 1e-4  # the samples differ


@pytest.mark.parametrize("name", list(METHODS))
def test_all_zero_input_gives_empty_map_not_nan(engines, name):
    maps, empty = _maps(engines, name, np.zeros((2, SIZE, SIZE, 3), np.float32))
    assert np.all(np.isfinite(maps))
    assert np.all(maps == 0.0) and np.all(empty)


@pytest.mark.parametrize("cls", [GradCAM, GradCAMPlusPlus, HiResCAM, XGradCAM, LayerCAM])
def test_gradient_methods_finite_on_zero_and_signed_tensors(cls):
    zeros = tf.zeros((2, 4, 4, 3))
    assert np.all(cls().raw_map(zeros, zeros).numpy() == 0.0)
    rng = np.random.default_rng(3)
    acts = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)  # pre-ReLU: negative sums possible
    grads = rng.normal(size=(2, 4, 4, 3)).astype(np.float32) * 1e-20  # deep-layer-small gradients
    raw = cls().raw_map(tf.constant(acts), tf.constant(grads)).numpy()
    assert np.all(np.isfinite(raw))


# -- numpy references, literal paper formulas, float64 -------------------------------
def _ref_gradcampp(a, g):
    g2, g3 = g**2, g**3
    denom = 2 * g2 + a.sum(axis=(1, 2), keepdims=True) * g3
    alpha = np.where(denom != 0, g2 / np.where(denom != 0, denom, 1.0), 0.0)
    w = (alpha * np.maximum(g, 0)).sum(axis=(1, 2))
    return np.einsum("bhwc,bc->bhw", a, w)


def _ref_xgradcam(a, g):
    w = (g * a).sum(axis=(1, 2)) / (a.sum(axis=(1, 2)) + 1e-7)
    return np.einsum("bhwc,bc->bhw", a, w)


REFERENCES = {
    GradCAM: lambda a, g: np.einsum("bhwc,bc->bhw", a, g.mean(axis=(1, 2))),
    GradCAMPlusPlus: _ref_gradcampp,
    HiResCAM: lambda a, g: (g * a).sum(axis=-1),
    XGradCAM: _ref_xgradcam,
    LayerCAM: lambda a, g: (np.maximum(g, 0) * a).sum(axis=-1),
}


@pytest.mark.parametrize("cls", list(REFERENCES))
def test_raw_map_matches_paper_formula(cls):
    rng = np.random.default_rng(4)
    acts = np.maximum(rng.normal(size=(2, 5, 4, 6)), 0.0)  # post-ReLU, as in the paper
    grads = rng.normal(size=(2, 5, 4, 6))
    grads[0, :, :, 0] = 0.0  # a channel with no gradient at all
    acts[1, :, :, 1] = 0.0  # a dead channel
    got = cls().raw_map(tf.constant(acts, tf.float32), tf.constant(grads, tf.float32)).numpy()
    np.testing.assert_allclose(got, REFERENCES[cls](acts, grads), rtol=2e-4, atol=1e-5)


# -- theory on a GAP -> Dense head ------------------------------------------------------
def test_gap_head_hirescam_and_xgradcam_equal_gradcam(engines, images):
    """GAP -> Dense: dS_k/dA_ijc = W_ck / (h w) everywhere, so HiResCAM and XGrad-CAM
    reduce to Grad-CAM up to a positive factor (and Grad-CAM to CAM, sum_c W_ck A_c:
    the oracle test in test_cam_oracle.py)."""
    classes = np.array([0, 1, 2], np.int32)
    gradcam, _ = _maps(engines, "gradcam", images, classes)
    for name in ("hirescam", "xgradcam"):
        maps, _ = _maps(engines, name, images, classes)
        np.testing.assert_allclose(maps, gradcam, atol=1e-4, err_msg=name)


def test_gap_head_layercam_keeps_only_positive_weights(engines, gap_model, images):
    classes = np.array([0, 1, 2], np.int32)
    kernel = gap_model.get_layer("head").kernel.numpy().astype(np.float64)
    acts = _acts(gap_model, images)
    positive = _norm(np.einsum("bhwc,cb->bhw", acts, np.maximum(kernel[:, classes], 0)))
    maps, _ = _maps(engines, "layercam", images, classes)
    np.testing.assert_allclose(maps, positive, atol=1e-4)
    # Negative weights exist, so Layer-CAM is not just Grad-CAM again.
    assert (kernel[:, classes] < 0).any()
    gradcam, _ = _maps(engines, "gradcam", images, classes)
    assert np.abs(maps - gradcam).max() > 1e-2


def test_flatten_head_separates_hirescam_from_gradcam(images):
    """Negative control for the GAP equality: with a spatially varying gradient
    (Flatten -> Dense) HiResCAM is not Grad-CAM."""
    model = _tiny("flatten", seed=2)
    target = find_target_layer(model, "conv")
    grad = CamEngine(model, target, (SIZE, SIZE, 3), method=GradCAM()).explain(images, [0, 1, 2]).maps
    hires = CamEngine(model, target, (SIZE, SIZE, 3), method=HiResCAM()).explain(images, [0, 1, 2]).maps
    assert np.abs(grad - hires).max() > 0.05


# -- dispatch -------------------------------------------------------------------------
def test_compute_maps_builds_sibling_engine_for_other_gradient_method(engines, images):
    via_gradcam, _ = compute_maps(engines["gradcam"], images, [0, 1, 2], method="gradcampp")
    direct = engines["gradcampp"].explain(images, [0, 1, 2]).maps
    np.testing.assert_allclose(via_gradcam, direct, atol=1e-6)
    # Built once, then shared: the family of the engine is the only cache.
    sibling = engines["gradcam"].for_method(GradCAMPlusPlus())
    assert sibling is engines["gradcam"].for_method(GradCAMPlusPlus())
    assert sibling is not engines["gradcampp"] and isinstance(sibling.method, GradCAMPlusPlus)
    assert sibling.for_method(GradCAM()) is engines["gradcam"]
    assert engines["gradcam"].for_method(GradCAM()) is engines["gradcam"]
    with pytest.raises(TypeError, match="not a gradient CAM method"):
        engines["gradcam"].for_method(ScoreCAM())
    own, _ = compute_maps(engines["layercam"], images, [0, 1, 2])  # method None: engine's own
    np.testing.assert_allclose(own, engines["layercam"].explain(images, [0, 1, 2]).maps, atol=1e-6)


def test_gradient_free_method_refuses_cam_engine(gap_model):
    with pytest.raises(TypeError, match="gradient-free"):
        CamEngine(gap_model, find_target_layer(gap_model, "conv"), (SIZE, SIZE, 3), method=ScoreCAM())


def test_resolve_classes():
    scores = np.array([[0.1, 0.7, 0.2], [0.1, 0.2, 0.7]])
    np.testing.assert_array_equal(resolve_classes(None, scores), [1, 2])
    np.testing.assert_array_equal(resolve_classes([-1, 0], scores), [1, 0])
    for bad in ([0], [0, 3], [-2, 0]):
        with pytest.raises(ValueError):
            resolve_classes(bad, scores)


def test_scorecam_default_class_is_the_engines_prediction(images):
    model = _tiny("gap", seed=0)
    # A bias that makes class 2 the prediction without saturating the softmax
    # (saturated probabilities would give every class the same uniform weights).
    model.get_layer("head").bias.assign(np.array([0.0, 0.0, 1.5], np.float32))
    engine = CamEngine(model, find_target_layer(model, "conv"), (SIZE, SIZE, 3))
    assert np.all(engine.explain(images).classes == 2)
    default, _ = compute_maps(engine, images, None, method="scorecam")
    for classes in ([2, 2, 2], [-1, -1, -1]):
        same, _ = compute_maps(engine, images, classes, method="scorecam")
        np.testing.assert_allclose(default, same, atol=1e-6)
    assert np.abs(default - compute_maps(engine, images, [0, 0, 0], method="scorecam")[0]).max() > 1e-3


def test_bad_class_index_rejected(engines, images):
    with pytest.raises(ValueError):
        compute_maps(engines["scorecam"], images, [0, 1, CLASSES], method="scorecam")


# -- Score-CAM ----------------------------------------------------------------------------
def _scorecam_one_by_one(engine, image, cls):
    """The algorithm spelled out: one masked forward per channel."""
    acts, _ = probe_for(engine)(image[None])
    acts = acts[0].astype(np.float64)
    scores = []
    for c in range(acts.shape[-1]):
        up = tf.image.resize(acts[None, :, :, c : c + 1], (SIZE, SIZE), method="bilinear").numpy()[0]
        span = up.max() - up.min()
        mask = (up - up.min()) / span if span > 1e-8 else np.zeros_like(up)
        scores.append(engine.predict((image * mask)[None].astype(np.float32))[0, cls])
    scores = np.array(scores, np.float64)
    weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    return np.maximum(acts @ weights, 0.0)


def test_scorecam_batched_forwards_match_one_by_one(engines, images):
    engine = engines["gradcam"]
    # batch_size 4 does not divide 6 channels: the last chunk is partial.
    maps, _ = compute_maps(engine, images, [0, 1, 2], method=ScoreCAM(batch_size=4))
    for i in range(3):
        expected = _norm(_scorecam_one_by_one(engine, images[i], i)[None])[0]
        np.testing.assert_allclose(maps[i], expected, atol=1e-4)


def test_scorecam_max_channels_uses_only_the_strongest(engines, images):
    engine = engines["gradcam"]
    acts, _ = probe_for(engine)(images[:1])
    strongest = int(np.argmax(acts[0].mean(axis=(0, 1))))
    maps, _ = compute_maps(engine, images[:1], [0], method=ScoreCAM(max_channels=1))
    # One channel keeps all the weight: the map is that channel, normalised.
    np.testing.assert_allclose(maps[0], _norm(acts[:1, :, :, strongest])[0], atol=1e-5)


# -- Eigen-CAM --------------------------------------------------------------------------------
def _two_component_acts(rng, h=6, w=5, c=7, singular=(3.0, 1.0)):
    """Activations (h, w, c) with a known SVD after centring, and the first component's map.

    X = offsets + s1 u1 v1^T + s2 u2 v2^T with u1, u2 orthonormal and zero-mean
    over the h*w positions (so centring leaves them alone), v1, v2 orthonormal
    over the channels, s1 > s2. The first principal component's projection is
    then exactly X_c v1 = s1 u1, and v1 is chosen with a positive mean so that
    this is also the sign that correlates with the channel-mean activation.
    """
    p = h * w
    u, _ = np.linalg.qr(np.column_stack([np.ones(p), rng.normal(size=(p, 2))]))
    u1, u2 = u[:, 1], u[:, 2]  # orthogonal to the constant vector: zero-mean
    v, _ = np.linalg.qr(rng.normal(size=(c, 2)))
    v1, v2 = v[:, 0], v[:, 1]
    if v1.sum() < 0:
        v1 = -v1
    offsets = rng.uniform(1.0, 2.0, size=c)  # per-channel constants: removed by the centring
    x = offsets + singular[0] * np.outer(u1, v1) + singular[1] * np.outer(u2, v2)
    return x.reshape(h, w, c), (singular[0] * u1).reshape(h, w)


def test_eigencam_is_the_first_principal_component_with_the_mean_sign():
    rng = np.random.default_rng(5)
    pairs = [_two_component_acts(rng) for _ in range(2)]
    acts = np.stack([a for a, _ in pairs])
    known = np.stack([m for _, m in pairs])
    for flip in (1.0, -1.0):
        # Negating the activation negates the channel mean too: the map must follow it.
        got = first_component(flip * acts)
        assert got.shape == (2, 6, 5) and got.dtype == np.float32
        np.testing.assert_allclose(got, flip * known, atol=1e-5)
        for b in range(2):
            # Independent reference: numpy's SVD of the centred matrix, equal up to sign.
            x = (flip * acts[b]).reshape(-1, acts.shape[-1])
            x = x - x.mean(axis=0)
            _, _, vt = np.linalg.svd(x, full_matrices=False)
            svd = (x @ vt[0]).reshape(6, 5)
            sign = np.sign(np.sum(got[b] * svd))
            np.testing.assert_allclose(got[b], sign * svd, atol=1e-5)
    # Batching does not mix samples.
    np.testing.assert_allclose(first_component(acts[1:]), first_component(acts)[1:], atol=1e-6)
    # No structure at all gives the all-zero map, not NaN.
    assert np.all(first_component(np.ones((1, 3, 3, 4))) == 0.0)


def test_eigencam_matches_pca_of_the_covariance(engines, gap_model, images):
    acts = _acts(gap_model, images)
    maps, _ = compute_maps(engines["gradcam"], images, None, method="eigencam")
    for i in range(3):
        x = acts[i].reshape(-1, acts.shape[-1])
        x = x - x.mean(axis=0)
        _, vecs = np.linalg.eigh(x.T @ x)
        proj = (x @ vecs[:, -1]).reshape(acts.shape[1:3])
        if np.sum(proj * (acts[i].mean(axis=-1) - acts[i].mean())) < 0:
            proj = -proj
        np.testing.assert_allclose(maps[i], _norm(proj[None])[0], atol=1e-4)


def test_gradient_free_methods_give_the_same_maps_inside_a_nested_model():
    """The probe reaches a layer inside a nested model: same maps as the same layers unnested."""
    keras.utils.set_random_seed(3)
    conv = keras.layers.Conv2D(5, 3, strides=2, activation="relu", name="bconv")
    base = keras.Sequential([keras.Input((SIZE, SIZE, 3)), conv], name="base")
    pool, dense = keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")
    inputs = keras.Input((SIZE, SIZE, 3))
    nested = keras.Model(inputs, dense(pool(base(inputs))))
    flat_inputs = keras.Input((SIZE, SIZE, 3))
    flat = keras.Model(flat_inputs, dense(pool(conv(flat_inputs))))
    nested_engine = CamEngine(nested, find_target_layer(nested, "base/bconv"), (SIZE, SIZE, 3))
    flat_engine = CamEngine(flat, find_target_layer(flat, "bconv"), (SIZE, SIZE, 3))
    batch = np.random.default_rng(6).random((2, SIZE, SIZE, 3)).astype(np.float32)
    acts = np.asarray(base(batch, training=False))
    np.testing.assert_allclose(probe_for(nested_engine)(batch)[0], acts, atol=1e-6)
    for name in GRADIENT_FREE_METHODS:
        maps, empty = compute_maps(nested_engine, batch, [0, 1], method=name)
        expected, expected_empty = compute_maps(flat_engine, batch, [0, 1], method=name)
        assert maps.shape == acts.shape[:3] and not empty.any()
        np.testing.assert_allclose(maps, expected, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(empty, expected_empty)


def test_eigencam_is_class_agnostic(engines, images):
    a, _ = compute_maps(engines["gradcam"], images, [0, 0, 0], method="eigencam")
    b, _ = compute_maps(engines["gradcam"], images, [2, 1, 0], method="eigencam")
    np.testing.assert_array_equal(a, b)
