"""The one place that depends on Gradio's undocumented internals, for the Gradio version below.

Only CSS remains: Gradio's Gallery takes one column count for every screen width,
so the phone layout (one result image per row) reaches into the gallery's internal
``.grid-container`` class. ``tests/test_gradio_pinned.py`` fails, naming both
versions, when the installed Gradio is not :data:`GRADIO_VERSION`: check the phone
layout (``tests/test_browser.py`` takes a phone-width screenshot) and update this file.
"""

from __future__ import annotations

#: The Gradio release whose DOM the rules below were written against (requirements.txt pins it).
GRADIO_VERSION = "6.31.0"

#: Our own element ids only, except the ``.grid-container`` rules (Gradio's Gallery grid).
PAGE_CSS = """
#disclaimer { padding: 4px 10px; border-left: 4px solid #d97706; background: #fffbeb; }
#disclaimer p { margin: 0; font-size: 0.9em; }
@media (max-width: 640px) {
  #gallery .grid-container { grid-template-columns: 1fr; }
  #comparison .grid-container, #examples .grid-container { grid-template-columns: repeat(2, 1fr); }
}"""
