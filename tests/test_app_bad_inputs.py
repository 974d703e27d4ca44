"""Every case of the bad-input corpus, sent through the running app's API.

Each one gets either a 3-image gallery or a short, specific error; nothing is
written outside Gradio's temp area; the next valid request still succeeds.
"""

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from synthetic import write_png, write_tiny_bundle
from test_bad_inputs import CORPUS

ROOT = Path(__file__).resolve().parents[1]


def _tree(root: Path) -> set[str]:
    skip = {".venv", "__pycache__", ".pytest_cache", "artifacts", ".git", ".cache"}
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        found.update(os.path.join(dirpath, f) for f in filenames)
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import app as app_module
    from explain.bundle import load_bundle

    folder = tmp_path_factory.mktemp("badapp")
    temp_area = folder / "gradio-temp"
    old = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(temp_area)  # read when components are built
    try:
        demo = app_module.build_demo(load_bundle(write_tiny_bundle(folder / "bundle")), examples=[])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        yield f"http://127.0.0.1:{port}/", folder
        demo.close()
    finally:
        if old is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old


def test_every_bad_input_through_the_api(served):
    from gradio_client import Client, handle_file

    url, folder = served
    client = Client(url, verbose=False)
    valid = write_png(folder / "valid.png", np.random.default_rng(0).integers(0, 256, (30, 30), dtype=np.uint8))
    before = _tree(ROOT)
    for name, (filename, make, expected) in sorted(CORPUS.items()):
        path = folder / "uploads" / name / filename
        path.parent.mkdir(parents=True)
        path.write_bytes(make())
        if isinstance(expected, str):
            with pytest.raises(Exception) as info:
                client.predict(handle_file(str(path)), "Predicted class", 0.4, api_name="/predict")
            message = str(info.value)
            assert expected in message.lower(), (name, message)
            assert len(message) < 300 and "Traceback" not in message, (name, message)
        else:
            _, gallery, _ = client.predict(handle_file(str(path)), "Predicted class", 0.4, api_name="/predict")
            assert len(gallery) == 3, name
        _, gallery, _ = client.predict(handle_file(str(valid)), "Predicted class", 0.4, api_name="/predict")
        assert len(gallery) == 3, f"valid request after {name} failed"
    assert _tree(ROOT) == before, "the app wrote files into the project tree"
