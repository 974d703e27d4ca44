"""Gradio demo: classify a brain MRI slice and show the Grad-CAM evidence.

    python app.py                       # bundled default model, http://127.0.0.1:7860
    python app.py --model my_bundle     # your own bundle (or a .keras file + --labels/--preprocessing/--color-mode)
    python app.py --share --auth user:password
    python app.py --mcp                 # also serve the prediction as an MCP tool

API endpoints (see the README for a ``gradio_client`` example):
``/predict`` (image file, class to explain, overlay opacity, method, TTA) ->
(label distribution, gallery of original / heatmap / overlay PNGs, markdown
note, zip of the PNGs + report.json); ``/compare`` (every method's overlay);
``/batch`` (several files -> table, CSV, overlays).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Set before gradio is imported: otherwise it phones home (analytics, version check)
# at start-up, which a private deployment does not want and an offline one waits on.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from explain.quiet import import_tensorflow  # noqa: E402

# TensorFlow's C++ start-up lines ("oneDNN custom operations ...", "Could not
# find cuda drivers ...") go to the process's stderr before any Python logging
# is set up; they are silenced unless --verbose asks for them.
import_tensorflow(quiet="--verbose" not in sys.argv[1:])

import gradio as gr  # noqa: E402

from explain.bundle import Bundle, add_model_options, default_bundle_path, load_from_args  # noqa: E402
from explain.io.decode import ACCEPTED_ALL, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS  # noqa: E402
from explain.errors import ExplainError  # noqa: E402
from explain.methods import GRADIENT_FREE_METHODS, METHODS  # noqa: E402
from explain.pipeline import DEFAULT_METHOD, Explainer  # noqa: E402
from explain.recent import RecentExplanations, file_key  # noqa: E402
from explain.tta import TTA_COPIES  # noqa: E402
from ui.batch import DEFAULT_MAX_ITEMS, expand, explain_items  # noqa: E402
from ui.examples import example_files  # noqa: E402
from ui.files import new_folder, result_files, save_png, write_csv  # noqa: E402
from ui.texts import DISCLAIMER, how_to_read, method_title, result_note  # noqa: E402

PREDICTED = "Predicted class"
AUTH_ENV = "BRAIN_MRI_AUTH"
#: Score-CAM in the app scores only the most active channels of the target layer:
#: uncapped it is one forward pass per channel (minutes per image for Xception on a CPU).
SCORE_CAM_CHANNELS = 128
#: File types the upload boxes accept (DICOM and TIFF need the file box: browsers cannot show them).
FILE_TYPES = ["image", ".dcm", ".dicom", ".tif", ".tiff"]
PAGE_CSS = """
#disclaimer { padding: 4px 10px; border-left: 4px solid #d97706; background: #fffbeb; }
#disclaimer p { margin: 0; font-size: 0.9em; }
#examples .gallery { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 6px; }
#examples .gallery-item { width: 100%; padding: 2px; text-align: center; }
#examples .gallery-item .container { width: 100%; max-width: none; height: auto; display: block; }
#examples .gallery-item img { width: 100%; height: auto; aspect-ratio: 1 / 1; object-fit: cover; }
@media (max-width: 640px) {
  #gallery .grid-container { grid-template-columns: 1fr; }
  #comparison .grid-container { grid-template-columns: repeat(2, 1fr); }
  #examples .gallery { grid-template-columns: repeat(2, minmax(0, 1fr)); }
}"""


class SliceImage(gr.Image):
    """An image box that hands the uploaded file to the pipeline untouched.

    gr.Image would open it with Pillow first (and, with an image mode set,
    re-encode it): errors would then be Pillow's, and a 16-bit or EXIF-rotated
    file would reach the model changed. The browser side is gr.Image's
    (``is_template``), so previews, drag-and-drop and paste work as usual.
    """

    is_template = True

    def preprocess(self, payload):
        return None if payload is None else str(payload.path)


def _caption_css(captions) -> str:
    rules = "".join(f'#examples .gallery-item:nth-of-type({k})::after {{ content: "{c}"; }}\n'
                    for k, c in enumerate((c.replace('"', "'") for c in captions), start=1))
    return ("<style>\n#examples .gallery-item::after { display: block; font-size: 0.72em; "
            "line-height: 1.2; margin-top: 2px; white-space: normal; }\n" + rules + "</style>")


def page_style() -> dict:
    """Theme and CSS for ``launch()`` (Gradio 6 takes them there, not in ``gr.Blocks``)."""
    return {"theme": gr.themes.Soft(), "css": PAGE_CSS}


def _path(file) -> str | None:
    if file is None:
        return None
    return file if isinstance(file, str) else getattr(file, "path", None) or getattr(file, "name", None)


def build_demo(bundle: Bundle, *, explainer: Explainer | None = None, examples=None,
               delete_cache: tuple[int, int] | None = (3600, 3600),
               max_batch: int = DEFAULT_MAX_ITEMS) -> gr.Blocks:
    """The Blocks UI for ``bundle``. ``examples``: list of (file, caption); default: the shipped ones."""
    explainer = explainer or Explainer(bundle, score_cam_channels=SCORE_CAM_CHANNELS)
    examples = example_files() if examples is None else examples
    h, w = bundle.spec.size
    failing = [m for m in METHODS if m in bundle.failed_sanity_check()]
    # Stored explanations hold the upload's pixels: keep them no longer than the upload itself.
    ttl = delete_cache[1] if delete_cache and delete_cache[1] > 0 else 600.0
    recent = RecentExplanations(ttl_seconds=ttl)
    # Expire on a timer too: entries otherwise go only when the next request comes.
    recent.expire_every(min(ttl, 60.0))

    def run_explainer(image_file, class_choice, opacity, method, tta=False):
        path = _path(image_file)
        if path is None:
            raise gr.Error(f"Upload an image first ({ACCEPTED_ALL}).")
        class_name = None if class_choice in (None, "", PREDICTED) else class_choice
        method, tta = method or DEFAULT_METHOD, bool(tta)
        try:
            opacity = float(opacity)
            if not 0.0 <= opacity <= 1.0:
                raise ValueError(f"Opacity must be between 0 and 1, got {opacity}.")
            # Only the opacity is left out of the key: a new opacity re-blends the
            # stored heatmap instead of running the model again.
            # Files over the decoder's size limit are not hashed; the decoder refuses them.
            file = file_key(path, max_bytes=explainer.max_bytes)
            key = None if file is None else (file, class_name, method, tta)
            exp = recent.get(key, lambda: explainer.explain(path, class_name, method=method, tta=tta))
            return exp, opacity, Path(path).name
        except (ExplainError, ValueError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def predict(image_file, class_choice: str = PREDICTED, opacity: float = 0.4, method: str = DEFAULT_METHOD,
                tta: bool = False):
        """Classify one brain MRI slice (glioma, meningioma, no tumour, pituitary) and explain it with Grad-CAM.

        A research demo on a public dataset: its output is not a diagnosis and must not be used as one.

        Args:
            image_file: the MRI slice (PNG, JPEG, BMP, TIFF, WebP, GIF or uncompressed DICOM).
            class_choice: the class whose evidence the heatmap shows; "Predicted class" for the top class.
            opacity: heatmap opacity in the overlay, 0 to 1.
            method: CAM method (gradcam, gradcampp, hirescam, xgradcam, layercam, scorecam, eigencam).
            tta: average the map over flipped and brightness-shifted copies.

        Returns:
            The probability of each class (they sum to 1), three PNG images (the decoded original,
            the heatmap where red marks the regions that raised the class score most, and the overlay),
            a short markdown note naming the predicted class, method and layer, and a zip with the
            three PNGs and report.json.
        """
        exp, opacity, name = run_explainer(image_file, class_choice, opacity, method, tta)
        title = method_title(exp.method, exp.tta)
        pictures, archive = result_files(gallery.GRADIO_CACHE, exp, opacity, name, (
            "Original", f"{title} heatmap ({exp.explained})", f"Overlay, opacity {opacity:.2f}"))
        return exp.probabilities, pictures, result_note(exp, failing), archive

    def compare(image_file, class_choice: str = PREDICTED, opacity: float = 0.4, tta: bool = False):
        """Overlays of every CAM method for one image (same class), as a gallery."""
        folder, items = new_folder(comparison.GRADIO_CACHE), []
        for name, cls in METHODS.items():
            exp, opacity, _ = run_explainer(image_file, class_choice, opacity, name, tta)
            items.append((save_png(folder, f"{name}.png", exp.overlay(opacity)), f"{cls.label} ({exp.explained})"))
        return items

    def batch(files, progress=gr.Progress()):
        """Classify several slices (images, DICOM incl. multi-frame, or zips of them); one row per slice."""
        paths = [p for p in (_path(f) for f in (files or [])) if p]
        if not paths:
            raise gr.Error(f"Add one or more files ({ACCEPTED_ALL}, or a zip of them).")
        try:
            items = expand(paths, max_items=max_batch, max_bytes=explainer.max_bytes,
                           max_pixels=explainer.max_pixels)
        except (ExplainError, ValueError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        header = ["file", "prediction"] + [f"p({label})" for label in bundle.labels] + ["empty map", "error"]
        rows, overlays = [], []
        folder = new_folder(batch_gallery.GRADIO_CACHE)
        for k, (item, exp, error) in enumerate(explain_items(
                explainer, items, lambda i, n: progress((i, n), desc="Explaining", unit="slices"))):
            if exp is None:
                rows.append([item.name, ""] + [None] * len(bundle.labels) + [None, error])
                continue
            rows.append([item.name, exp.predicted] + [round(exp.probabilities[label], 4) for label in bundle.labels]
                        + [exp.empty, ""])
            overlays.append((save_png(folder, f"{k:03d}.png", exp.overlay(0.4)),
                             f"{item.name}: {exp.predicted} ({exp.probabilities[exp.predicted]:.0%})"))
        return gr.Dataframe(value=rows, headers=header), write_csv(batch_gallery.GRADIO_CACHE, header, rows), overlays

    def start(path):
        """A new image: it becomes the current file, and every output of the previous one goes."""
        return path, None, None, "", None, None, None

    def preview(file):
        """A file from the file box (DICOM, TIFF...): show the decoded image at once, clear the rest."""
        path = _path(file)
        if path is None:
            return (None,) * 6 + ("",)
        try:
            image, _ = explainer.load(path)
        except (ExplainError, ValueError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        shown = save_png(new_folder(gallery.GRADIO_CACHE), "decoded.png", image)
        return shown, None, None, None, None, None, ""

    def slider_pair(pictures):
        """(original, overlay) for the before/after slider, from the gallery's three PNGs."""
        if not pictures or len(pictures) < 3:
            return None
        first, last = pictures[0], pictures[2]
        pick = lambda p: p[0] if isinstance(p, (list, tuple)) else p  # noqa: E731
        return (pick(first), pick(last))

    with gr.Blocks(title="Brain MRI Grad-CAM", delete_cache=delete_cache) as demo:
        gr.Markdown("## Brain MRI tumour classifier with Grad-CAM", elem_id="title")
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        with gr.Tabs():
            with gr.Tab("One slice", id="single"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=300):
                        image = SliceImage(label="MRI slice: drop, paste or click to upload", type="filepath",
                                           sources=["upload", "clipboard"], height=210, elem_id="image-input")
                        # Not cached by Gradio: its cache is keyed by the component, not the model,
                        # so after a model change it would serve the old model's answers; a click
                        # costs one model call (tens of ms) and the PNG writes.
                        shipped = gr.Examples(
                            [[f] for f, _ in examples], inputs=[image], label="Examples: click one",
                            examples_per_page=max(1, len(examples)), cache_examples=False,
                            elem_id="examples") if examples else None
                        if examples:
                            # Thumbnails with a caption under each: Gradio shows either thumbnails
                            # or text labels, so the captions come from CSS, in example order.
                            gr.HTML(_caption_css([c for _, c in examples]), elem_id="example-captions",
                                    padding=False)
                        file = gr.File(label="Or a DICOM / TIFF file (the exact file explained)", file_count="single",
                                       file_types=FILE_TYPES, elem_id="file-input")
                        with gr.Accordion("Options", open=False, elem_id="options"):
                            class_choice = gr.Dropdown([PREDICTED] + list(bundle.labels), value=PREDICTED,
                                                       label="Class to explain")
                            opacity = gr.Slider(0.0, 1.0, value=0.4, step=0.05, label="Heatmap opacity")
                            method = gr.Dropdown(
                                [(cls.label, name) for name, cls in METHODS.items()], value=DEFAULT_METHOD,
                                label="CAM method",
                                info=f"Gradient-free ({', '.join(GRADIENT_FREE_METHODS)}) are slower; "
                                     f"Score-CAM uses the {SCORE_CAM_CHANNELS} most active channels."
                                     + (f" Failed this model's randomisation sanity check: "
                                        f"{', '.join(METHODS[m].label for m in failing)}." if failing else ""))
                            tta = gr.Checkbox(False, label="Smooth the map (test-time augmentation)",
                                              info=f"Average over flipped and brightness-shifted copies; "
                                                   f"{TTA_COPIES}x the CAM cost.", elem_id="tta")
                        with gr.Row():
                            run = gr.Button("Explain again", variant="primary", elem_id="run")
                            compare_button = gr.Button("Compare all methods", elem_id="compare")
                    with gr.Column(scale=3, min_width=320):
                        label = gr.Label(num_top_classes=len(bundle.labels), label="Class probabilities",
                                         elem_id="probabilities")
                        slider = gr.ImageSlider(label="Before / after: drag to compare the slice with the overlay",
                                                type="filepath", format="png", interactive=False, max_height=360,
                                                elem_id="slider")
                        note = gr.Markdown(elem_id="note")
                        download = gr.DownloadButton("Download PNGs + report (zip)", value=None,
                                                     elem_id="download")
                        # height="auto" still gets Gradio's 450px minimum, leaving a blank band
                        # under the one row of images; fit-content sizes the gallery to them.
                        gallery = gr.Gallery(label="Original, heatmap, overlay", columns=3, format="png", interactive=False,
                                             height="fit-content", object_fit="contain", elem_id="gallery")
                        comparison = gr.Gallery(label="All methods (overlays)", columns=4, format="png", interactive=False,
                                                height="fit-content", object_fit="contain", elem_id="comparison")
                        with gr.Accordion("How to read this", open=False, elem_id="how-to-read"):
                            gr.Markdown(how_to_read(bundle, str(explainer.target), explainer.engine().map_shape,
                                                    failing))
            with gr.Tab("Several slices", id="batch"):
                gr.Markdown(f"Up to {max_batch} slices: image files, DICOM (every frame of a multi-frame file) "
                            "or zip archives of them. A file that cannot be read gets a row with its error.")
                batch_files = gr.File(label="Slices", file_count="multiple", file_types=FILE_TYPES + [".zip"],
                                      elem_id="batch-input")
                batch_run = gr.Button("Classify all", variant="primary", elem_id="batch-run")
                table = gr.Dataframe(label="Results", interactive=False, wrap=True, elem_id="batch-table")
                batch_csv = gr.File(label="Results as CSV", interactive=False, elem_id="batch-csv")
                batch_gallery = gr.Gallery(label="Overlays", columns=6, format="png", height="fit-content", interactive=False,
                                           object_fit="contain", elem_id="batch-gallery")
        gr.Markdown(
            f"Model: `{bundle.model.name}`, input {h}x{w} {bundle.spec.color_mode}, preprocessing "
            f"`{bundle.spec.preprocessing}`, Grad-CAM layer `{explainer.target}`.", elem_id="model-info")

        inputs = [file, class_choice, opacity, method, tta]
        outputs = [label, gallery, note, download]
        cleared = [file, label, gallery, note, download, slider, comparison]
        shown = dict(fn=slider_pair, inputs=[gallery], outputs=[slider], api_visibility="private",
                     show_progress="hidden")
        model = dict(concurrency_id="model")
        run.click(predict, inputs, outputs, api_name="predict", **model).then(**shown)
        compare_button.click(compare, [file, class_choice, opacity, tta], [comparison], api_name="compare", **model)
        batch_run.click(batch, [batch_files], [table, batch_csv, batch_gallery], api_name="batch", **model)
        # A new image (dropped, pasted or uploaded) runs at once; the first step, quick and
        # unqueued, clears what the previous image left on the page.
        image.upload(start, [image], cleared, queue=False, api_visibility="private").then(
            predict, inputs, outputs, api_visibility="private", **model).then(**shown)
        file.upload(preview, [file], [image, label, gallery, download, slider, comparison, note], queue=False,
                    api_visibility="private").then(
            predict, inputs, outputs, api_visibility="private", **model).then(**shown)
        for box in (image, file):
            box.clear(lambda: (None,) * 7, None, [image, label, gallery, download, slider, comparison, note],
                      queue=False, api_visibility="private")
        for control in (class_choice, opacity, method, tta):
            control.change(lambda f, c, o, m, t: predict(f, c, o, m, t) if _path(f) else (None, None, "", None),
                           inputs, outputs, api_visibility="private", show_progress="hidden", **model).then(**shown)
        if shipped is not None:
            # A click loads the example into the image box, then runs as an upload does.
            shipped.load_input_event.then(start, [image], cleared, queue=False, api_visibility="private").then(
                predict, inputs, outputs, api_visibility="private", **model).then(**shown)
    # One model, one queue: requests wait their turn rather than competing for the CPU.
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(p)
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="create a public share link (off unless asked for)")
    p.add_argument("--auth", default=os.environ.get(AUTH_ENV),
                   help=f"user:password protecting page and API (or ${AUTH_ENV})")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_BYTES / 2**20)
    p.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6)
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_ITEMS,
                   help="most slices one batch request may hold (files, zip members and DICOM frames)")
    p.add_argument("--delete-uploads-after", type=int, default=3600,
                   help="seconds after which uploaded and generated files are deleted")
    p.add_argument("--mcp", action="store_true",
                   help="also serve the prediction as an MCP tool (at /gradio_api/mcp/)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's and Gradio's start-up logging")
    return p.parse_args(argv)


def _auth(value: str | None):
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit("error: --auth must be user:password")
    return (user, password)


def main(argv=None) -> int:
    args = parse_args(argv)
    auth = _auth(args.auth)
    if args.max_batch < 1:
        raise SystemExit("error: --max-batch must be at least 1")
    if args.model is None and not (default_bundle_path() / "bundle.json").is_file():
        print(f"error: no model bundle at {default_bundle_path()}.\n"
              "Train the default one with `python -m training.train --arch compact --out models/default`,\n"
              "or run `python app.py --model PATH` with a bundle folder or a .keras file "
              "(plus --labels, --preprocessing and --color-mode).", file=sys.stderr)
        return 2
    try:
        bundle = load_from_args(args)
        explainer = Explainer(bundle, max_bytes=int(args.max_upload_mb * 2**20),
                              max_pixels=int(args.max_megapixels * 1e6), score_cam_channels=SCORE_CAM_CHANNELS)
    except (ExplainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(bundle.describe())
    print(f"Grad-CAM layer: {explainer.target} (map {explainer.engine().map_shape[0]}x"
          f"{explainer.engine().map_shape[1]}), method {explainer.default_method}")
    age = args.delete_uploads_after
    demo = build_demo(bundle, explainer=explainer, delete_cache=(age, age) if age > 0 else None,
                      max_batch=args.max_batch)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                max_file_size=int(args.max_upload_mb * 2**20), show_error=True, mcp_server=args.mcp,
                quiet=not args.verbose, prevent_thread_lock=True, **page_style())
    print(f"Running on {demo.share_url or demo.local_url}" + (
        f" (MCP server at {demo.local_url.rstrip('/')}/gradio_api/mcp/)" if args.mcp else ""), flush=True)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
