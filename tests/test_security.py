"""What the running app gives away, and to whom.

The app is launched as ``python app.py --auth user:password`` would launch it
(page and API behind a login), with Gradio's upload/cache folder moved to a
temporary directory (``GRADIO_TEMP_DIR``) so that what lands there can be
inspected. Checked: the API and the page need the login; no file of the server
outside Gradio's cache can be fetched through the app, logged in or not;
uploads and results are deleted on the ``delete_cache`` schedule; and the logs
of a request never hold image data. Two strict xfails record Gradio 6.31
defects found here (the login page describes the API; gr.File leaves an empty
temp file per request); each will report itself once a Gradio upgrade fixes it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest

import app as app_module
from ui.texts import DISCLAIMER
from explain.bundle import load_bundle
from benchmarks.app_process import free_port
from synthetic import write_png, write_tiny_bundle

USER, PASSWORD = "u", "p"
ROOT = Path(__file__).resolve().parents[1]
# delete_cache=(frequency, age): every second, delete what is older than a second.
DELETE_CACHE = (1, 1)
DELETE_WAIT_S = 10


def launch(bundle, delete_cache):
    """Launch with auth on a free port; returns (demo, url)."""
    demo = app_module.build_demo(bundle, examples=[], delete_cache=delete_cache)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                auth=(USER, PASSWORD), show_error=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Bundle, images and a private Gradio cache folder for this module."""
    folder = tmp_path_factory.mktemp("security")
    cache = folder / "gradio-cache"
    cache.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        # Components read the upload folder when they are built, so set it first.
        mp.setenv("GRADIO_TEMP_DIR", str(cache))
        bundle_dir = write_tiny_bundle(folder / "bundle")
        image = write_png(folder / "secret_scan.png",
                          np.random.default_rng(3).integers(0, 256, (40, 48), dtype=np.uint8))
        yield {"folder": folder, "cache": cache, "bundle_dir": bundle_dir,
               "bundle": load_bundle(bundle_dir), "image": image}


@pytest.fixture(scope="module")
def secured(env):
    """The app behind auth with the default delete_cache; yields its URL."""
    demo, url = launch(env["bundle"], delete_cache=(3600, 3600))
    try:
        yield url
    finally:
        demo.close()


@contextmanager
def logged_in(url: str):
    """An httpx client holding the session cookie of a good login."""
    with httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("login", data={"username": USER, "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield client


def anonymous(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30)


def test_api_needs_the_login(secured, env):
    from gradio_client import Client, handle_file

    # gradio_client gives up before any request: it cannot even read the app's config.
    with pytest.raises(ValueError, match="credentials were not provided"):
        Client(secured, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(secured, auth=(USER, "wrong"), verbose=False)
    # The raw endpoints behind gradio_client refuse an anonymous caller too.
    with anonymous(secured) as anon:
        for path in ("config", "gradio_api/info", "gradio_api/call/predict"):
            r = anon.get(path) if path != "gradio_api/call/predict" else anon.post(path, json={"data": []})
            assert r.status_code in (401, 403), (path, r.status_code, r.text[:200])
        r = anon.post("gradio_api/upload", files={"files": ("x.png", env["image"].read_bytes(), "image/png")})
        assert r.status_code in (401, 403), (r.status_code, r.text[:200])

    client = Client(secured, auth=(USER, PASSWORD), verbose=False)
    label, gallery, note = client.predict(handle_file(str(env["image"])), app_module.PREDICTED, 0.4,
                                          api_name="/predict")
    assert len(label["confidences"]) == 4 and len(gallery) == 3 and "Prediction" in note


def page_config(html: str) -> dict:
    """The ``window.gradio_config`` object that the page embeds (the whole UI is in it)."""
    start = html.index("window.gradio_config = ") + len("window.gradio_config = ")
    return json.JSONDecoder().raw_decode(html[start:])[0]


def test_page_needs_the_login(secured):
    markers = ("image-input", "not a medical device", DISCLAIMER[:40])
    with anonymous(secured) as anon:
        page = anon.get("").text
        config = page_config(page)
        assert config.get("auth_required") is True
        assert not config["components"] and not config["dependencies"], "UI served without a login"
        assert not any(m in page for m in markers), "the app's UI is served without a login"
    with logged_in(secured) as client:
        page = client.get("").text
        # Sanity check of the markers: after the login the same request gives the app.
        assert page_config(page)["components"]
        assert all(m in page for m in markers)


@pytest.mark.xfail(strict=True, reason=(
    "Gradio 6.31 defect: the login page embeds window.gradio_api_info (endpoint names, parameter "
    "labels, the class list as choices) for anyone, though /gradio_api/info answers 401 without a "
    "login. Nothing secret leaks (no files, no results); if a Gradio upgrade fixes it this test "
    "passes, and strict xfail says so."))
def test_login_page_does_not_describe_the_api(secured):
    with anonymous(secured) as anon:
        page = anon.get("").text
    assert "/predict" not in page and "class_choice" not in page


def file_urls(env) -> list[str]:
    """Ways to ask the app for a server file that it never handed out."""
    cache = env["cache"]
    model = Path(env["bundle_dir"]) / "model.keras"
    targets = ["/etc/passwd", str(model), str(ROOT / "app.py"), str(env["image"]),
               f"{cache}/../bundle/model.keras", f"{cache}/../../../../../../etc/passwd"]
    urls = []
    for target in targets:
        urls += [f"gradio_api/file={target}", f"file={target}", f"gradio_api/file={quote(target, safe='')}"]
    urls.append("gradio_api/file=" + "%2e%2e/" * 12 + "etc/passwd")
    return urls


@pytest.mark.parametrize("login", [False, True], ids=["anonymous", "logged-in"])
def test_no_server_file_is_readable_through_the_app(secured, env, login):
    model_bytes = (Path(env["bundle_dir"]) / "model.keras").read_bytes()[:64]
    data = env["image"].read_bytes()
    with logged_in(secured) as http:
        [uploaded] = http.post("gradio_api/upload", files={"files": ("scan.png", data, "image/png")}).json()
    with (logged_in(secured) if login else anonymous(secured)) as client:
        # Control: a file the app did hand out is served by this URL form, but only after a login.
        r = client.get(f"gradio_api/file={uploaded}")
        if login:
            assert r.status_code == 200 and r.content == data
        else:
            assert r.status_code in (401, 403) and data not in r.content, r.status_code
        for url in file_urls(env):
            r = client.get(url)
            leaked = b"root:" in r.content or model_bytes in r.content or b"def build_demo" in r.content
            assert r.status_code != 200 and not leaked, (url, r.status_code, r.content[:120])


class CacheWatcher(threading.Thread):
    """Records every file seen under ``folder`` (polled every 50 ms) until stopped."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder, self.seen, self._halt = folder, set(), threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.seen.update(files_in(self.folder))
            self._halt.wait(0.05)

    def stop(self) -> set[Path]:
        self._halt.set()
        self.join()
        return self.seen


@pytest.fixture()
def expiring(env, tmp_path, monkeypatch):
    """The app behind auth with delete_cache=(1, 1) and a cache folder of its own."""
    cache = tmp_path / "expiring-cache"
    cache.mkdir()
    # A folder of its own: the module's other server keeps its files for an hour.
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    demo, url = launch(env["bundle"], delete_cache=DELETE_CACHE)
    try:
        yield url, cache
    finally:
        demo.close()


def files_in(folder: Path) -> list[Path]:
    """Every file under ``folder`` now. The app's sweeper deletes whole folders while this walks:
    os.walk skips a folder that vanished (Path.rglob raises FileNotFoundError)."""
    return [Path(root, name) for root, _, names in os.walk(folder) for name in names]


def non_empty_files(folder: Path) -> list[Path]:
    """Files under ``folder`` that hold bytes; one deleted between listing and stat is gone, not an error."""
    found = []
    for path in files_in(folder):
        try:
            if path.stat().st_size:
                found.append(path)
        except FileNotFoundError:
            pass
    return found


def test_uploads_and_results_are_deleted_on_schedule(env, expiring):
    """delete_cache=(1, 1): the upload and the result PNGs of a request vanish within seconds."""
    from gradio_client import Client, handle_file

    url, cache = expiring
    watcher = CacheWatcher(cache)
    watcher.start()
    # Upload as the browser does, to learn the server-side path of an upload.
    with logged_in(url) as http:
        r = http.post("gradio_api/upload",
                      files={"files": ("browser_upload.png", env["image"].read_bytes(), "image/png")})
        assert r.status_code == 200, r.text
        [uploaded] = r.json()
    uploaded = Path(uploaded)
    assert uploaded.is_relative_to(cache) and uploaded.is_file()
    # A whole request: its upload and its three result PNGs land in the cache too.
    Client(url, auth=(USER, PASSWORD), verbose=False).predict(
        handle_file(str(env["image"])), app_module.PREDICTED, 0.4, api_name="/predict")

    deadline = time.monotonic() + DELETE_WAIT_S
    while time.monotonic() < deadline and non_empty_files(cache):
        time.sleep(0.25)
    seen = watcher.stop()
    names = {p.name for p in seen}
    # Sanity check: the files whose deletion is checked did exist.
    assert {env["image"].name, "1_original.png", "2_heatmap.png", "3_overlay.png"} <= names, names
    # Empty files are Gradio's stray temp files (see the next test); they hold no data.
    left = non_empty_files(cache)
    assert not uploaded.exists(), "upload not deleted"
    assert not left, f"still in the cache after {DELETE_WAIT_S}s: {left}"


@pytest.mark.xfail(strict=True, reason=(
    "Gradio 6.31 defect: gr.File(type='filepath').preprocess creates an unused "
    "NamedTemporaryFile(delete=False) in the cache folder for every request. The file is empty "
    "and untracked, so neither delete_cache nor shutdown removes it: one 0-byte file per request."))
def test_a_request_leaves_no_stray_files(env, expiring):
    from gradio_client import Client, handle_file

    url, cache = expiring
    before = set(files_in(cache))
    Client(url, auth=(USER, PASSWORD), verbose=False).predict(
        handle_file(str(env["image"])), app_module.PREDICTED, 0.4, api_name="/predict")
    stray = [p for p in set(files_in(cache)) - before if p.parent == cache and p.name.startswith("tmp")]
    assert not stray, stray


def test_logs_hold_no_image_data(secured, env, capfd, caplog):
    """A good and two bad uploads, with every logger at DEBUG: no pixels or file bytes in the output."""
    from gradio_client import Client, handle_file

    folder = env["folder"]
    # A PNG whose first chunk is garbage: Pillow's own message would quote its raw bytes.
    broken = folder / "broken_chunk.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + bytes(range(200)))
    text = folder / "text.png"
    text.write_text("not a picture\n" * 30)
    image_bytes = env["image"].read_bytes()

    client = Client(secured, auth=(USER, PASSWORD), verbose=False)
    caplog.set_level(logging.DEBUG)
    capfd.readouterr()
    client.predict(handle_file(str(env["image"])), app_module.PREDICTED, 0.4, api_name="/predict")
    for bad in (broken, text):
        with pytest.raises(Exception):
            client.predict(handle_file(str(bad)), app_module.PREDICTED, 0.4, api_name="/predict")
    out = capfd.readouterr()
    logged = "\n".join([out.out, out.err, caplog.text])
    # Sanity check: the capture saw the requests (the HTTP client logs each at INFO).
    assert "gradio_api/queue/join" in logged and "gradio_api/upload" in logged

    forbidden = {
        "PNG signature": "\x89PNG",
        "PNG signature (repr)": "\\x89PNG",
        "base64 PNG": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()[:10],
        "data URL": "data:image",
        "upload bytes (base64)": base64.b64encode(image_bytes[16:64]).decode()[:40],
        "bytes of the broken chunk": "\\x01\\x02\\x03\\x04",
    }
    found = [name for name, s in forbidden.items() if s in logged]
    # Any long base64-looking run would be an encoded file or array.
    found += [f"base64-like run {m.group()[:30]}..." for m in re.finditer(r"[A-Za-z0-9+/=]{120,}", logged)]
    assert not found, found
