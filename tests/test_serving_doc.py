"""docs/serving.md shows the figures of the committed benchmark results, rendered from them."""

import json

from benchmarks.serve_report import DOC, RESULTS, block_of, render


def test_the_serving_doc_matches_the_results_file():
    assert block_of(DOC.read_text()) == render(json.loads(RESULTS.read_text())), (
        "docs/serving.md is out of date: run python -m benchmarks.serve_report")
