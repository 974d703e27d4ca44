"""The documents' figures come from the committed results files (docs/render.py), and the README stays short."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _render():
    spec = importlib.util.spec_from_file_location("docs_render", ROOT / "docs" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_figure_block_matches_its_results_file():
    render = _render()
    results, stale = render.Results(), []
    for path in render.documents():
        _, changed = render.render_text(path.read_text(), results, str(path.relative_to(ROOT)))
        stale += changed
    assert not stale, "figures differ from the results files; run `python docs/render.py`:\n" + "\n".join(stale)


def test_every_registered_figure_is_used_and_every_block_is_known():
    render = _render()
    used = {m.group(1).split()[0] for p in render.documents() for m in render.BLOCK.finditer(p.read_text())}
    assert used <= set(render.FIGURES), used - set(render.FIGURES)
    assert set(render.FIGURES) <= used, f"registered but never used: {set(render.FIGURES) - used}"


def test_a_block_is_rewritten_from_the_results(tmp_path):
    render = _render()
    text = "a <!-- figures: accuracy -->typed by hand<!-- /figures --> b\n<!-- figures: confusion-matrix -->\nx\n<!-- /figures -->\n"
    new, changed = render.render_text(text, render.Results(), "t.md")
    assert len(changed) == 2 and "typed by hand" not in new
    again, changed = render.render_text(new, render.Results(), "t.md")
    assert again == new and not changed
    assert re.search(r"a <!-- figures: accuracy -->\*\*0\.\d{3}\*\*", new)


def test_readme_is_short_and_starts_with_both_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, len(lines)
    body = lines[lines.index("---", 1) + 1:]  # after the Space front matter
    first_screen = "\n".join(body[:45])
    assert "pip install -r requirements.txt && python app.py" in first_screen
    assert "pip install -r requirements-dev.txt && python -m pytest" in first_screen


def test_relative_links_resolve():
    render = _render()
    missing = []
    for path in render.documents():
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            if not (path.parent / target).exists():
                missing.append(f"{path.relative_to(ROOT)}: {target}")
    assert not missing, missing


def test_results_measured_on_the_shipped_weights():
    """smoke.json and doctor_example.json name the weights they measured: new weights need new runs
    (`python -m tools.smoke_set`, `python -m tools.doctor_example`, then `python docs/render.py`)."""
    import json

    import pytest

    bundle_dir = ROOT / "models" / "default"
    if not (bundle_dir / "bundle.json").is_file():
        pytest.skip("no default bundle")
    from explain.bundle import load_bundle

    digest = load_bundle(bundle_dir).weights_digest()
    for name in ("smoke.json", "doctor_example.json"):
        recorded = json.loads((bundle_dir / "eval" / name).read_text())["weights"]
        assert recorded == digest, f"models/default/eval/{name} was measured on other weights; re-run it"
