"""Gradio demo: classify a brain MRI slice and show the Grad-CAM evidence.

    python app.py                       # bundled default model, http://127.0.0.1:7860
    python app.py --model my_bundle     # your own bundle (or a .keras file + --labels/--preprocessing/--color-mode)
    python app.py --share --auth user:password
    python app.py --mcp                 # also serve the prediction as an MCP tool

API endpoints (docs/api.md; ``gradio_client`` examples there):
``/predict`` (image file, class to explain, overlay opacity, method, TTA) ->
(label distribution, gallery of original / heatmap / overlay PNGs, markdown
note); ``/download`` (same arguments -> zip of the PNGs + report.json, built on request); ``/compare`` (every method's overlay); ``/batch`` (several files ->
table, CSV, overlays).

The page is in ``ui/``: ``ui/handlers.py`` does the work, ``ui/page.py`` lays out and
wires the page, ``ui/endpoints.py`` adapts one to the other.
"""

from __future__ import annotations

import argparse
import os
import sys

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
from explain.io.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS  # noqa: E402
from explain.errors import ExplainError  # noqa: E402
from explain.methods import METHODS  # noqa: E402, F401 (re-exported: the tests list the methods through app)
from explain.serving import BACKENDS, BackendUnavailable  # noqa: E402
from explain.pipeline import Explainer  # noqa: E402
from ui import sweeper  # noqa: E402
from ui.batch import DEFAULT_MAX_ITEMS  # noqa: E402
from ui.endpoints import Endpoints  # noqa: E402
from ui.examples import example_files  # noqa: E402
from ui.files import ResultFolders, gradio_cache_dir  # noqa: E402
from ui.gradio_pinned import PAGE_CSS  # noqa: E402
from ui.handlers import PREDICTED, Handlers, Settings  # noqa: E402, F401 (PREDICTED: re-exported)
from ui.page import MODEL_SLOTS, QUEUE_SIZE, layout, wire  # noqa: E402

AUTH_ENV = "BRAIN_MRI_AUTH"
#: Score-CAM in the app scores only the most active channels of the target layer when the
#: bundle's audit does not say otherwise: uncapped it is one forward pass per channel
#: (minutes per image for Xception on a CPU).
SCORE_CAM_CHANNELS = 128
#: Single-image requests a front serves at once with --backend ray: its part is decoding and
#: PNGs, the replicas batch up to 16 images per model call (docs/serving.md).
RAY_MODEL_SLOTS = 16


def page_style() -> dict:
    """Theme and CSS for ``launch()`` (Gradio 6 takes them there, not in ``gr.Blocks``)."""
    return {"theme": gr.themes.Soft(), "css": PAGE_CSS}


def build_demo(bundle: Bundle, *, explainer: Explainer | None = None, examples=None,
               delete_cache: tuple[int, int] | None = (3600, 3600),
               max_batch: int = DEFAULT_MAX_ITEMS, model_slots: int = MODEL_SLOTS) -> gr.Blocks:
    """The Blocks UI for ``bundle``. ``explainer``: any object with Explainer's interface
    (default: an in-process one); ``examples``: list of (file, caption), default the shipped ones;
    ``delete_cache``: Gradio's (frequency, age) in seconds for uploads, also the age after
    which this app removes its result folders and stored explanations; ``model_slots``:
    single-image requests served at once."""
    explainer = explainer or Explainer(bundle, score_cam_channels=SCORE_CAM_CHANNELS)
    examples = example_files() if examples is None else examples
    ttl = float(delete_cache[1]) if delete_cache and delete_cache[1] > 0 else 600.0
    settings = Settings(max_batch=max_batch, ttl_seconds=ttl, sweep_seconds=min(ttl, 60.0),
                        score_cam_channels=getattr(explainer, "score_cam_channels", None))
    files = ResultFolders(gradio_cache_dir(), ttl, tidy_root=bool(delete_cache))
    handlers = Handlers(bundle, explainer, settings=settings, files=files, audit=bundle.audit())
    with gr.Blocks(title="Brain MRI Grad-CAM", delete_cache=delete_cache) as demo:
        page = layout(handlers, examples)
        wire(page, Endpoints(handlers, examples), model_slots)
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    # Past requests' folders and pixels go after ``ttl`` even when no request comes.
    sweeper.register(handlers, settings.sweep_seconds)
    demo.handlers = handlers  # for tests and tools: the page's work without the page
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
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="where the model runs: in this process (local, default) or on Ray Serve (ray; "
                        "pip install -r requirements-serve.txt; docs/serving.md)")
    p.add_argument("--replicas", type=int, default=None,
                   help="with --backend ray: model replicas of one CPU each to start here (default 1)")
    p.add_argument("--ray-address", default=None,
                   help="with --backend ray: join this Ray cluster (e.g. ray://head:10001) and its running "
                        "Serve application instead of starting one here")
    p.add_argument("--ray-batch", type=int, default=None,
                   help="with --backend ray: most requests one replica batches into a model call "
                        "(default 16; 1 = no batching)")
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
    if args.backend != "ray" and (args.replicas is not None or args.ray_address or args.ray_batch is not None):
        raise SystemExit("error: --replicas, --ray-address and --ray-batch need --backend ray")
    if args.replicas is not None and args.replicas < 1:
        raise SystemExit("error: --replicas must be at least 1")
    args.replicas = args.replicas or 1
    if args.backend == "ray":
        from explain.serving.ray_client import import_ray

        try:
            import_ray()  # before anything slow: a missing Ray is one line and exit 2, never a fallback
        except BackendUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.model is None and args.ray_address is None and not (default_bundle_path() / "bundle.json").is_file():
        print(f"error: no model bundle at {default_bundle_path()}.\n"
              "Train the default one with `python -m training.train --arch compact --out models/default`,\n"
              "or run `python app.py --model PATH` with a bundle folder or a .keras file "
              "(plus --labels, --preprocessing and --color-mode).", file=sys.stderr)
        return 2
    try:
        if args.backend == "ray":
            # The model runs in a Ray Serve deployment; this process is a thin front.
            from explain.serving.ray_client import start_from_args

            explainer = start_from_args(args)
            bundle, slots = explainer.bundle, RAY_MODEL_SLOTS
        else:
            bundle = load_from_args(args)
            explainer = Explainer(bundle, max_bytes=int(args.max_upload_mb * 2**20),
                                  max_pixels=int(args.max_megapixels * 1e6), score_cam_channels=SCORE_CAM_CHANNELS)
            slots = MODEL_SLOTS
    except (ExplainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(bundle.describe())
    print(f"Grad-CAM layer: {explainer.target} (map {explainer.engine().map_shape[0]}x"
          f"{explainer.engine().map_shape[1]}), method {explainer.default_method}")
    age = args.delete_uploads_after
    demo = build_demo(bundle, explainer=explainer, delete_cache=(age, age) if age > 0 else None,
                      max_batch=args.max_batch, model_slots=slots)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                max_file_size=int(args.max_upload_mb * 2**20), show_error=True, mcp_server=args.mcp,
                quiet=not args.verbose, prevent_thread_lock=True, **page_style())
    print(f"Running on {demo.share_url or demo.local_url}" + (
        f" (MCP server at {demo.local_url.rstrip('/')}/gradio_api/mcp/)" if args.mcp else ""), flush=True)
    try:
        demo.block_thread()
    finally:
        if hasattr(explainer, "close"):
            explainer.close()  # the Ray backend: stop the Serve application it started here
    return 0


if __name__ == "__main__":
    sys.exit(main())
