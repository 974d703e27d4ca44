"""Many images through a backend in chunks: one compiled call per chunk, one error per bad file.

Every source is decoded on its own first (a file that cannot be read becomes
its own error and never reaches the model); the decoded images of a chunk go
to ``backend.explain_batch`` together. Should the chunk's call still fail
(an unknown class name, a service error), its images are retried one by one,
so one bad item costs the others nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ..errors import ExplainError

#: Images per ``explain_batch`` call. Measured on the default model (benchmarks/serve_bench.py,
#: "chunks" in benchmarks/results/serve_bench.json, docs/serving.md): with the trust checks'
#: extra forward pass in every explanation the CPU per image is flat, within the noise, from 1 to
#: 32 images per call (without them it fell from 1 to 4, then stayed flat); 16 sits in the flat
#: part, equals the Serve replicas' batch size, and bounds memory (the engine's own chunks are
#: 32, explain.engine.CHUNK).
DEFAULT_CHUNK = 16

#: What a failed item reports (anything else is a bug and propagates).
ITEM_ERRORS = (ExplainError, ValueError)


def explain_chunks(backend, sources: Sequence, class_names: Sequence | None = None, *,
                   chunk: int = DEFAULT_CHUNK, method: str | None = None, tta: bool = False,
                   on_progress: Callable[[int, int], None] | None = None) -> Iterator[tuple]:
    """Yield ``(index, Explanation or None, error message or None)`` for every source, in order.

    ``sources``: paths, bytes or arrays (None marks an item with no source: it
    yields an error "no image"). ``on_progress(done, total)`` is called before each chunk.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    total = len(sources)
    names = list(class_names) if class_names is not None else [None] * total
    for start in range(0, total, chunk):
        if on_progress is not None:
            on_progress(start, total)
        stop = min(start + chunk, total)
        results: dict[int, tuple] = {}
        images, kept = [], []
        for i in range(start, stop):
            try:
                if sources[i] is None:
                    raise ExplainError("No image.")
                images.append(backend.decode(sources[i]))
                kept.append(i)
            except ITEM_ERRORS as exc:
                results[i] = (None, str(exc))
        if kept:
            try:
                done = backend.explain_batch(images, [names[i] for i in kept], method=method, tta=tta)
                results.update((i, (exp, None)) for i, exp in zip(kept, done))
            except ITEM_ERRORS:
                for i, image in zip(kept, images):
                    try:
                        results[i] = (backend.explain(image, names[i], method=method, tta=tta), None)
                    except ITEM_ERRORS as exc:
                        results[i] = (None, str(exc))
        for i in range(start, stop):
            yield (i, *results[i])
