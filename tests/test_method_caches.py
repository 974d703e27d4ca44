"""The methods' compiled helpers, kept by the engine family: built once, thread-safe, and invisible in the results."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest

from explain.engine import CamEngine
from explain.model.layers import find_target_layer
from explain.methods import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM, compute_maps, free

SIZE = 16
THREADS = 8


@pytest.fixture(scope="module")
def engine():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    return CamEngine(model, find_target_layer(model, "conv"), (SIZE, SIZE, 3))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).random((3, SIZE, SIZE, 3)).astype(np.float32)


def _together(fn, n=THREADS):
    """Run ``fn(i)`` for i in 0..n-1 on n threads released at the same moment."""
    start = threading.Barrier(n)

    def run(i):
        start.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def _family_helpers(engine) -> dict:
    return engine._family.helpers


# -- the engine family's store ----------------------------------------------------------------
def test_a_shared_helper_is_built_once_under_contention(engine):
    built = []

    def build():
        built.append(1)
        return object()

    values = _together(lambda i: engine.shared(("test-helper", "contention"), build))
    assert len(built) == 1 and all(v is values[0] for v in values)
    assert engine.for_method(LayerCAM()).shared(("test-helper", "contention"), build) is values[0]  # the family's
    del _family_helpers(engine)[("test-helper", "contention")]


def test_helpers_live_with_their_engine_not_in_a_module(engine):
    """No module-level store: a probe belongs to its engine family and goes when the engine goes."""
    import weakref

    probe = free.probe_for(engine)
    assert free.probe_for(engine.for_method(GradCAMPlusPlus())) is probe  # one per family
    other = CamEngine(engine.model, engine.target, engine.input_shape)    # another family
    other_probe = weakref.ref(free.probe_for(other))
    assert other_probe() is not probe
    del other
    gc.collect()
    assert other_probe() is None


# -- the Score-CAM mask builders --------------------------------------------------------------
def test_scorecam_mask_builders_are_kept_per_shape(engine):
    fn = ScoreCAM._mask_fn(engine, (SIZE, SIZE, 3), engine.map_shape)
    assert ScoreCAM._mask_fn(engine, (SIZE, SIZE, 3), engine.map_shape) is fn
    assert ScoreCAM._mask_fn(engine, (SIZE, SIZE, 3), (1, 1)) is not fn


def test_a_rebuilt_mask_builder_gives_the_same_maps(engine, images):
    method = ScoreCAM(batch_size=4)
    before, _ = compute_maps(engine, images, [0, 1, 2], method=method)
    _family_helpers(engine).clear()
    after, _ = compute_maps(engine, images, [0, 1, 2], method=method)
    np.testing.assert_array_equal(before, after)


# -- concurrent calls give the serial answer ---------------------------------------------------------
@pytest.mark.parametrize("name", ["scorecam", "eigencam"])
def test_concurrent_gradient_free_calls_match_serial_calls(engine, images, name):
    classes = [[0, 1, 2], [2, 2, 2], [1, 0, 1], None]
    serial = [compute_maps(engine, images, classes[i % 4], method=name) for i in range(THREADS)]
    # Empty store, so that the threads also race to build the probe and the mask builder.
    _family_helpers(engine).clear()
    concurrent = _together(lambda i: compute_maps(engine, images, classes[i % 4], method=name))
    for (maps, empty), (expected, expected_empty) in zip(concurrent, serial):
        np.testing.assert_allclose(maps, expected, atol=1e-6)
        np.testing.assert_array_equal(empty, expected_empty)
    assert "activation-probe" in _family_helpers(engine)


def test_concurrent_sibling_requests_build_one_engine_per_method(engine, images):
    methods = [GradCAMPlusPlus, LayerCAM]
    siblings = _together(lambda i: engine.for_method(methods[i % 2]()))
    for i, sibling in enumerate(siblings):
        assert sibling is siblings[i % 2] and type(sibling.method) is methods[i % 2]
    assert engine.for_method(GradCAM()) is engine
    maps = _together(lambda i: compute_maps(engine, images, [0, 1, 2], method=methods[i % 2]()))
    for i, (got, _) in enumerate(maps):
        np.testing.assert_allclose(got, siblings[i % 2].explain(images, [0, 1, 2]).maps, atol=1e-6)
