"""The multi-layer Layer-CAM sanity script: same maps as the pipeline, combined = mean of the layers."""

import numpy as np

from benchmarks.layercam_layers import layer_maps, main
from explain.bundle import load_bundle
from explain.pipeline import Explainer
from synthetic import write_dataset, write_tiny_bundle


def test_layer_maps_match_the_pipeline_and_combine_by_mean(tmp_path):
    bundle = load_bundle(write_tiny_bundle(tmp_path / "bundle"))
    batch = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    maps = layer_maps(bundle, bundle.model, ["last"], batch, [0, 1, 2])
    explainer = Explainer(bundle)
    expected = explainer.engine("layercam").explain(batch, [0, 1, 2]).maps
    np.testing.assert_allclose(maps["last"], expected, atol=1e-6)
    np.testing.assert_allclose(maps["combined"], expected, atol=1e-6)


def test_script_prints_one_row_per_layer_and_the_combination(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", per_class=13)
    bundle = write_tiny_bundle(tmp_path / "bundle")
    # Keras numbers layer names per process (conv2d, conv2d_1, ...): look the first one up.
    first = load_bundle(bundle).model.layers[1].name
    assert main(["--model", str(bundle), "--data", str(data), "--layers", "last", first,
                 "--limit", "0", "--images", "4"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| layers")]
    assert [r.split(" | ")[0] for r in rows] == ["| last", f"| {first}", "| combined"]
    # Three cascade steps of the tiny model, each a correlation in [-1, 1], then the verdict.
    for row in rows:
        cells = row.strip("| ").split(" | ")
        assert len(cells) == 5 and cells[-1] in ("yes", "no")
        assert all(-1.0 <= float(v) <= 1.0 for v in cells[1:4])
