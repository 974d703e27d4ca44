"""What the page's buttons do, as plain methods: no Gradio here, so each can be called and tested alone.

:class:`Handlers` holds the explainer (any object with the :class:`explain.pipeline.Explainer`
``explain`` / ``explain_batch`` / ``load`` interface: the in-process one or a remote
front), the bundle and the :class:`Settings`. Each method returns a result object
(:class:`SingleResult`, :class:`BatchResult`); :mod:`ui.endpoints` turns them into
Gradio outputs. A new field of a result is added in one place (the dataclass, and
its rendering in :mod:`ui.texts` or :meth:`SingleResult.report`), not in every caller.

Errors the visitor must read (a file that cannot be decoded, a bad option) are
:class:`explain.errors.ExplainError` or ``ValueError``; the endpoints show them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from explain.methods import METHODS
from explain.pipeline import DEFAULT_METHOD
from explain.recent import RecentExplanations, file_key
from explain.report import pictures, report

from .batch import DEFAULT_MAX_ITEMS, Item, expand, explain_items
from .files import ResultFolders
from .texts import FLAGGED_HEADLINE, heatmap_caption, method_caveats, method_title, result_note

PREDICTED = "Predicted class"
#: Methods whose one request costs many forward passes: with TTA they take the slow
#: lane (:attr:`Handlers.slow_lane`), so that they never hold every model slot.
SLOW_METHODS = ("scorecam",)


class Busy(ValueError):
    """The slow lane is taken by another request."""


@dataclass(frozen=True)
class Settings:
    """The page's knobs. ``ttl_seconds``: how long result files and stored pixels of a
    request live (the app's deletion interval); ``sweep_seconds``: how often they are
    swept; ``score_cam_channels``: what the Score-CAM caption and note say the
    explainer uses (None: every channel)."""

    max_batch: int = DEFAULT_MAX_ITEMS
    ttl_seconds: float = 3600.0
    sweep_seconds: float = 60.0
    score_cam_channels: int | None = None
    batch_opacity: float = 0.4


@dataclass
class SingleResult:
    """One image's answer: what ``/predict`` shows and what ``/download`` zips.

    pictures: [(PNG path, caption)] of the original, the heatmap and the overlay,
    set by :meth:`Handlers.predict` (empty before files are written).
    notes: extra markdown paragraphs after the standard note (caveats, checks).
    report_fields: extra keys merged into ``report.json``.
    label_file: for an image the input check flags, a JSON file in Gradio's Label format whose
    headline is the warning instead of the top class (set by :meth:`Handlers.predict`).
    """

    explanation: object  # explain.pipeline.Explanation
    opacity: float
    source_name: str
    captions: tuple[str, str, str]
    caveats: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report_fields: dict = field(default_factory=dict)
    pictures: list[tuple[str, str]] = field(default_factory=list)
    label_file: str | None = None

    @property
    def probabilities(self) -> dict[str, float]:
        return self.explanation.probabilities

    @property
    def label(self):
        """What the label shows: the probabilities, or for a flagged image the warning as the
        headline with the probabilities still listed under it."""
        return self.label_file or self.probabilities

    def label_data(self) -> dict:
        """Gradio's Label value with the input check's headline (classes sorted by probability)."""
        ranked = sorted(self.probabilities.items(), key=lambda kv: kv[1], reverse=True)
        return {"label": FLAGGED_HEADLINE if self.explanation.flagged else ranked[0][0],
                "confidences": [{"label": k, "confidence": v} for k, v in ranked]}

    @property
    def note(self) -> str:
        return "\n\n".join([result_note(self.explanation), *self.caveats, *self.notes])

    @property
    def slider(self) -> tuple[str, str] | None:
        """(original, overlay) PNG paths for the before/after slider."""
        return (self.pictures[0][0], self.pictures[2][0]) if len(self.pictures) == 3 else None

    def report(self) -> dict:
        """``report.json``: the CLI's report of the explanation plus :attr:`report_fields`."""
        return {**report(self.explanation, self.source_name), **self.report_fields}


@dataclass
class BatchRow:
    """One slice of a batch: its name, its explanation or its error, extra columns."""

    name: str
    explanation: object | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class BatchColumn:
    """A column of the batch table: header and the cell of a row (None if the row has no value)."""

    header: str
    cell: Callable[[BatchRow], object]


def batch_columns(labels) -> list[BatchColumn]:
    """The batch table's columns, in order; append one here to add it to the table and the CSV."""
    def prob(label):
        return lambda r: None if r.explanation is None else round(r.explanation.probabilities[label], 4)

    return ([BatchColumn("file", lambda r: r.name),
             BatchColumn("prediction", lambda r: "" if r.explanation is None else r.explanation.predicted)]
            + [BatchColumn(f"p({label})", prob(label)) for label in labels]
            + [BatchColumn("empty map", lambda r: None if r.explanation is None else r.explanation.empty),
               BatchColumn("input check", lambda r: "" if r.explanation is None else input_check_cell(r.explanation)),
               BatchColumn("without the region", lambda r: "" if r.explanation is None
                           else region_cell(r.explanation)),
               BatchColumn("error", lambda r: r.error or "")])


def input_check_cell(exp) -> str:
    """The input check in a table cell: "ok", "NOT LIKE TRAINING DATA" or "no check"."""
    verdict = exp.input_check.get("in_distribution")
    if verdict is None:
        return "no check"
    return f"ok ({exp.input_check['score']:.1f})" if verdict else f"NOT LIKE TRAINING DATA ({exp.input_check['score']:.1f})"


def region_cell(exp) -> str:
    """The region check in a table cell: explained class's probability before -> after (class after)."""
    check = exp.region_check
    if not check:
        return ""
    if check.get("p_after") is None:
        return "empty map"
    return (f"p({exp.explained}) {check['p_before']:.2f} -> {check['p_after']:.2f} ({check['class_after']}); "
            f"random region {check['p_after_random']:.2f}")


@dataclass
class BatchResult:
    """A batch's table (header + rows of cells), its CSV path and its overlay gallery."""

    rows: list[BatchRow]
    header: list[str]
    table: list[list]
    csv_path: str | None
    overlays: list[tuple[str, str]]


class Handlers:
    """The app's work, independent of the page.

    explainer: the model side (``explain(source, class_name, method=, tta=)``,
    ``explain_batch``, ``load``, ``max_bytes``, ``max_pixels``).
    files: where result files go (:class:`ui.files.ResultFolders`); default a
    folder under the system's temp area.
    audit: the bundle's audit report if it is trusted (``Bundle.audit()``: made for these
    weights), else None. failing / checked: the methods that failed the randomisation
    sanity check / that it covered (the others are "not checked"); default from ``audit``.
    """

    def __init__(self, bundle, explainer, *, settings: Settings | None = None, files: ResultFolders | None = None,
                 audit: dict | None = None, failing=None, checked=None):
        self.bundle, self.explainer = bundle, explainer
        self.settings = settings or Settings()
        self.labels = list(bundle.labels)
        self.files = files or ResultFolders(None, ttl_seconds=self.settings.ttl_seconds)
        passed = ((audit or {}).get("sanity") or {}).get("passed")
        passed = passed if isinstance(passed, dict) else {}
        self.failing = tuple(m for m in METHODS if passed.get(m) is False) if failing is None else tuple(failing)
        self.checked = tuple(m for m in METHODS if m in passed) if checked is None else tuple(checked)
        #: Score-CAM's channel count in the audit (None: every channel), if the audit scored Score-CAM.
        audited = "scorecam" in ((audit or {}).get("summary") or {}).get("overall", {})
        self.audited_score_cam = (audit.get("score_cam_channels"),) if audited else ()
        # Stored explanations hold the upload's pixels: keep them no longer than the files.
        self.recent = RecentExplanations(ttl_seconds=self.settings.ttl_seconds)
        #: At most one slow single-image request (Score-CAM, TTA) runs at a time; a second
        #: is refused at once rather than hold a model slot while it waits.
        self.slow_lane = threading.BoundedSemaphore(1)

    # -- one image ---------------------------------------------------------------

    def is_slow(self, method: str | None, tta: bool) -> bool:
        return bool(tta) or (method or DEFAULT_METHOD) in SLOW_METHODS

    def explanation(self, path: str | None, class_choice: str | None = PREDICTED, method: str | None = DEFAULT_METHOD,
                    tta: bool = False):
        """The explanation of ``path`` (from the recent store when it was just computed)."""
        if path is None:
            raise ValueError("Upload an image first.")
        class_name = None if class_choice in (None, "", PREDICTED) else class_choice
        method, tta = method or DEFAULT_METHOD, bool(tta)
        if method not in METHODS:
            raise ValueError(f"Unknown CAM method {method!r}; available: {', '.join(METHODS)}.")
        # Only the opacity is left out of the key: a new opacity re-blends the
        # stored heatmap instead of running the model again. Files over the
        # decoder's size limit are not hashed; the decoder refuses them.
        file = file_key(path, max_bytes=self.explainer.max_bytes)
        key = None if file is None else (file, class_name, method, tta)
        return self.recent.get(key, lambda: self.explainer.explain(path, class_name, method=method, tta=tta))

    def analyse(self, path, class_choice=PREDICTED, opacity: float = 0.4, method: str = DEFAULT_METHOD,
                tta: bool = False) -> SingleResult:
        """One image's :class:`SingleResult`, without writing any file."""
        opacity = _opacity(opacity)
        with self._slow() if self.is_slow(method, tta) else nullcontext():
            exp = self.explanation(path, class_choice, method, tta)
        captions = ("Original", f"{method_title(exp.method, exp.tta)} {heatmap_caption(exp)}", f"Overlay, opacity {opacity:.2f}")
        return SingleResult(exp, opacity, Path(path).name, captions, caveats=self.caveats(exp))

    def caveats(self, exp) -> list[str]:
        """What the page must say about this map's method beyond the standard note."""
        return method_caveats(exp, self.failing, self.checked, self.settings.score_cam_channels,
                              self.audited_score_cam)

    def predict(self, path, class_choice=PREDICTED, opacity: float = 0.4, method: str = DEFAULT_METHOD,
                tta: bool = False) -> SingleResult:
        """:meth:`analyse` plus the three PNGs (in a fresh request folder)."""
        result = self.analyse(path, class_choice, opacity, method, tta)
        exp = result.explanation
        with self.files.request() as folder:
            result.pictures = [(folder.png(name, array), caption) for (name, array), caption
                               in zip(pictures(exp, result.opacity), result.captions)]
            if exp.flagged:
                # Gradio's Label takes its headline from a JSON file's "label" (a dict value
                # always heads with the top class), and the classes stay listed under it.
                result.label_file = folder.json("label.json", result.label_data())
        return result

    def archive(self, path, class_choice=PREDICTED, opacity: float = 0.4, method: str = DEFAULT_METHOD,
                tta: bool = False) -> str:
        """The zip of one result (the three PNGs and ``report.json``), built now; returns its path."""
        result = self.analyse(path, class_choice, opacity, method, tta)
        stem = Path(result.source_name).stem or "image"
        with self.files.request() as folder:
            return folder.zip(f"{stem}_explained.zip", dict(pictures(result.explanation, result.opacity)),
                              result.report())

    def compare(self, path, class_choice=PREDICTED, opacity: float = 0.4,
                tta: bool = False) -> Iterator[list[tuple[str, str]]]:
        """Every method's overlay of one image, as a growing gallery: one yield per method,
        so that a caller can stop between methods. The page runs it in a queue of its own
        (not the single-image one), so it does not take the slow lane."""
        opacity = _opacity(opacity)
        with self.files.request() as folder:
            items = []
            for name, cls in METHODS.items():
                exp = self.explanation(path, class_choice, name, tta)
                items.append((folder.png(f"{name}.png", exp.overlay(opacity)),
                              f"{cls.label} ({heatmap_caption(exp, short=True)})"))
                yield list(items)

    def preview(self, path) -> str | None:
        """A file box upload (DICOM, TIFF...) decoded to a PNG the browser can show."""
        if path is None:
            return None
        image, _ = self.explainer.load(path)
        with self.files.request() as folder:
            return folder.png("decoded.png", image)

    # -- several images ----------------------------------------------------------

    def expand(self, paths) -> list[Item]:
        if not paths:
            raise ValueError("Add one or more files, or a zip of them.")
        return expand(paths, max_items=self.settings.max_batch, max_bytes=self.explainer.max_bytes,
                      max_pixels=self.explainer.max_pixels)

    def batch(self, paths, on_progress: Callable[[int, int], None] | None = None) -> BatchResult:
        """Several files (images, DICOM incl. multi-frame, zips of them): one row per slice."""
        items = self.expand(paths)
        columns = batch_columns(self.labels)
        rows, overlays = [], []
        with self.files.request() as folder:
            for k, (item, exp, error) in enumerate(explain_items(self.explainer, items, on_progress)):
                rows.append(BatchRow(item.name, exp, error))
                if exp is not None:
                    overlays.append((folder.png(f"{k:03d}.png", exp.overlay(self.settings.batch_opacity)),
                                     f"{item.name}: {exp.predicted} ({exp.probabilities[exp.predicted]:.0%})"))
            header = [c.header for c in columns]
            table = [[c.cell(r) for c in columns] for r in rows]
            csv_path = folder.csv("batch.csv", header, table)
        return BatchResult(rows, header, table, csv_path, overlays)

    # -- housekeeping ------------------------------------------------------------

    def sweep(self) -> None:
        """Drop what past requests left: stored explanations and result folders past their time."""
        self.recent.expire()
        self.files.sweep()

    @contextmanager
    def _slow(self):
        if not self.slow_lane.acquire(blocking=False):
            raise Busy("Another visitor's slow job (Score-CAM or smoothing) is running; "
                       "try again in a moment, or use a faster method.")
        try:
            yield
        finally:
            self.slow_lane.release()


def _opacity(value) -> float:
    opacity = float(value)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"Opacity must be between 0 and 1, got {opacity}.")
    return opacity


__all__ = [
    "PREDICTED",
    "SLOW_METHODS",
    "BatchColumn",
    "BatchResult",
    "BatchRow",
    "Busy",
    "Handlers",
    "Settings",
    "SingleResult",
    "batch_columns",
]
