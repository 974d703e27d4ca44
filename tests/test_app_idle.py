"""An idle app, once its deletion interval has passed, holds nothing of past requests:
no files, no folders, no stored pixels; and building apps does not pile up threads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

import app as app_module
from benchmarks.app_process import free_port
from explain.bundle import load_bundle
from synthetic import write_png, write_tiny_bundle
from test_dicom import make_dicom
from ui import sweeper

WAIT_S = 40  # delete_cache=(1, 5): everything should go within about 6 s of the last request


def leftovers(cache: Path) -> list[Path]:
    """Everything under the cache except the app's (empty) results folder itself. os.walk, since
    the sweeper deletes folders while this looks (Path.rglob raises on a folder that vanished)."""
    found = [Path(root, name) for root, folders, files in os.walk(cache) for name in folders + files]
    return sorted(p for p in found if p != cache / "results")


def test_an_idle_app_forgets_every_request(tmp_path, monkeypatch):
    from gradio_client import Client, handle_file

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    bundle = load_bundle(write_tiny_bundle(tmp_path / "bundle"))
    image = write_png(tmp_path / "slice.png", np.random.default_rng(3).integers(0, 256, (40, 40), dtype=np.uint8))
    dicom = tmp_path / "frames.dcm"
    dicom.write_bytes(make_dicom(np.arange(2 * 40 * 40, dtype=np.uint16).reshape(2, 40, 40)))
    demo = app_module.build_demo(bundle, examples=[], delete_cache=(1, 5))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        upload = handle_file(str(image))
        client.predict(upload, "glioma", 0.4, "gradcam", False, api_name="/predict")
        client.predict(upload, "glioma", 0.4, "gradcam", False, api_name="/download")
        client.predict(upload, "glioma", 0.4, False, api_name="/compare")
        client.predict([handle_file(str(image)), handle_file(str(dicom))], api_name="/batch")
        try:  # a comparison that fails midway
            client.predict(upload, "no-such-class", 0.4, False, api_name="/compare")
        except Exception:
            pass
        handlers = demo.handlers
        assert len(handlers.recent) > 0 and handlers.files.folders(), "the requests left nothing to check"

        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and (leftovers(cache) or len(handlers.recent)):
            time.sleep(0.5)
        assert leftovers(cache) == [], leftovers(cache)
        assert len(handlers.recent) == 0
    finally:
        demo.close()


def test_building_many_apps_starts_one_sweeper_thread(tmp_path):
    bundle = load_bundle(write_tiny_bundle(tmp_path / "bundle"))
    for _ in range(3):
        app_module.build_demo(bundle, examples=[])
    assert len(sweeper.threads()) == 1
