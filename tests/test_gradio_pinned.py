"""The app's one dependency on Gradio internals (ui/gradio_pinned.py) names the Gradio it was written for."""

import gradio

from ui.gradio_pinned import GRADIO_VERSION


def test_gradio_is_the_version_the_internal_css_was_written_for():
    assert gradio.__version__ == GRADIO_VERSION, (
        f"Gradio is {gradio.__version__}; ui/gradio_pinned.py targets {GRADIO_VERSION}. Check the phone "
        "layout (tests/test_browser.py's screenshots) against the new Gallery DOM, then update GRADIO_VERSION.")


def test_the_app_uses_no_template_component_and_no_examples_internals():
    """is_template subclasses make Gradio write app.pyi on import; load_input_event is undocumented."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sources = [root / "app.py", *sorted((root / "ui").glob("*.py"))]
    for path in sources:
        text = path.read_text()
        assert "is_template" not in text and "load_input_event" not in text, path
    assert not (root / "app.pyi").exists()
