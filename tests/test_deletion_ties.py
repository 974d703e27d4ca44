"""The deletion tie-break diagnostic: the map's own order is kept, its zeros are ranked by the centre."""

import numpy as np

from benchmarks.deletion_ties import main, maps_for
from synthetic import write_dataset, write_tiny_bundle


def test_tie_break_keeps_the_map_order_and_ranks_zeros_by_the_centre():
    cam = np.zeros((9, 9), np.float32)
    cam[1, 1], cam[1, 2] = 1.0, 0.5  # positive evidence off centre
    broken = maps_for(cam)["Grad-CAM, ties by centre"]
    order = np.argsort(-broken.ravel(), kind="stable")
    assert list(order[:2]) == [1 * 9 + 1, 1 * 9 + 2]  # the map's own order first
    assert order[2] == 4 * 9 + 4  # then the centre, not the next pixel in raster order
    assert broken.max() - cam.max() < 2e-3


def test_script_prints_a_row_per_map(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", per_class=13)
    bundle = write_tiny_bundle(tmp_path / "bundle")
    assert main(["--model", str(bundle), "--data", str(data), "--limit", "4"]) == 0
    out = capsys.readouterr().out
    assert "4 test images" in out
    for name in ("| Grad-CAM |", "| Grad-CAM, ties by centre |", "| centre prior |", "| random |"):
        assert name in out
