"""The methods' module-level caches: bounded, thread-safe, and invisible in the results."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest

from explain.engine import CamEngine
from explain.model.layers import find_target_layer
from explain.methods import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM, compute_maps, free, scorecam
from explain.methods.cache import BoundedCache

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


# -- BoundedCache ---------------------------------------------------------------------------
def test_bounded_cache_evicts_the_least_recently_used():
    cache = BoundedCache(3)
    for k in "abc":
        cache.get(k, lambda k=k: k.upper())
    assert cache.get("a", lambda: "rebuilt") == "A"  # a hit: "a" is now the most recent
    cache.get("d", lambda: "D")
    assert len(cache) == 3 and "b" not in cache and "a" in cache and "d" in cache
    for i in range(50):
        cache.get(i, lambda i=i: i)
        assert len(cache) <= 3
    cache.prune(lambda k: k == 49)
    assert len(cache) == 2 and 49 not in cache
    with pytest.raises(ValueError):
        BoundedCache(0)


def test_bounded_cache_builds_a_key_once_under_contention():
    cache = BoundedCache(4)
    built = []

    def build():
        built.append(1)
        return object()

    values = _together(lambda i: cache.get("key", build))
    assert len(built) == 1 and all(v is values[0] for v in values)


# -- the Score-CAM mask builders --------------------------------------------------------------
def test_scorecam_mask_cache_never_exceeds_its_bound():
    scorecam._MASK_FNS.clear()
    seen = []
    for n in range(2 * scorecam.MASK_CACHE_SIZE + 3):
        fn = ScoreCAM._mask_fn((SIZE, SIZE, 3), (n + 1, n + 1))
        seen.append(fn)
        assert len(scorecam._MASK_FNS) <= scorecam.MASK_CACHE_SIZE
    # The newest is still cached (same compiled function), the oldest was evicted and is rebuilt.
    assert ScoreCAM._mask_fn((SIZE, SIZE, 3), (n + 1, n + 1)) is seen[-1]
    assert ScoreCAM._mask_fn((SIZE, SIZE, 3), (1, 1)) is not seen[0]
    assert len(scorecam._MASK_FNS) == scorecam.MASK_CACHE_SIZE


def test_an_evicted_mask_builder_gives_the_same_maps(engine, images):
    method = ScoreCAM(batch_size=4)
    before, _ = compute_maps(engine, images, [0, 1, 2], method=method)
    scorecam._MASK_FNS.clear()
    after, _ = compute_maps(engine, images, [0, 1, 2], method=method)
    np.testing.assert_array_equal(before, after)


# -- the activation probes ------------------------------------------------------------------------
class _FakeEngine:
    """What probe_for reads of an engine; building a probe traces nothing."""

    def __init__(self, engine):
        self.model, self.target, self.input_shape = engine.model, engine.target, engine.input_shape


def test_probe_cache_never_exceeds_its_bound_and_drops_dead_engines(engine):
    free._PROBES.clear()
    alive = []
    for _ in range(2 * free.PROBE_CACHE_SIZE + 3):
        fake = _FakeEngine(engine)
        alive.append(fake)
        probe = free.probe_for(fake)
        assert free.probe_for(fake) is probe  # cached
        assert len(free._PROBES) <= free.PROBE_CACHE_SIZE
    del alive, fake
    gc.collect()
    other = _FakeEngine(engine)
    free.probe_for(other)
    assert len(free._PROBES) == 1  # the dead engines' probes went with them


# -- concurrent calls give the serial answer ---------------------------------------------------------
@pytest.mark.parametrize("name", ["scorecam", "eigencam"])
def test_concurrent_gradient_free_calls_match_serial_calls(engine, images, name):
    classes = [[0, 1, 2], [2, 2, 2], [1, 0, 1], None]
    serial = [compute_maps(engine, images, classes[i % 4], method=name) for i in range(THREADS)]
    # Empty caches, so that the threads also race to build the probe and the mask builder.
    free._PROBES.clear()
    scorecam._MASK_FNS.clear()
    concurrent = _together(lambda i: compute_maps(engine, images, classes[i % 4], method=name))
    for (maps, empty), (expected, expected_empty) in zip(concurrent, serial):
        np.testing.assert_allclose(maps, expected, atol=1e-6)
        np.testing.assert_array_equal(empty, expected_empty)
    assert len(free._PROBES) == 1


def test_concurrent_sibling_requests_build_one_engine_per_method(engine, images):
    methods = [GradCAMPlusPlus, LayerCAM]
    siblings = _together(lambda i: engine.for_method(methods[i % 2]()))
    for i, sibling in enumerate(siblings):
        assert sibling is siblings[i % 2] and type(sibling.method) is methods[i % 2]
    assert engine.for_method(GradCAM()) is engine
    maps = _together(lambda i: compute_maps(engine, images, [0, 1, 2], method=methods[i % 2]()))
    for i, (got, _) in enumerate(maps):
        np.testing.assert_allclose(got, siblings[i % 2].explain(images, [0, 1, 2]).maps, atol=1e-6)
