"""Gradio demo: classify a brain MRI slice and show the Grad-CAM evidence.

    python app.py                       # bundled default model, http://127.0.0.1:7860
    python app.py --model my_bundle     # your own bundle (or a .keras file + --labels/--preprocessing)
    python app.py --share --auth user:password

The API endpoint ``/predict`` takes (image file, class to explain, overlay
opacity) and returns (label distribution, gallery of original / heatmap /
overlay PNGs, a markdown note); see the README for a ``gradio_client`` example.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

# Set before gradio is imported: otherwise it phones home (analytics, version check)
# at start-up, which a private deployment does not want and an offline one waits on.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np
from PIL import Image

from explain.audit import sanity_failures
from explain.bundle import Bundle, add_model_options, default_bundle_path, load_from_args
from explain.decode import ACCEPTED, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from explain.errors import ExplainError
from explain.methods import GRADIENT_FREE_METHODS, METHODS
from explain.pipeline import DEFAULT_METHOD, Explainer
from explain.recent import RecentExplanations, file_key

ROOT = Path(__file__).resolve().parent
EXAMPLES_JSON = ROOT / "examples" / "examples.json"
PREDICTED = "Predicted class"
DISCLAIMER = (
    "**Research demo, not a medical device.** Predictions and heatmaps are for illustrating "
    "Grad-CAM on a public dataset; they must not be used for diagnosis or treatment decisions. "
    "Do not upload images that identify a patient."
)
AUTH_ENV = "BRAIN_MRI_AUTH"
#: Score-CAM in the app scores only the most active channels of the target layer:
#: uncapped it is one forward pass per channel (minutes per image for Xception on a CPU).
SCORE_CAM_CHANNELS = 128
# On a phone the three gallery images (original, heatmap, overlay) are stacked one
# per row, and the method comparison shows two a row: squeezed three or four to a
# 390px row they were about 100px wide or less.
PAGE_CSS = """@media (max-width: 640px) {
  #gallery .grid-container { grid-template-columns: 1fr; }
  #comparison .grid-container { grid-template-columns: repeat(2, 1fr); }
}"""


def page_style() -> dict:
    """Theme and CSS for ``launch()`` (Gradio 6 takes them there, not in ``gr.Blocks``)."""
    return {"theme": gr.themes.Soft(), "css": PAGE_CSS}


def example_files(path: Path = EXAMPLES_JSON) -> list[tuple[str, str]]:
    """(local file, caption) for every listed example that has been copied into examples/."""
    if not path.is_file():
        return []
    found = []
    for entry in json.loads(path.read_text())["examples"]:
        local = path.parent / entry["file"]
        if local.is_file():
            found.append((str(local), f"{entry['label']} ({Path(entry['source']).name})"))
    return found


def _markdown_note(exp, failing=()) -> str:
    lines = [f"**Prediction:** {exp.predicted} ({exp.probabilities[exp.predicted]:.1%}).",
             f"**Heatmap of:** {exp.explained} — method {exp.method}, layer `{exp.layer}`"
             + (", averaged over 6 flipped and brightness-shifted copies." if exp.tta else ".")]
    if exp.empty:
        lines.append(f"No region of the image raises the {exp.explained} score: the heatmap is empty.")
    if exp.method in failing:
        lines.append(f"{METHODS[exp.method].label} failed the model-randomisation sanity check in this "
                     "model's audit: its map changes little when the model's weights are randomised, so it "
                     "shows where features are active more than what the class relies on.")
    return "\n\n".join(lines)


def _result_pngs(cache_dir: str, items: list[tuple[str, np.ndarray, str]]) -> list[tuple[str, str]]:
    """Write (name, uint8 array, caption) items as PNGs in a new folder of ``cache_dir``.

    Returns (path, caption) pairs for a gr.Gallery. Why not hand Gradio the arrays:
    it saves each one under a name derived from its content and rewrites that file in
    place whenever the same picture comes again, so a client still downloading it from
    an earlier request gets it empty or cut short (seen with concurrent requests for
    one image). These files are new for every request and complete before their URLs
    are handed out; inside the cache folder, Gradio serves them as they are and
    removes them on the ``delete_cache`` schedule.
    """
    folder = Path(cache_dir) / "results" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    pairs = []
    for name, array, caption in items:
        path = folder / f"{name}.png"
        Image.fromarray(array).save(path, format="PNG")
        pairs.append((str(path), caption))
    return pairs


def build_demo(bundle: Bundle, *, explainer: Explainer | None = None, examples=None,
               delete_cache: tuple[int, int] | None = (3600, 3600)) -> gr.Blocks:
    """The Blocks UI for ``bundle``. ``examples``: list of (file, caption); default from examples.json."""
    explainer = explainer or Explainer(bundle, score_cam_channels=SCORE_CAM_CHANNELS)
    examples = example_files() if examples is None else examples
    h, w = bundle.spec.size
    failing = sanity_failures(bundle)
    # Stored explanations hold the upload's pixels: keep them no longer than the upload itself.
    recent = RecentExplanations(ttl_seconds=delete_cache[1] if delete_cache and delete_cache[1] > 0 else 600.0)

    def run_explainer(image_file, class_choice, opacity, method, tta=False):
        if image_file is None:
            raise gr.Error(f"Upload an image first ({ACCEPTED} or DICOM).")
        path = image_file if isinstance(image_file, str) else getattr(image_file, "name", image_file)
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
            return recent.get(key, lambda: explainer.explain(path, class_name, method=method, tta=tta)), opacity
        except (ExplainError, ValueError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def predict(image_file, class_choice: str = PREDICTED, opacity: float = 0.4, method: str = DEFAULT_METHOD,
                tta: bool = False):
        """Classify one MRI slice and return (probabilities, [original, heatmap, overlay], note)."""
        exp, opacity = run_explainer(image_file, class_choice, opacity, method, tta)
        title = METHODS[exp.method].label + (" + TTA" if exp.tta else "")
        pictures = _result_pngs(gallery.GRADIO_CACHE, [
            ("original", exp.image, "Original"),
            ("heatmap", exp.heatmap_rgb(), f"{title} heatmap ({exp.explained})"),
            ("overlay", exp.overlay(opacity), f"Overlay, opacity {opacity:.2f}"),
        ])
        return exp.probabilities, pictures, _markdown_note(exp, failing)

    def compare(image_file, class_choice: str = PREDICTED, opacity: float = 0.4, tta: bool = False):
        """Overlays of every CAM method for one image (same class), as a gallery."""
        items = []
        for name, cls in METHODS.items():
            exp, opacity = run_explainer(image_file, class_choice, opacity, name, tta)
            items.append((name, exp.overlay(opacity), f"{cls.label} ({exp.explained})"))
        return _result_pngs(comparison.GRADIO_CACHE, items)

    with gr.Blocks(title="Brain MRI Grad-CAM", delete_cache=delete_cache) as demo:
        gr.Markdown("# Brain MRI tumour classifier with Grad-CAM")
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        with gr.Row():
            with gr.Column(scale=2):
                # Short label: the full format list overflowed the label on a phone;
                # it is in the error message a wrong file gets.
                image = gr.File(label="MRI slice (image or DICOM)", file_count="single",
                                file_types=["image", ".dcm", ".tif", ".tiff"], elem_id="image-input")
                class_choice = gr.Dropdown([PREDICTED] + list(bundle.labels), value=PREDICTED,
                                           label="Class to explain")
                opacity = gr.Slider(0.0, 1.0, value=0.4, step=0.05, label="Heatmap opacity")
                method = gr.Dropdown([(cls.label, name) for name, cls in METHODS.items()],
                                     value=DEFAULT_METHOD, label="CAM method",
                                     info=f"Gradient-free ({', '.join(GRADIENT_FREE_METHODS)}) are slower; "
                                          f"Score-CAM uses the {SCORE_CAM_CHANNELS} most active channels."
                                          + (f" Failed this model's randomisation sanity check: "
                                             f"{', '.join(METHODS[m].label for m in failing)}." if failing else ""))
                tta = gr.Checkbox(False, label="Smooth the map (test-time augmentation)",
                                  info="Average over flipped and brightness-shifted copies; 6x the CAM cost.",
                                  elem_id="tta")
                run = gr.Button("Explain", variant="primary", elem_id="run")
                compare_button = gr.Button("Compare all methods", elem_id="compare")
            with gr.Column(scale=3):
                label = gr.Label(num_top_classes=len(bundle.labels), label="Class probabilities",
                                 elem_id="probabilities")
                # height="auto" still gets Gradio's 450px minimum, leaving a blank band
                # under the one row of images; fit-content sizes the gallery to them.
                gallery = gr.Gallery(label="Original, heatmap, overlay", columns=3, format="png",
                                     height="fit-content", object_fit="contain", elem_id="gallery")
                note = gr.Markdown(elem_id="note")
                comparison = gr.Gallery(label="All methods (overlays)", columns=4, format="png",
                                        height="fit-content", object_fit="contain", elem_id="comparison")
        inputs, outputs = [image, class_choice, opacity, method, tta], [label, gallery, note]
        run.click(predict, inputs, outputs, api_name="predict", concurrency_id="model")
        compare_button.click(compare, [image, class_choice, opacity, tta], [comparison], api_name="compare",
                             concurrency_id="model")
        for control in (class_choice, opacity, method, tta):
            control.change(lambda f, c, o, m, t: predict(f, c, o, m, t) if f else (None, None, ""), inputs, outputs,
                           api_visibility="private", concurrency_id="model", show_progress="hidden")
        if examples:
            gr.Examples([[f] for f, _ in examples], inputs=[image], outputs=outputs,
                        fn=lambda f: predict(f), run_on_click=True, cache_examples=False,
                        example_labels=[c for _, c in examples], label="Examples (clean test split)")
        gr.Markdown(
            f"Model: `{bundle.model.name}`, input {h}x{w} {bundle.spec.color_mode}, preprocessing "
            f"`{bundle.spec.preprocessing}`, Grad-CAM layer `{explainer.target}`. "
            f"{_accuracy_note(bundle)}", elem_id="model-info")
    # One model, one queue: requests wait their turn rather than competing for the CPU.
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def _accuracy_note(bundle: Bundle) -> str:
    ev = bundle.metadata.get("evaluation", {}).get("test")
    if not ev:
        return ""
    acc = ev.get("accuracy", {})
    value = acc.get("value") if isinstance(acc, dict) else acc
    if value is None:
        return ""
    return f"Accuracy on the leak-free test split: {value:.1%} ({ev.get('n_images', '?')} images)."


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
    p.add_argument("--delete-uploads-after", type=int, default=3600,
                   help="seconds after which uploaded and generated files are deleted")
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
    if args.model is None and not (default_bundle_path() / "bundle.json").is_file():
        print(f"error: no model bundle at {default_bundle_path()}.\n"
              "Train the default one with `python -m training.train --arch compact --out models/default`,\n"
              "or run `python app.py --model PATH` with a bundle folder or a .keras file "
              "(plus --labels and --preprocessing).", file=sys.stderr)
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
    demo = build_demo(bundle, explainer=explainer, delete_cache=(age, age) if age > 0 else None)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                max_file_size=int(args.max_upload_mb * 2**20), show_error=True, **page_style())
    return 0


if __name__ == "__main__":
    sys.exit(main())
