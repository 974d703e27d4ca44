"""Batched inference (explain.serving.batching): chunks give the single answers, one bad file costs nothing."""

import numpy as np
import pytest
from synthetic import write_png, write_tiny_bundle

from explain.bundle import load_bundle
from explain.engine import CHUNK
from explain.pipeline import Explainer
from explain.serving.batching import explain_chunks
from ui.batch import Item, explain_items


@pytest.fixture(scope="module")
def explainer(tmp_path_factory):
    return Explainer(load_bundle(write_tiny_bundle(tmp_path_factory.mktemp("bundle") / "b")))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(3)
    return [write_png(folder / f"{k}.png", rng.integers(0, 256, (30 + k, 40, 3), dtype=np.uint8)) for k in range(7)]


def _same(a, b):
    assert a.predicted == b.predicted and a.explained == b.explained and a.empty == b.empty
    np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5)
    np.testing.assert_allclose(a.cam, b.cam, atol=1e-4)
    np.testing.assert_array_equal(a.image, b.image)


@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_chunks_give_the_single_answers(explainer, images, chunk):
    got = list(explain_chunks(explainer, images, chunk=chunk))
    assert [k for k, _, _ in got] == list(range(len(images)))
    for (k, exp, error), path in zip(got, images):
        assert error is None
        _same(exp, explainer.explain(path))


def test_a_bad_file_gets_its_own_error_and_costs_the_others_nothing(explainer, images, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    sources = [images[0], str(bad), images[1], None, images[2]]
    classes = [None, None, "dragon", None, None]  # an unknown class fails its own item only
    got = list(explain_chunks(explainer, sources, classes, chunk=8))
    assert [exp is not None for _, exp, _ in got] == [True, False, False, False, True]
    assert "dragon" in got[2][2] and got[1][2] and got[3][2] == "No image."
    _same(got[4][1], explainer.explain(images[2]))


def test_the_batch_tab_keeps_extraction_errors_and_order(explainer, images):
    items = [Item("a", str(images[0])), Item("zip member", error="over the limit"), Item("b", str(images[1]))]
    seen = []
    rows = list(explain_items(explainer, items, lambda done, total: seen.append((done, total)), chunk=2))
    assert [item.name for item, _, _ in rows] == ["a", "zip member", "b"]
    assert rows[1][1] is None and rows[1][2] == "over the limit"
    assert rows[0][2] is None and rows[2][2] is None
    assert seen == [(0, 3), (2, 3)]


def test_the_engine_runs_large_batches_in_chunks(explainer):
    x = np.random.default_rng(0).random((CHUNK + 5, *explainer.input_shape), dtype=np.float32)
    whole = explainer.engine().explain(x)
    assert whole.maps.shape[0] == CHUNK + 5
    tail = explainer.engine().explain(x[CHUNK:])
    np.testing.assert_allclose(whole.probs[CHUNK:], tail.probs, atol=1e-5)
    np.testing.assert_allclose(whole.maps[CHUNK:], tail.maps, atol=1e-4)


def test_chunk_must_be_positive(explainer, images):
    with pytest.raises(ValueError):
        list(explain_chunks(explainer, images, chunk=0))
