"""The whole path on a model whose right answers are known.

A tiny GAP -> Dense CNN learns in seconds to tell four classes apart by a
bright shape (class 0: a horizontal bar, 1: a vertical bar, 2: both, as a
cross, 3: none; every image also has a small bright dot, so that contrast
stretching, as DICOM display windows do, cannot tell the classes apart). Its
labels are stored in an order that is neither alphabetical nor the training
code's, so any mix-up of output index and label name shows up as a wrong answer.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest

import app as app_module
from explain.bundle import from_model
from explain.pipeline import Explainer
from benchmarks.app_process import free_port
from synthetic import gap_dense_cnn, write_png
from test_dicom import make_dicom

SIZE = 32
ORDER = ["pituitary", "notumor", "glioma", "meningioma"]  # output index -> label


def bar_image(k: int, rng, size: int = 64) -> np.ndarray:
    """(size, size) uint8: noise, a bright dot and class k's shape, at any multiple of SIZE."""
    scale = size // SIZE
    image = rng.integers(0, 50, (SIZE, SIZE)).astype(np.uint8)
    r, c = rng.integers(4, SIZE - 20, size=2)
    if k in (0, 2):
        image[r + 7:r + 10, c:c + 16] = 230
    if k in (1, 2):
        image[r:r + 16, c + 7:c + 10] = 230
    dr, dc = rng.integers(0, SIZE - 2, size=2)
    image[dr:dr + 2, dc:dc + 2] = 230
    return np.kron(image, np.ones((scale, scale), np.uint8))


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    ks = np.arange(256) % 4
    x = np.stack([bar_image(k, rng, SIZE) for k in ks]).astype(np.float32)[..., None] / 255.0
    x = np.repeat(x, 3, axis=-1)
    model = gap_dense_cnn(size=SIZE)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, ks, epochs=25, batch_size=32, verbose=0)
    assert (model.predict(x, verbose=0).argmax(1) == ks).mean() == 1.0
    return model


@pytest.fixture(scope="module")
def bundle(trained):
    return from_model(trained, labels=ORDER, preprocessing="rescale", color_mode="grayscale", target_layer="last")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One PNG and one DICOM per class (64 px, so the app resizes), with the class index."""
    folder = tmp_path_factory.mktemp("bars")
    rng = np.random.default_rng(1)
    out = []
    for k in range(4):
        image = bar_image(k, rng)
        out.append((write_png(folder / f"bar{k}.png", image), k))
        dicom = folder / f"bar{k}.dcm"
        # 12-bit values with a display window that maps them back onto the PNG's 8 bits
        # (without one the decoder's percentile window would stretch the noise).
        dicom.write_bytes(make_dicom(image.astype(np.uint16) * 16, WindowCenter=2048, WindowWidth=4096))
        out.append((dicom, k))
    return out


def test_the_app_names_the_right_class_for_png_and_dicom_uploads(bundle, files):
    from gradio_client import Client, handle_file
    from PIL import Image

    demo = app_module.build_demo(bundle, examples=[])
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for path, k in files:
            label, gallery, note = client.predict(handle_file(str(path)), "Predicted class", 0.4,
                                                     api_name="/predict")
            assert label["label"] == ORDER[k], (path.name, label)
            assert f"Heatmap of:** {ORDER[k]}" in note
            with Image.open(gallery[0]["image"]) as shown:  # the decoded original, DICOM included
                assert shown.size == (64, 64)
    finally:
        demo.close()


def test_explainer_from_several_threads_equals_serial_calls(bundle, files):
    explainer = Explainer(bundle)
    jobs = [(path, ORDER[(k + j) % 4], method) for j, (path, k) in enumerate(files)
            for method in ("gradcam", "eigencam")]
    serial = [explainer.explain(p, c, method=m) for p, c, m in jobs]
    barrier = threading.Barrier(4)

    def run(job):
        # The first four calls start together, so that they overlap for certain.
        if jobs.index(job) < 4:
            barrier.wait(timeout=30)
        return explainer.explain(job[0], job[1], method=job[2])

    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(run, jobs))
    for a, b in zip(serial, threaded):
        assert a.explained == b.explained and a.predicted == b.predicted
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
        np.testing.assert_allclose(a.cam, b.cam, atol=1e-5)


def test_a_sigmoid_head_reports_sigmoid_probabilities_and_the_same_map(trained, bundle, files):
    sigmoid = gap_dense_cnn(size=SIZE, activation="sigmoid")
    sigmoid.set_weights(trained.get_weights())
    sig_bundle = from_model(sigmoid, labels=ORDER, preprocessing="rescale", color_mode="grayscale",
                            target_layer="last")
    softmax_ex, sigmoid_ex = Explainer(bundle), Explainer(sig_bundle)
    for path, k in files:
        a, b = softmax_ex.explain(path), sigmoid_ex.explain(path)
        x = b.model_input[None]
        expected = np.asarray(sigmoid(x, training=False))[0]
        assert [b.probabilities[c] for c in ORDER] == pytest.approx(expected.tolist(), abs=1e-5)
        assert b.predicted == ORDER[k]
        # Same logits, so the same Grad-CAM map: the head's activation does not enter it.
        np.testing.assert_allclose(a.cam, b.cam, atol=1e-5)
