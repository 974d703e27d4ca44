"""The demo examples that ship in ``examples/`` (listed in ``examples/examples.json``)."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLES_JSON = Path(__file__).resolve().parents[1] / "examples" / "examples.json"
CLASS_NAMES = {"notumor": "no tumour", "pituitary": "pituitary tumour"}


def example_files(path: Path = EXAMPLES_JSON) -> list[tuple[str, str]]:
    """(file, caption) of every listed example; caption = the true class and the view.

    A listed file that is missing is an error, not a silently shorter list:
    the examples are part of the repository.
    """
    if not path.is_file():
        return []
    found = []
    for entry in json.loads(path.read_text())["examples"]:
        local = path.parent / entry["file"]
        if not local.is_file():
            raise FileNotFoundError(f"{path} lists {entry['file']}, which is missing; "
                                    "run `python examples/fetch.py` to restore it")
        label = CLASS_NAMES.get(entry["label"], entry["label"])
        found.append((str(local), f"{label}, {entry['view']}" if entry.get("view") else label))
    return found
