"""End to end through the running app with gradio_client."""


import numpy as np
import pytest

import app as app_module
from explain.bundle import load_bundle
from benchmarks.app_process import free_port
from synthetic import LABELS, write_png, write_tiny_bundle


@pytest.fixture(scope="module")
def running_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    bundle = load_bundle(write_tiny_bundle(folder / "bundle"))
    image = write_png(folder / "slice.png", np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8))
    demo = app_module.build_demo(bundle, examples=[(str(image), "test image")])
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", image, folder
    finally:
        demo.close()


def test_predict_endpoint(running_app):
    from gradio_client import Client, handle_file

    url, image, _ = running_app
    client = Client(url, verbose=False)
    assert "/predict" in client.view_api(return_format="dict")["named_endpoints"]
    label, gallery, note = client.predict(handle_file(str(image)), "Predicted class", 0.4, api_name="/predict")
    confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert set(confidences) == set(LABELS)
    assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-5)
    assert len(gallery) == 3
    assert all(item["image"].endswith(".png") for item in gallery)
    from PIL import Image

    with Image.open(gallery[0]["image"]) as original:
        assert original.size == (64, 48)
    assert "Prediction" in note

    label, _, note = client.predict(handle_file(str(image)), "notumor", 0.7, api_name="/predict")
    assert "Heatmap of:** notumor" in note


def test_bad_upload_gives_a_clear_error_and_the_app_keeps_working(running_app):
    from gradio_client import Client, handle_file

    url, image, folder = running_app
    client = Client(url, verbose=False)
    broken = folder / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(Exception, match="This file is not an image that can be read"):
        client.predict(handle_file(str(broken)), "Predicted class", 0.4, api_name="/predict")
    label, gallery, _ = client.predict(handle_file(str(image)), "Predicted class", 0.4, api_name="/predict")
    assert len(gallery) == 3


def test_run_command_without_a_model_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BRAIN_MRI_MODEL", str(tmp_path / "no-such-bundle"))
    assert app_module.main([]) == 2
    err = capsys.readouterr().err
    assert "no model bundle" in err and "python -m training.train" in err


def test_method_choice_and_compare_view(running_app):
    from gradio_client import Client, handle_file

    from explain.methods import METHODS

    url, image, _ = running_app
    client = Client(url, verbose=False)
    _, gallery, note = client.predict(handle_file(str(image)), "glioma", 0.4, "hirescam", api_name="/predict")
    assert len(gallery) == 3 and "method HiResCAM" in note
    overlays = client.predict(handle_file(str(image)), "glioma", 0.4, api_name="/compare")
    assert len(overlays) == len(METHODS)
    assert [o["caption"].split(" (")[0] for o in overlays] == [m.label for m in METHODS.values()]


def test_tta_option_through_the_api(running_app):
    from gradio_client import Client, handle_file

    url, image, _ = running_app
    client = Client(url, verbose=False)
    plain, _, _ = client.predict(handle_file(str(image)), "glioma", 0.4, "gradcam", False, api_name="/predict")
    label, gallery, note = client.predict(handle_file(str(image)), "glioma", 0.4, "gradcam", True,
                                          api_name="/predict")
    assert "averaged over 6 flipped and brightness-shifted copies" in note
    assert "Grad-CAM + TTA heatmap" in gallery[1]["caption"]
    # TTA smooths the map only; the probabilities are those of the image itself.
    assert label["label"] == plain["label"]
    assert {c["label"]: c["confidence"] for c in label["confidences"]} == pytest.approx(
        {c["label"]: c["confidence"] for c in plain["confidences"]}, abs=1e-6)


def test_a_new_opacity_reblends_without_running_the_model_again(tmp_path):
    """The slider's path: same file, class and method, new opacity -> no new model call."""
    from gradio_client import Client, handle_file
    from PIL import Image

    from explain.pipeline import Explainer

    class CountingExplainer(Explainer):
        calls = 0

        def explain(self, *args, **kwargs):
            CountingExplainer.calls += 1
            return super().explain(*args, **kwargs)

    bundle = load_bundle(write_tiny_bundle(tmp_path / "bundle"))
    image = write_png(tmp_path / "slice.png", np.random.default_rng(1).integers(0, 256, (40, 40), dtype=np.uint8))
    demo = app_module.build_demo(bundle, explainer=CountingExplainer(bundle), examples=[])
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        upload = handle_file(str(image))
        overlays = []
        for opacity in (0.2, 0.9):
            _, gallery, _ = client.predict(upload, "glioma", opacity, "gradcam", api_name="/predict")
            with Image.open(gallery[2]["image"]) as overlay:
                overlays.append(np.asarray(overlay.convert("RGB")))
        assert CountingExplainer.calls == 1
        assert not np.array_equal(*overlays)
        client.predict(upload, "meningioma", 0.9, "gradcam", api_name="/predict")
        client.predict(upload, "meningioma", 0.9, "eigencam", api_name="/predict")
        assert CountingExplainer.calls == 3
    finally:
        demo.close()
