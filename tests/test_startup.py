"""`python app.py` as a fresh clone runs it: a quiet start, and the shipped examples without any data folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.app_process import free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180



def test_quiet_start_serves_shipped_examples_without_the_dataset(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    port = free_port()
    env = {**os.environ, "BRAIN_MRI_DATA": str(empty), "PYTHONUNBUFFERED": "1"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the app must be quiet on its own
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("Running on"):
                break
        assert lines and lines[-1].startswith("Running on"), "\n".join(lines)
        assert len(lines) <= 5, "start-up printed more than 5 lines:\n" + "\n".join(lines)
        assert lines[0].startswith("model ") and any(l.startswith("Grad-CAM layer:") for l in lines), lines
        config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=30).json()
        datasets = [c for c in config["components"] if c.get("type") == "dataset"]
        samples = [s for d in datasets for s in d["props"].get("samples", [])]
        names = {Path(str(s[0].get("path") if isinstance(s[0], dict) else s[0])).name for s in samples}
        shipped = {p.name for p in (ROOT / "examples").glob("*.jpg")}
        assert len(shipped) == 8 and names == shipped, (names, shipped)
    finally:
        stop_process(proc)
