"""A long job (a comparison, Score-CAM, smoothing) never makes another visitor's quick request wait.

The explainer below holds every Score-CAM and TTA call at a gate until the test
opens it, so "long" is as long as the test wants, on any machine.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import app as app_module
from benchmarks.app_process import free_port
from explain.bundle import load_bundle
from explain.pipeline import Explainer
from synthetic import write_png, write_tiny_bundle

# Generous: a quick request on the tiny model takes well under a second even on a busy machine.
QUICK_S = 60


class GatedExplainer(Explainer):
    """Score-CAM and TTA calls wait for ``gate``; every call's method is logged in ``calls``."""

    def __init__(self, bundle):
        super().__init__(bundle)
        self.gate, self.waiting, self.calls = threading.Event(), threading.Event(), []

    def explain(self, source, class_name=None, *, method=None, tta=False):
        self.calls.append(method)
        if method == "scorecam" or tta:
            self.waiting.set()
            assert self.gate.wait(120), "the test never opened the gate"
        return super().explain(source, class_name, method=method, tta=tta)


@pytest.fixture()
def gated(tmp_path):
    bundle = load_bundle(write_tiny_bundle(tmp_path / "bundle"))
    explainer = GatedExplainer(bundle)
    images = [write_png(tmp_path / f"s{k}.png", np.random.default_rng(k).integers(0, 256, (40, 40), dtype=np.uint8))
              for k in range(3)]
    demo = app_module.build_demo(bundle, explainer=explainer, examples=[])
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", explainer, images
    finally:
        explainer.gate.set()
        demo.close()


def test_a_running_comparison_does_not_hold_up_predict(gated):
    from gradio_client import Client, handle_file

    url, explainer, images = gated
    slow = Client(url, verbose=False).submit(handle_file(str(images[0])), "glioma", 0.4, api_name="/compare")
    assert explainer.waiting.wait(QUICK_S), "the comparison never reached Score-CAM"
    quick = Client(url, verbose=False).submit(handle_file(str(images[1])), "glioma", 0.4, "gradcam",
                                              api_name="/predict")
    _, gallery, _ = quick.result(timeout=QUICK_S)
    assert len(gallery) == 3 and not slow.done()
    explainer.gate.set()
    assert len(slow.result(timeout=QUICK_S)) == len(app_module.METHODS)


def test_slow_single_requests_take_one_slot_at_most(gated):
    from gradio_client import Client, handle_file

    url, explainer, images = gated
    slow = Client(url, verbose=False).submit(handle_file(str(images[0])), "glioma", 0.4, "scorecam",
                                             api_name="/predict")
    assert explainer.waiting.wait(QUICK_S)
    # A second slow request is refused at once instead of taking the last slot ...
    with pytest.raises(Exception, match="slow job"):
        Client(url, verbose=False).submit(handle_file(str(images[1])), "glioma", 0.4, "gradcam", True,
                                          api_name="/predict").result(timeout=QUICK_S)
    # ... so a quick one still gets through.
    _, gallery, _ = Client(url, verbose=False).submit(
        handle_file(str(images[2])), "glioma", 0.4, "gradcam", api_name="/predict").result(timeout=QUICK_S)
    assert len(gallery) == 3 and not slow.done()
    explainer.gate.set()
    assert "Score-CAM" in slow.result(timeout=QUICK_S)[2]
