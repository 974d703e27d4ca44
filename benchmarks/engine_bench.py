"""Engine benchmarks, in this process: the compiled Grad-CAM engine against its forward pass and
the keras.io tutorial, all class maps, throughput, one request's in-process work and Score-CAM;
plus the models (default bundle, untrained Xception 299) and the test image they run on.
"""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.timing import Counts, Report, Row, interleaved, ratio_row

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["glioma", "meningioma", "notumor", "pituitary"]
XCEPTION_SIZE = 299
SLICE_SIZE = 224  # the dataset's slices are 224x224
THROUGHPUT_BATCHES = (1, 4, 16)


# -- models and inputs ----------------------------------------------------------

def xception_bundle():
    """Untrained Xception 299x299x3 with a 4-way softmax head, as a Bundle (xception preprocessing)."""
    import keras

    from explain.bundle import from_model

    keras.utils.set_random_seed(0)
    model = keras.applications.Xception(weights=None, input_shape=(XCEPTION_SIZE, XCEPTION_SIZE, 3),
                                        classes=len(LABELS), classifier_activation="softmax")
    return from_model(model, labels=LABELS, preprocessing="xception",
                      metadata={"note": "untrained Xception for benchmarking"})


def test_image(folder: Path) -> Path:
    """The first example slice if examples/ has one, else a synthetic grey PNG of the same size.

    The dataset's slices are 224x224 greyscale JPEGs; the size matters for the
    per-request decode, rendering and PNG work, so the fallback matches it.
    """
    images = sorted((ROOT / "examples").glob("*.jpg"))
    if images:
        return images[0]
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SLICE_SIZE, :SLICE_SIZE]
    centre, radius = SLICE_SIZE / 2, SLICE_SIZE * 0.4
    head = ((yy - centre) ** 2 + ((xx - centre) * 1.2) ** 2) <= radius**2  # skull-like ellipse
    noise = rng.normal(0, 25, head.shape)
    pixels = np.where(head, 90 + noise, 5 + noise / 8)
    path = folder / "synthetic_slice.png"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


def load_models(args, report: Report) -> list[tuple[str, object, Path | None]]:
    """(name, bundle, bundle folder or None if in memory) for each model to measure."""
    from explain.bundle import default_bundle_path, load_bundle

    models = []
    path = Path(args.model) if args.model else default_bundle_path()
    if args.model or (path / "bundle.json").is_file():
        bundle = load_bundle(path)  # an explicit --model that fails to load is an error
        models.append((path.name or "default", bundle, path))
        print(bundle.describe(), flush=True)
    else:
        report.note(f"no default bundle at {path}: default model skipped")
    if not args.skip_xception:
        models.append(("xception", xception_bundle(), None))
    return models


# -- engine measurements (in this process) ------------------------------------------------

def engine_metrics(name: str, bundle, image: Path, counts: Counts, report: Report) -> None:
    """Metrics 1-4 and Score-CAM on the compiled engine, batch of the one test image."""
    from explain.pipeline import Explainer

    explainer = Explainer(bundle)
    engine = explainer.engine()
    _, x = explainer.load(image)
    batch = x[None]
    print(f"[{name}] engine: input {engine.input_shape}, layer {engine.target}, map {engine.map_shape}",
          flush=True)

    times = interleaved({"cam": lambda: engine.explain(batch), "forward": lambda: engine.predict(batch)},
                        counts.repeats, counts.warmup)
    report.add(ratio_row(name, "predict+Grad-CAM / forward pass (batch 1)", times, "cam", "forward",
                         1.10, at_most=True))
    keras_io_ratio(name, bundle.model, engine, batch, counts, report)
    times = interleaved({"all": lambda: engine.explain_all(batch), "one": lambda: engine.explain(batch)},
                        counts.repeats, counts.warmup)
    report.add(ratio_row(name, f"all {engine.num_classes} class maps / one map", times, "all", "one",
                         1.15, at_most=True))
    throughput(name, engine, batch, counts, report)
    request_work(name, explainer, image, counts, report)
    scorecam_ratio(name, engine, batch, counts, report)


def keras_io_ratio(name, model, engine, batch, counts: Counts, report: Report) -> None:
    """Metric 2: the keras.io tutorial's make_gradcam_heatmap / our engine, same model and image."""
    from benchmarks.keras_io_gradcam import make_gradcam_heatmap

    # The tutorial calls the rebuilt model on a bare tensor where Keras expects a
    # list of inputs; Keras warns about it on every call, which would flood the output.
    warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
    if len(engine.target.layers) > 1:
        report.note(f"{name}: keras.io comparison skipped, target {engine.target} is in a nested "
                    "model (the tutorial's model.get_layer cannot reach it)")
        return
    layer = engine.target.layer.name
    times = interleaved({"keras_io": lambda: make_gradcam_heatmap(batch, model, layer),
                         "ours": lambda: engine.explain(batch)}, counts.repeats, counts.warmup)
    report.add(ratio_row(name, "keras.io Grad-CAM / ours (batch 1)", times, "keras_io", "ours",
                         6.0, at_most=False))


def throughput(name, engine, batch, counts: Counts, report: Report) -> None:
    """Metric 4: images per second of engine.explain at several batch sizes (no target)."""
    batches = {b: np.repeat(batch, b, axis=0) for b in THROUGHPUT_BATCHES}
    funcs = {b: (lambda data=data: engine.explain(data)) for b, data in batches.items()}
    # Large batches cost seconds per call on 2 cores: fewer rounds, still a median.
    times = interleaved(funcs, max(3, counts.repeats // 4), max(1, counts.warmup // 2))
    for b, seconds in times.items():
        report.add(Row(name, f"throughput, batch {b}", b / seconds, "img/s",
                       note=f"{seconds * 1e3:.1f} ms per batch"))


def request_work(name, explainer, image: Path, counts: Counts, report: Report) -> None:
    """The app's per-request work done in-process, in phases (milliseconds, no target).

    Same steps as app.predict: Explainer.explain (decode, preprocess, engine,
    upsample), then heatmap and overlay rendering, then the three PNG encodes
    Gradio does for the gallery (PIL defaults, as gradio.processing_utils).
    Compared with the 1-client latency, it shows what the web layer adds.
    """
    import io

    from PIL import Image

    def encode(array) -> int:
        with io.BytesIO() as buf:
            Image.fromarray(array).save(buf, "png")
            return buf.tell()

    phases: dict[str, list[float]] = {"explain": [], "render": [], "png": []}
    for i in range(counts.warmup + counts.repeats):
        t0 = time.perf_counter()
        exp = explainer.explain(image)
        t1 = time.perf_counter()
        pictures = [exp.image, exp.heatmap_rgb(), exp.overlay(0.4)]
        t2 = time.perf_counter()
        for picture in pictures:
            encode(picture)
        t3 = time.perf_counter()
        if i >= counts.warmup:
            for key, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
                phases[key].append(seconds)
    medians = {key: statistics.median(v) * 1e3 for key, v in phases.items()}
    h, w = exp.image.shape[:2]
    report.add(Row(name, "in-process work of one app request", sum(medians.values()), "ms",
                   note=", ".join(f"{k} {v:.1f} ms" for k, v in medians.items()) + f"; image {w}x{h}"))


def scorecam_ratio(name, engine, batch, counts: Counts, report: Report) -> None:
    """Score-CAM time / Grad-CAM time, if the method is registered (one forward per channel)."""
    from explain import methods

    if "scorecam" not in getattr(methods, "METHODS", {}):
        report.note(f"{name}: Score-CAM not registered in explain.methods.METHODS, skipped")
        return
    channels = int(engine.target.layer.output.shape[-1])
    cap = counts.scorecam_channels if channels > counts.scorecam_channels else None
    scorecam = methods.METHODS["scorecam"](max_channels=cap)
    # Warm up the activation probe with a cheap run (2 channels). The measured
    # instance still traces its own small mask function on its first call:
    # well under 1% of a Score-CAM run, so no full-cost warm-up is spent on it.
    methods.compute_maps(engine, batch, method=methods.METHODS["scorecam"](max_channels=2))

    def gradcam():
        for _ in range(5):  # one Grad-CAM call is short: average 5 to steady the ratio's denominator
            engine.explain(batch)

    times = interleaved({"scorecam": lambda: methods.compute_maps(engine, batch, method=scorecam),
                         "gradcam": gradcam}, counts.scorecam_repeats, 0)
    times["gradcam"] /= 5
    row = ratio_row(name, "Score-CAM / Grad-CAM (batch 1)", times, "scorecam", "gradcam")
    if cap:
        # Cost is one forward pass per scored channel, so the full method scales by channels / cap.
        scored = (f"{cap} of {channels} channels (max_channels); all channels would be "
                  f"~{row.value * channels / cap:.0f} x")
    else:
        scored = f"all {channels} channels"
    row.note = f"{row.note}; {scored}"
    report.add(row)
