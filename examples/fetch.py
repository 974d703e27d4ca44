"""Copy the example slices listed in examples.json from the dataset folder into examples/.

    python examples/fetch.py [--data DIR] [--check]

The examples are committed, so the app needs neither this script nor the
dataset; it regenerates them (same bytes) after examples.json changes.
``--check`` only verifies that the committed files equal the dataset's.
The dataset folder defaults to $BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("BRAIN_MRI_DATA")
                        or str(HERE.parent.parent / "shared" / "data" / "brain-tumor-mri"))
    parser.add_argument("--check", action="store_true", help="compare only, copy nothing")
    args = parser.parse_args(argv)
    data = Path(args.data)
    entries = json.loads((HERE / "examples.json").read_text())["examples"]
    missing = [e["source"] for e in entries if not (data / e["source"]).is_file()]
    if missing:
        print(f"error: {len(missing)} example(s) not found under {data} (first: {missing[0]}); "
              "set BRAIN_MRI_DATA or pass --data", file=sys.stderr)
        return 1
    if args.check:
        differ = [e["file"] for e in entries
                  if not (HERE / e["file"]).is_file()
                  or (HERE / e["file"]).read_bytes() != (data / e["source"]).read_bytes()]
        print(f"{len(entries) - len(differ)}/{len(entries)} examples equal the dataset's files"
              + (f"; differ or missing: {', '.join(differ)}" if differ else ""))
        return 1 if differ else 0
    for entry in entries:
        shutil.copyfile(data / entry["source"], HERE / entry["file"])
    print(f"copied {len(entries)} examples into {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
