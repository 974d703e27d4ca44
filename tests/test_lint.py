"""The tree passes `ruff check .` under the repository's ruff.toml (skipped where ruff is not installed)."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = pytest.importorskip("ruff.__main__", reason="ruff is not installed (pip install -r requirements-dev.txt)")
    result = subprocess.run([ruff.find_ruff_bin(), "check", "--no-cache", "--output-format", "concise", "."],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
