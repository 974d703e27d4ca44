"""The page: :func:`layout` reads top to bottom as the page does; :func:`wire` is every event, in one place.

Events and their queues: single-image work (``/predict``, ``/download``, uploads,
option changes, example clicks) shares the ``model`` group, two at a time, and a
slow single-image request (Score-CAM or smoothing) takes at most one of the two
(:attr:`ui.handlers.Handlers.slow_lane`), so a long job never leaves other visitors
waiting behind it. The comparison and the batch have queues of their own. "Stop"
cancels the visitor's running comparison or explanation (Gradio's ``cancels=``).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from explain.methods import GRADIENT_FREE_METHODS, METHODS
from explain.pipeline import DEFAULT_METHOD
from explain.tta import TTA_COPIES

from .endpoints import Endpoints
from .handlers import PREDICTED
from .texts import DISCLAIMER, how_to_read

#: File types the upload boxes accept (DICOM and TIFF need the file box: browsers cannot show them).
FILE_TYPES = ["image", ".dcm", ".dicom", ".tif", ".tiff"]
#: Single-image requests served at once; with the slow lane, one of them is always free for a quick one.
MODEL_SLOTS = 2
QUEUE_SIZE = 64


@dataclass
class Page:
    """Every component an event reads or writes."""

    image: gr.Image
    examples: gr.Gallery | None
    file: gr.File
    class_choice: gr.Dropdown
    opacity: gr.Slider
    method: gr.Dropdown
    tta: gr.Checkbox
    run: gr.Button
    api_predict: gr.Button
    compare: gr.Button
    stop: gr.Button
    label: gr.Label
    slider: gr.ImageSlider
    note: gr.Markdown
    make_zip: gr.Button
    download: gr.DownloadButton
    gallery: gr.Gallery
    comparison: gr.Gallery
    batch_files: gr.File
    batch_run: gr.Button
    table: gr.Dataframe
    batch_csv: gr.File
    batch_gallery: gr.Gallery


def method_info(failing, score_cam_channels) -> str:
    return (f"Gradient-free ({', '.join(GRADIENT_FREE_METHODS)}) are slower; Score-CAM scores "
            + (f"the {score_cam_channels} most active channels." if score_cam_channels else "every channel.")
            + (f" Failed this model's randomisation sanity check: {', '.join(METHODS[m].label for m in failing)}."
               if failing else ""))


def layout(handlers, examples) -> Page:
    """The components, inside the current ``gr.Blocks``, for ``handlers``' bundle, explainer
    and settings; ``examples``: [(file, caption)]."""
    bundle, explainer, max_batch = handlers.bundle, handlers.explainer, handlers.settings.max_batch
    h, w = bundle.spec.size
    gr.Markdown("## Brain MRI tumour classifier with Grad-CAM", elem_id="title")
    gr.Markdown(DISCLAIMER, elem_id="disclaimer")
    with gr.Tabs():
        with gr.Tab("One slice", id="single"):  # noqa: SIM117 (nested as the page is)
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=300):
                    # Only a drop zone: its file goes to the file box untouched (see wire()).
                    image = gr.Image(label="MRI slice: drop, paste or click to upload", type="filepath",
                                     image_mode=None, sources=["upload", "clipboard"], height=210,
                                     elem_id="image-input")
                    # Thumbnails with their captions; a click explains the example with the current options.
                    shipped = gr.Gallery(examples, label="Examples: click one", columns=4, fit_columns=False,
                                         allow_preview=False, buttons=[], height="fit-content",
                                         object_fit="cover", interactive=False,
                                         elem_id="examples") if examples else None
                    file = gr.File(label="Or a DICOM / TIFF file (the exact file explained)", file_count="single",
                                   file_types=FILE_TYPES, elem_id="file-input")
                    with gr.Accordion("Options", open=False, elem_id="options"):
                        class_choice = gr.Dropdown([PREDICTED] + list(bundle.labels), value=PREDICTED,
                                                   label="Class to explain")
                        opacity = gr.Slider(0.0, 1.0, value=0.4, step=0.05, label="Heatmap opacity")
                        method = gr.Dropdown([(cls.label, name) for name, cls in METHODS.items()],
                                             value=DEFAULT_METHOD, label="CAM method",
                                             info=method_info(handlers.failing, handlers.settings.score_cam_channels))
                        tta = gr.Checkbox(False, label="Smooth the map (test-time augmentation)",
                                          info=f"Average over flipped and brightness-shifted copies; "
                                               f"{TTA_COPIES}x the CAM cost.", elem_id="tta")
                    with gr.Row():
                        run = gr.Button("Explain again", variant="primary", elem_id="run")
                        api_predict = gr.Button(visible=False)  # only the /predict endpoint (see wire())
                        compare = gr.Button("Compare all methods", elem_id="compare")
                        stop = gr.Button("Stop", variant="stop", elem_id="stop")
                with gr.Column(scale=3, min_width=320):
                    label = gr.Label(num_top_classes=len(bundle.labels), label="Class probabilities",
                                     elem_id="probabilities")
                    # The note (the input check's warning, the region check) right under the label it qualifies.
                    note = gr.Markdown(elem_id="note")
                    slider = gr.ImageSlider(label="Before / after: drag to compare the slice with the overlay",
                                            type="filepath", format="png", interactive=False, max_height=360,
                                            elem_id="slider")
                    with gr.Row():
                        make_zip = gr.Button("Zip the PNGs + report", size="sm", elem_id="make-zip")
                        download = gr.DownloadButton("Download the zip", value=None, size="sm",
                                                     elem_id="download")
                    # height="fit-content": "auto" still gets Gradio's 450px minimum.
                    gallery = gr.Gallery(label="Original, heatmap, overlay", columns=3, format="png",
                                         interactive=False, height="fit-content", object_fit="contain",
                                         elem_id="gallery")
                    comparison = gr.Gallery(label="All methods (overlays)", columns=4, format="png",
                                            interactive=False, height="fit-content", object_fit="contain",
                                            elem_id="comparison")
                    with gr.Accordion("How to read this", open=False, elem_id="how-to-read"):
                        gr.Markdown(how_to_read(bundle, str(explainer.target), explainer.engine().map_shape,
                                                handlers.failing, handlers.checked))
        with gr.Tab("Several slices", id="batch"):
            gr.Markdown(f"Up to {max_batch} slices: image files, DICOM (every frame of a multi-frame file) "
                        "or zip archives of them. A file that cannot be read gets a row with its error.")
            batch_files = gr.File(label="Slices", file_count="multiple", file_types=FILE_TYPES + [".zip"],
                                  elem_id="batch-input")
            batch_run = gr.Button("Classify all", variant="primary", elem_id="batch-run")
            table = gr.Dataframe(label="Results", interactive=False, wrap=True, elem_id="batch-table")
            batch_csv = gr.File(label="Results as CSV", interactive=False, elem_id="batch-csv")
            batch_gallery = gr.Gallery(label="Overlays", columns=6, format="png", height="fit-content",
                                       interactive=False, object_fit="contain", elem_id="batch-gallery")
    gr.Markdown(f"Model: `{bundle.model.name}`, input {h}x{w} {bundle.spec.color_mode}, preprocessing "
                f"`{bundle.spec.preprocessing}`, Grad-CAM layer `{explainer.target}`.", elem_id="model-info")
    return Page(image, shipped, file, class_choice, opacity, method, tta, run, api_predict, compare, stop, label,
                slider, note, make_zip, download, gallery, comparison, batch_files, batch_run, table, batch_csv,
                batch_gallery)


def wire(page: Page, ep: Endpoints, model_slots: int = MODEL_SLOTS) -> None:
    """Every event of the page. Public API: /predict, /download, /compare, /batch (and the MCP tool).

    ``model_slots``: single-image requests served at once (more with a model service behind
    the page, whose replicas batch them)."""
    p = page
    options = [p.class_choice, p.opacity, p.method, p.tta]
    inputs = [p.file, *options]
    single = [p.label, p.gallery, p.note, p.slider]
    model = {"concurrency_id": "model", "concurrency_limit": model_slots}
    private = {"api_visibility": "private"}
    unqueued = {"queue": False, "api_visibility": "private", "show_progress": "hidden"}

    # /predict: the page's result without the slider pair (an API client would fetch its two
    # files again); the hidden button only names the endpoint. "Explain again" fills the slider too.
    p.api_predict.click(ep.predict, inputs, single[:3], api_name="predict", **model)
    runs = [p.run.click(ep.show, inputs, single, **private, **model)]
    p.make_zip.click(ep.download, inputs, [p.download], api_name="download", **model)
    compared = p.compare.click(ep.compare, [p.file, p.class_choice, p.opacity, p.tta], [p.comparison],
                               api_name="compare", concurrency_id="compare", concurrency_limit=1)
    p.batch_run.click(ep.batch, [p.batch_files], [p.table, p.batch_csv, p.batch_gallery], api_name="batch",
                      concurrency_id="batch", concurrency_limit=1)

    # A new image (dropped, pasted, uploaded) runs at once; the first step, quick and unqueued,
    # clears what the previous image left. The image box hands over the uploaded file untouched
    # (preprocess=False): Gradio would otherwise open it with Pillow first.
    runs.append(p.image.upload(ep.start, [p.image], [p.file, p.comparison, p.download, *single],
                               preprocess=False, **unqueued)
                .then(ep.show, inputs, single, **private, **model))
    runs.append(p.file.upload(ep.preview, [p.file], [p.image, p.comparison, p.download, *single], **unqueued)
                .then(ep.show, inputs, single, **private, **model))
    for box in (p.image, p.file):
        box.clear(ep.clear, None, [p.image, p.file, p.comparison, p.download, *single], **unqueued)
    for control in options:
        control.change(ep.outdated, None, [p.comparison, p.download], **unqueued)
        runs.append(control.change(ep.show_if_any, inputs, single, show_progress="hidden", **private, **model))
    p.run.click(ep.outdated, None, [p.comparison, p.download], **unqueued)
    if p.examples is not None:
        runs.append(p.examples.select(ep.open_example, options,
                                      [p.image, p.file, p.comparison, p.download, *single], **private, **model))
    p.stop.click(None, None, None, cancels=[compared, *runs], queue=False)
