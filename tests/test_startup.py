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
        assert lines[0].startswith("model ") and any(text.startswith("Grad-CAM layer:") for text in lines), lines
        config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=30).json()
        [examples] = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "examples"]
        items = examples["props"]["value"] or []
        # Gallery items: {"image": FileData, "caption": ...}; Gradio serves a copy named like the file.
        names = {Path(item["image"]["path"]).name for item in items}
        shipped = {p.name for p in (ROOT / "examples").glob("*.jpg")}
        assert len(shipped) == 8 and names == shipped, (names, shipped)
    finally:
        stop_process(proc)


# TensorFlow's C++ start-up lines (absl, oneDNN, CUDA probing, CPU features).
TF_STARTUP_MARKERS = ("absl::InitializeLog", "oneDNN custom operations", "cuda drivers", "cuInit",
                      "cpu_feature_guard", "This TensorFlow binary is optimized")


def _run_cli(args, tmp_path):
    env = {**os.environ, "BRAIN_MRI_DATA": str(tmp_path)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the commands must be quiet on their own
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                          timeout=START_TIMEOUT_S)


def _tf_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(m in line for m in TF_STARTUP_MARKERS)]


def test_cli_starts_quietly_and_verbose_brings_the_logs_back(tmp_path):
    image = str(ROOT / "examples" / "glioma_Tr-gl_0915.jpg")
    quiet = _run_cli(["explain", image, "--out", str(tmp_path / "q")], tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert not _tf_lines(quiet.stderr), quiet.stderr
    assert quiet.stderr.splitlines()[0].startswith("model "), quiet.stderr
    verbose = _run_cli(["explain", image, "--out", str(tmp_path / "v"), "--verbose"], tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    assert _tf_lines(verbose.stderr), verbose.stderr


def test_doctor_starts_quietly(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((ROOT / "examples").glob("*.jpg"))[:4]:
        (images / path.name).write_bytes(path.read_bytes())
    run = _run_cli(["explain.doctor", "--images", str(images), "--limit", "4"], tmp_path)
    assert run.returncode in (0, 1), run.stderr
    assert run.stdout.startswith("model "), run.stdout
    assert not _tf_lines(run.stderr + run.stdout), run.stderr
