"""Copy the example images listed in examples.json from the dataset into examples/images/.

    python examples/fetch.py [--data DIR]

The dataset folder defaults to $BRAIN_MRI_DATA or ../shared/data/brain-tumor-mri.
The copies are ignored by git: dataset images are never committed.
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
    args = parser.parse_args(argv)
    data = Path(args.data)
    entries = json.loads((HERE / "examples.json").read_text())["examples"]
    missing = [e["source"] for e in entries if not (data / e["source"]).is_file()]
    if missing:
        print(f"error: {len(missing)} example(s) not found under {data} (first: {missing[0]}); "
              "set BRAIN_MRI_DATA or pass --data", file=sys.stderr)
        return 1
    for entry in entries:
        target = HERE / entry["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / entry["source"], target)
    print(f"copied {len(entries)} examples into {HERE / 'images'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
