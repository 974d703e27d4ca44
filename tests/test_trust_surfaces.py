"""A flagged image carries its flag, and every result its region check, through every surface:
the page's handlers (label, note, zip, batch table), the HTTP API and the MCP tool of the
running app, and the CLI's report.json and printed line. The default bundle (which ships an
input check) and an image of the committed non-MRI set."""

from __future__ import annotations

import asyncio
import base64
import json
import zipfile
from pathlib import Path

import pytest

import app as app_module
from benchmarks.app_process import free_port
from explain.__main__ import main as cli_main
from explain.bundle import load_bundle
from explain.checks.input_check import WARNING
from ui.files import ResultFolders
from ui.handlers import Handlers
from ui.texts import FLAGGED_HEADLINE

ROOT = Path(__file__).resolve().parents[1]
NON_MRI = ROOT / "tests" / "data" / "non_mri" / "text_page.png"
EXAMPLE = sorted((ROOT / "examples").glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def demo():
    bundle = load_bundle(ROOT / "models" / "default")
    demo = app_module.build_demo(bundle, examples=[])
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, mcp_server=True)
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def handlers_of(demo, tmp_path) -> Handlers:
    page = demo[0].handlers
    return Handlers(page.bundle, page.explainer, files=ResultFolders(tmp_path / "cache", ttl_seconds=60))


def test_the_page_heads_a_flagged_result_with_the_warning(demo, tmp_path):
    result = handlers_of(demo, tmp_path).predict(str(NON_MRI))
    label = json.loads(Path(result.label).read_text())
    assert label["label"] == FLAGGED_HEADLINE
    assert {c["label"] for c in label["confidences"]} == set(result.probabilities)  # still listed
    assert result.note.startswith(f"**Warning: {WARNING}**")
    assert "**Region check:** Without the highlighted region" in result.note


def test_a_slice_gets_its_class_as_headline_and_the_region_sentence(demo, tmp_path):
    result = handlers_of(demo, tmp_path).predict(str(EXAMPLE))
    assert result.label == result.probabilities
    assert "**Input check:** like the training slices" in result.note
    assert "**Region check:** Without the highlighted region: p(" in result.note


def test_the_zip_and_the_batch_table_carry_both_checks(demo, tmp_path):
    handlers = handlers_of(demo, tmp_path)
    with zipfile.ZipFile(handlers.archive(str(NON_MRI))) as z:
        report = json.loads(z.read("report.json"))
    assert report["input_check"]["in_distribution"] is False
    assert set(report["region_check"]) >= {"p_before", "p_after", "class_after", "p_after_random", "removed_share"}
    batch = handlers.batch([str(NON_MRI), str(EXAMPLE)])
    check = batch.header.index("input check")
    assert batch.table[0][check].startswith("NOT LIKE TRAINING DATA") and batch.table[1][check].startswith("ok")
    assert batch.table[1][batch.header.index("without the region")].startswith("p(")


def test_the_api_carries_the_flag(demo):
    from gradio_client import Client, handle_file

    label, _, note = Client(demo[1], verbose=False).predict(
        handle_file(str(NON_MRI)), "Predicted class", 0.4, api_name="/predict")
    assert label["label"] == FLAGGED_HEADLINE and len(label["confidences"]) == 4
    assert WARNING in note


async def _call_mcp(url: str, data_url: str):
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            [tool] = [t for t in (await session.list_tools()).tools if t.name.endswith("predict")]
            return await session.call_tool(tool.name, {"image_file": data_url,
                                                       "class_choice": app_module.PREDICTED})


def test_the_mcp_tool_carries_the_flag(demo):
    pytest.importorskip("mcp")
    data_url = "data:image/png;base64," + base64.b64encode(NON_MRI.read_bytes()).decode()
    result = asyncio.run(_call_mcp(demo[1] + "gradio_api/mcp/", data_url))
    assert not result.isError, result
    text = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
    assert FLAGGED_HEADLINE in text and WARNING in text and "Region check" in text


def test_the_cli_writes_and_prints_both_checks(tmp_path, capsys):
    assert cli_main([str(NON_MRI), str(EXAMPLE), "--out", str(tmp_path)]) == 0  # a flag is not a failure
    printed = capsys.readouterr().out
    assert "NOT LIKE THE TRAINING SLICES" in printed and "input like the training slices" in printed
    report = json.loads((tmp_path / NON_MRI.stem / "report.json").read_text())
    assert report["input_check"]["in_distribution"] is False
    assert report["input_check"]["method"] == "mahalanobis+colour"
    assert report["region_check"]["removed_share"] > 0
