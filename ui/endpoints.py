"""The handlers as Gradio sees them: its argument and output shapes, its errors, the API docs.

Each public method here is one event's function. Its docstring is what the API
page and the MCP tool show; its return value is the tuple of the event's
outputs. The work itself is in :class:`ui.handlers.Handlers`.
"""

from __future__ import annotations

from functools import wraps

import gradio as gr

from explain.errors import ExplainError
from explain.io.decode import ACCEPTED_ALL
from explain.pipeline import DEFAULT_METHOD

from .handlers import PREDICTED, Handlers, SingleResult


def path_of(value) -> str | None:
    """A file input as Gradio hands it over (a path, a FileData, or with ``preprocess=False`` a dict)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("path")
    return getattr(value, "path", None) or getattr(value, "name", None)


def shown(fn):
    """Turn the errors a visitor must read into Gradio's error toast, without a traceback."""
    @wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ExplainError, ValueError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
    return run


def _need(path):
    if path is None:
        raise gr.Error(f"Upload an image first ({ACCEPTED_ALL}).", print_exception=False)
    return path


#: What every single-image output shows before any result.
EMPTY_SINGLE = (None, None, "", None)


class Endpoints:
    """Gradio-shaped functions over :class:`Handlers`."""

    def __init__(self, handlers: Handlers, examples=()):
        self.handlers = handlers
        self.examples = list(examples)

    @staticmethod
    def single(result: SingleResult) -> tuple:
        """A result as the page shows it: (label, gallery, note, slider)."""
        return result.label, result.pictures, result.note, result.slider

    def predict(self, image_file, class_choice: str = PREDICTED, opacity: float = 0.4,
                method: str = DEFAULT_METHOD, tta: bool = False):
        """Classify one brain MRI slice (glioma, meningioma, no tumour, pituitary) and explain it with Grad-CAM.

        A research demo on a public dataset: its output is not a diagnosis and must not be used as one.

        Args:
            image_file: the MRI slice (PNG, JPEG, BMP, TIFF, WebP, GIF or uncompressed DICOM).
            class_choice: the class whose evidence the heatmap shows; "Predicted class" for the top class.
            opacity: heatmap opacity in the overlay, 0 to 1.
            method: CAM method (gradcam, gradcampp, hirescam, xgradcam, layercam, scorecam, eigencam).
            tta: average the map over flipped and brightness-shifted copies.

        Returns:
            The probability of each class (they sum to 1; when the input check flags the image, the
            headline is "Not like the training slices" instead of the top class, and the note starts
            with the warning), three PNG images (the decoded original,
            the heatmap where red marks the regions that raised the class score most, and the overlay),
            and a short markdown note naming the predicted class, the region check (the explained
            class's probability without the map's top region, against a random region of the same
            size), the input check, method and layer. The zip of these files and report.json
            comes from /download.
        """
        return self.show(image_file, class_choice, opacity, method, tta)[:3]

    def show(self, image_file, class_choice, opacity, method, tta):
        """/predict for the page: its outputs plus the (original, overlay) pair of the before/after
        slider, in the same event (the API leaves the pair out: two more files to fetch)."""
        path = _need(path_of(image_file))
        return self.single(shown(self.handlers.predict)(path, class_choice, opacity, method, tta))

    def show_if_any(self, image_file, class_choice, opacity, method, tta):
        """An option changed: explain the current file again, or show nothing when there is none."""
        if path_of(image_file) is None:
            return EMPTY_SINGLE
        return self.show(image_file, class_choice, opacity, method, tta)

    def download(self, image_file, class_choice: str = PREDICTED, opacity: float = 0.4,
                 method: str = DEFAULT_METHOD, tta: bool = False):
        """The zip of one result: the three PNGs of /predict and report.json (what the CLI writes for one image).

        Same arguments as /predict; an explanation computed moments ago is reused, not recomputed.
        """
        path = _need(path_of(image_file))
        return shown(self.handlers.archive)(path, class_choice, opacity, method, tta)

    def compare(self, image_file, class_choice: str = PREDICTED, opacity: float = 0.4, tta: bool = False):
        """Overlays of every CAM method for one image (same class), as a gallery."""
        path = _need(path_of(image_file))
        try:
            yield from self.handlers.compare(path, class_choice, opacity, tta)
        except (ExplainError, ValueError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def batch(self, files, progress=gr.Progress()):  # noqa: B008 (Gradio's documented way to ask for progress)
        """Classify several slices (images, DICOM incl. multi-frame, or zips of them); one row per slice."""
        paths = [p for p in (path_of(f) for f in (files or [])) if p]
        if not paths:
            raise gr.Error(f"Add one or more files ({ACCEPTED_ALL}, or a zip of them).", print_exception=False)
        result = shown(self.handlers.batch)(
            paths, lambda i, n: progress((i, n), desc="Explaining", unit="slices"))
        return gr.Dataframe(value=result.table, headers=result.header), result.csv_path, result.overlays

    # -- page-only steps (private: not in the API) -----------------------------------

    @staticmethod
    def start(image):
        """A new image in the image box: it becomes the current file; every older output goes.

        Outputs: file box, comparison, download, then the single-image outputs."""
        return (path_of(image), None, None) + EMPTY_SINGLE

    def preview(self, file):
        """A file in the file box (DICOM, TIFF...): its decoded image in the image box, every older output gone.

        Outputs: image box, comparison, download, then the single-image outputs."""
        path = path_of(file)
        shown_png = shown(self.handlers.preview)(path) if path else None
        return (shown_png, None, None) + EMPTY_SINGLE

    @staticmethod
    def clear():
        """Either box cleared: everything goes (image, file, comparison, download and results)."""
        return (None, None, None, None) + EMPTY_SINGLE

    @staticmethod
    def outdated():
        """The options changed: the comparison and the zip of the previous options go."""
        return None, None

    def open_example(self, class_choice, opacity, method, tta, evt: gr.SelectData):
        """An example thumbnail clicked: it becomes the image and the file, and is explained.

        Outputs: image box, file box, comparison, download, then the single-image outputs."""
        path = self.examples[evt.index][0]
        return (path, path, None, None) + self.show(path, class_choice, opacity, method, tta)
