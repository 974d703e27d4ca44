"""The app as a person uses it: a real headless Chromium driven by Playwright.

Playwright cannot download its own browser on these machines, so the test runs
Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``). It is
skipped, with the reason, only when that browser or the playwright package is
missing. Screenshots at a desktop and a phone width land in ``tests/artifacts/``
(git-ignored) so that a person can look at the layout after a run.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import app as app_module
from explain.bundle import load_bundle
from explain.pipeline import Explainer
from explain.tta import TTA_COPIES
from benchmarks.app_process import free_port
from synthetic import LABELS, write_png, write_tiny_bundle
from test_dicom import make_dicom

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Flags for a root user on a machine with no display and a closed network: without
# the background-networking ones Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# One prediction of the tiny model takes well under a second; the first one also
# builds the Grad-CAM graph, and the machine may be busy, hence the margin.
TIMEOUT_MS = 60_000
BAD_FILE_MESSAGE = "This file is not an image that can be read"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -r requirements-dev.txt)")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect
# Playwright's assertions wait 5 s by default; the first prediction can take longer.
expect.set_options(timeout=TIMEOUT_MS)



def expected_note(explainer: Explainer, path: Path) -> str:
    """The first line the app writes in #note for ``path``, computed offline."""
    exp = explainer.explain(str(path))
    return f"Prediction: {exp.predicted} ({exp.probabilities[exp.predicted]:.1%})."


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on a free port, with one example; yields (url, folder, bundle)."""
    folder = tmp_path_factory.mktemp("browser")
    bundle = load_bundle(write_tiny_bundle(folder / "bundle"))
    rng = np.random.default_rng(1)
    example = write_png(folder / "example_slice.png", rng.integers(0, 256, (40, 40), dtype=np.uint8))
    demo = app_module.build_demo(bundle, examples=[(str(example), "test example")], max_batch=5)
    port = free_port()
    # Styled as `python app.py` launches it: the layout checks below depend on its CSS.
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                show_error=True, **app_module.page_style())
    try:
        yield f"http://127.0.0.1:{port}/", folder, bundle
    finally:
        demo.close()


@pytest.fixture()
def page(tmp_path):
    """A page in a fresh Chromium profile (nothing cached from an earlier run)."""
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport=DESKTOP)
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def upload(page, path: Path, box: str = "#image-input"):
    """Drop ``path`` into ``box`` as a person would (no click on any button afterwards)."""
    # A filled box shows its content instead of the drop zone; its Clear button brings it back.
    clear = page.locator(box).get_by_role("button", name="Clear")
    if clear.count():
        clear.first.click()
    # The real <input type=file> is hidden behind the drop zone; Playwright can
    # still set files on it, which is what the browser's file chooser does.
    page.locator(f"{box} input[type=file]").set_input_files(str(path))


def wait_for_result(page, note_line: str):
    """Wait until the label lists every class, the gallery holds 3 images, the slider
    shows 2 and #note says ``note_line``."""
    expect(page.locator("#note")).to_contain_text(note_line)
    for name in LABELS:
        expect(page.locator("#probabilities")).to_contain_text(name)
    expect(page.locator("#gallery img")).to_have_count(3)
    expect(page.locator("#slider img")).to_have_count(2)
    for img in page.locator("#gallery img, #slider img").all():
        # naturalWidth > 0: the browser fetched and decoded the PNG, not just an <img> tag.
        expect(img).to_have_js_property("complete", True)
        assert img.evaluate("el => el.naturalWidth") > 0


def in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    view = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= view["height"]


def image_boxes(page) -> list[dict]:
    return [img.bounding_box() for img in page.locator("#gallery img").all()]


def test_first_contact_example_upload_and_download(served, page, tmp_path):
    url, folder, bundle = served
    explainer = Explainer(bundle)
    first = write_png(folder / "uploaded_slice.png",
                      np.random.default_rng(2).integers(0, 256, (48, 64), dtype=np.uint8))
    second = write_png(folder / "second_slice.png",
                       np.random.default_rng(3).integers(0, 256, (40, 56), dtype=np.uint8))
    example = folder / "example_slice.png"
    ARTIFACTS.mkdir(exist_ok=True)

    # What a new visitor sees at 1280x800 without scrolling: the disclaimer and the examples.
    page.goto(url)
    expect(page.locator("#disclaimer")).to_contain_text("not a medical device")
    expect(page.locator("#examples img")).to_have_count(1)
    # Each thumbnail carries its caption (a Gallery caption, not CSS).
    expect(page.locator("#examples")).to_contain_text("test example")
    assert in_viewport(page, "#disclaimer") and in_viewport(page, "#examples"), "not visible without scrolling"
    expect(page.locator("#slider")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "browser-start-1280x800.png"))

    # One click on the example: 4 class probabilities and the heatmaps.
    page.locator("#examples img").first.click()
    wait_for_result(page, expected_note(explainer, example))
    page.screenshot(path=str(ARTIFACTS / "browser-example-1280x800.png"), full_page=True)

    # An upload with no click shows its own result.
    upload(page, first)
    wait_for_result(page, expected_note(explainer, first))
    # Desktop: the three images side by side, and the gallery no taller than its row.
    boxes = image_boxes(page)
    assert len({round(b["y"]) for b in boxes}) == 1, boxes
    gallery_height = page.locator("#gallery").bounding_box()["height"]
    assert gallery_height < 1.5 * boxes[0]["height"] + 80, (gallery_height, boxes)

    # The method comparison of the first upload, then a second upload clears it
    # (and every other output) before showing its own result.
    page.locator("#compare").click()
    expect(page.locator("#comparison img")).to_have_count(len(app_module.METHODS))
    upload(page, second)
    expect(page.locator("#comparison img")).to_have_count(0)
    wait_for_result(page, expected_note(explainer, second))
    expect(page.locator("#comparison img")).to_have_count(0)

    # The zip of the current result, built when asked for: the 3 PNGs and the CLI's report.json.
    page.locator("#make-zip").click()
    expect(page.locator("#download")).to_be_enabled()
    page.wait_for_timeout(500)
    with page.expect_download() as download:
        page.locator("#download").click()
    archive = tmp_path / "result.zip"
    download.value.save_as(archive)
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["1_original.png", "2_heatmap.png", "3_overlay.png", "report.json"]
        report = json.loads(z.read("report.json"))
    assert report["image"] == second.name and set(report["probabilities"]) == set(LABELS)

    # The same result at a phone width: nothing overflows sideways and the
    # images are stacked, each about as wide as the screen.
    page.set_viewport_size(PHONE)
    page.wait_for_function("document.querySelector('#gallery img').getBoundingClientRect().width > 250")
    page.screenshot(path=str(ARTIFACTS / "browser-phone-390x844.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"page is {overflow}px wider than a 390px screen"
    boxes = image_boxes(page)
    assert all(b["width"] > 250 for b in boxes), boxes
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"], boxes
    page.set_viewport_size(DESKTOP)

    # Ticking the smoothing box re-runs the same image with TTA; unticking goes back.
    page.locator("#options").click()
    page.locator("#tta input[type=checkbox]").check()
    expect(page.locator("#note")).to_contain_text(f"averaged over {TTA_COPIES} flipped and brightness-shifted")
    page.locator("#tta input[type=checkbox]").uncheck()
    expect(page.locator("#note")).not_to_contain_text("averaged over")


def test_bad_file_dicom_and_batch_in_a_real_browser(served, page, tmp_path):
    url, folder, bundle = served
    explainer = Explainer(bundle)
    good = write_png(folder / "good_slice.png", np.random.default_rng(4).integers(0, 256, (40, 40), dtype=np.uint8))
    page.goto(url)
    expect(page.locator("#disclaimer")).to_be_visible()

    # A .png that is really text: the decoder's message in an error toast, no stack trace.
    bad = folder / "not_really.png"
    bad.write_text("this is a text file, not a picture\n" * 20)
    upload(page, bad)
    toast = page.locator("[data-testid=toast-text]").filter(has_text=BAD_FILE_MESSAGE)
    expect(toast).to_be_visible()
    page.wait_for_timeout(800)  # the toast slides in; let it settle for the screenshot
    page.screenshot(path=str(ARTIFACTS / "browser-error-toast-1280x800.png"))
    assert "Traceback" not in page.locator("body").inner_text()
    # After the error the page still works.
    upload(page, good)
    wait_for_result(page, expected_note(explainer, good))

    # A DICOM file in the file box: its decoded image appears in the image box, then the result.
    pixels = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 7) % 4096
    dcm = tmp_path / "slice.dcm"
    dcm.write_bytes(make_dicom(pixels, WindowCenter=2048, WindowWidth=4096))
    upload(page, dcm, "#file-input")
    expect(page.locator("#image-input img")).to_have_count(1)
    wait_for_result(page, expected_note(explainer, dcm))

    # The batch tab: one row per file, the bad file as its own error row.
    page.get_by_role("tab", name="Several slices").click()
    page.locator("#batch-input input[type=file]").set_input_files([str(good), str(bad), str(dcm)])
    page.locator("#batch-run").click()
    table = page.locator("#batch-table")
    expect(table).to_contain_text(BAD_FILE_MESSAGE)
    for name in (good.name, bad.name, dcm.name):
        expect(table).to_contain_text(name)
    expect(page.locator("#batch-gallery img")).to_have_count(2)
    expect(page.locator("#batch-csv")).to_contain_text("batch")
    page.screenshot(path=str(ARTIFACTS / "browser-batch-1280x800.png"), full_page=True)


def test_clearing_and_changing_options_leave_nothing_stale(served, page):
    url, folder, bundle = served
    explainer = Explainer(bundle)
    image = write_png(folder / "stale_slice.png", np.random.default_rng(5).integers(0, 256, (40, 40), dtype=np.uint8))
    page.goto(url)
    upload(page, image)
    wait_for_result(page, expected_note(explainer, image))

    # A comparison, then another class: the old comparison goes with the old class.
    page.locator("#compare").click()
    expect(page.locator("#comparison img")).to_have_count(len(app_module.METHODS))
    page.locator("#options").click()
    page.locator("#options input[type=range]").fill("0.8")
    expect(page.locator("#comparison img")).to_have_count(0)
    expect(page.locator("#gallery img")).to_have_count(3)

    # Clearing the image box clears everything, the file box included: a later option
    # change then explains nothing (it used to re-explain the removed image).
    page.locator("#image-input").get_by_role("button", name="Remove Image").click()
    expect(page.locator("#gallery img")).to_have_count(0)
    expect(page.locator("#file-input")).not_to_contain_text(image.name)
    page.locator("#options input[type=range]").fill("0.3")
    page.wait_for_timeout(1500)
    expect(page.locator("#note")).not_to_contain_text("Prediction")
    expect(page.locator("#gallery img")).to_have_count(0)


def test_stop_cancels_a_running_comparison(page, tmp_path):
    from test_app_queues import GatedExplainer

    bundle = load_bundle(write_tiny_bundle(tmp_path / "bundle"))
    explainer = GatedExplainer(bundle)
    image = write_png(tmp_path / "slice.png", np.random.default_rng(6).integers(0, 256, (40, 40), dtype=np.uint8))
    demo = app_module.build_demo(bundle, explainer=explainer, examples=[])
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        upload(page, image)
        expect(page.locator("#gallery img")).to_have_count(3)
        page.locator("#compare").click()
        assert explainer.waiting.wait(TIMEOUT_MS / 1000), "the comparison never reached Score-CAM"
        page.locator("#stop").click()
        page.wait_for_timeout(1000)
        explainer.gate.set()
        page.wait_for_timeout(2000)
        # The methods after Score-CAM (Eigen-CAM) were never asked for: the comparison stopped.
        assert "eigencam" not in explainer.calls, explainer.calls
    finally:
        explainer.gate.set()
        demo.close()
