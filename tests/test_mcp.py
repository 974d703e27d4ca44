"""`--mcp`: an MCP client finds the prediction tool, reads what it does, and gets the class probabilities."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest

import app as app_module
from explain.bundle import load_bundle
from explain.pipeline import Explainer
from benchmarks.app_process import free_port
from synthetic import LABELS, write_png, write_tiny_bundle

mcp = pytest.importorskip("mcp", reason="the mcp package is missing (pip install -r requirements.txt)")
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamablehttp_client  # noqa: E402



async def call_predict(url: str, image_data_url: str):
    async with streamablehttp_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            [tool] = [t for t in tools if t.name.endswith("predict")]
            result = await session.call_tool(tool.name, {"image_file": image_data_url,
                                                         "class_choice": app_module.PREDICTED})
            return tool, result


def test_predict_is_an_mcp_tool(tmp_path):
    bundle = load_bundle(write_tiny_bundle(tmp_path / "bundle"))
    image = write_png(tmp_path / "slice.png", np.random.default_rng(5).integers(0, 256, (40, 40), dtype=np.uint8))
    expected = Explainer(bundle).explain(str(image))
    demo = app_module.build_demo(bundle, examples=[])
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, mcp_server=True)
    try:
        data_url = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
        tool, result = asyncio.run(call_predict(f"http://127.0.0.1:{port}/gradio_api/mcp/", data_url))
    finally:
        demo.close()
    assert "not a diagnosis" in tool.description
    assert not result.isError, result
    text = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
    assert f"Prediction:** {expected.predicted} ({expected.probabilities[expected.predicted]:.1%})" in text
    for label in LABELS:
        assert label in text
