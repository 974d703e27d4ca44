"""The two trust checks as a person sees them, in a real headless Chromium (see test_browser.py):
a flagged upload shows the warning where the verdict would be, a real slice the region sentence
under the label, at a desktop and a phone width. Screenshots land in tests/artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

import app as app_module
from benchmarks.app_process import free_port
from explain.bundle import load_bundle
from explain.checks.input_check import WARNING
from ui.texts import FLAGGED_HEADLINE

from test_browser import ARTIFACTS, DESKTOP, PHONE, expect, page, upload  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
NON_MRI = ROOT / "tests" / "data" / "non_mri" / "shapes.png"
SLICE = ROOT / "examples" / "pituitary_Tr-pi_0346.jpg"


@pytest.fixture(scope="module")
def served_default():
    demo = app_module.build_demo(load_bundle(ROOT / "models" / "default"), examples=[])
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                show_error=True, **app_module.page_style())
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_flag_and_region_sentence_on_the_page(served_default, page, viewport):  # noqa: F811
    page.set_viewport_size(viewport)
    size = f"{viewport['width']}x{viewport['height']}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(served_default)

    upload(page, NON_MRI)
    # The note and the label, not the gallery: on a phone its images load lazily, below the fold.
    expect(page.locator("#note")).to_contain_text(WARNING)
    expect(page.locator("#probabilities")).to_contain_text(FLAGGED_HEADLINE)
    page.locator("#probabilities").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"trust-flagged-{size}.png"))

    upload(page, SLICE)
    expect(page.locator("#note")).to_contain_text("Without the highlighted region: p(")
    expect(page.locator("#probabilities")).not_to_contain_text(FLAGGED_HEADLINE)
    expect(page.locator("#note")).to_contain_text("Input check: like the training slices")
    page.locator("#note").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"trust-region-{size}.png"))
