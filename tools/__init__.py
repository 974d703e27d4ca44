"""Scripts that measure the shipped bundle into the results files the documents render from (docs/render.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parser(prog: str, doc: str, out: str) -> argparse.ArgumentParser:
    """``--model`` (default: the bundled default model) and ``--out`` (default: ``out`` under the repository)."""
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=ROOT / "models/default")
    p.add_argument("--out", type=Path, default=ROOT / out)
    return p
