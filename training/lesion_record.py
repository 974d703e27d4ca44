"""The record of a lesion-guided fine-tune: which boxes are held out, which settings a checkpoint
was made with, and the candidate summary every run writes.

* Hold-out: a box is held out when the SHA-256 of its image key, read as a fraction of
  2**256, is below ``share``. Membership depends on the key alone, so adding boxes never
  moves a box between training and hold-out, and every stage with the same share holds out
  the same images. The share is recorded in the bundle and a later stage must use it.
* Resume: a checkpoint stores the settings it was made with; resuming with other settings
  is refused (a changed schedule or seed is a new run, in a new run folder).
* Summary: one JSON file (``models/default/training/candidates.json``) holds a record per
  candidate (settings, the commit of the code, the machine, validation and held-out
  figures per epoch), written by the training script itself; ``training.select`` reads it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from explain.evaluation.lesions import read_lesions

HOLDOUT_RULE = "held out when int(sha256(image key), 16) / 2**256 < share"
#: Arguments that do not change what is trained: paths of the data, the output, and control
#: of when to stop (a run stopped early and resumed equals one that never stopped).
NOT_SETTINGS = frozenset({"out", "run_dir", "cache", "data", "pack", "write_pack", "fresh", "stop_after",
                          "summary", "name"})
SUMMARY_FORMAT = "brain-mri-gradcam-candidates"


def hash_fraction(key: str) -> float:
    """The image key's SHA-256 as a number in [0, 1)."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) / 2.0 ** 256


def split_holdout(keys, share: float) -> tuple[list[str], list[str]]:
    """(used, held) sorted keys: held are those with :func:`hash_fraction` below ``share``."""
    keys = sorted(keys)
    held = [k for k in keys if hash_fraction(k) < share]
    return [k for k in keys if hash_fraction(k) >= share], held


def recorded_share(metadata: dict) -> float | None:
    """The hold-out share an earlier stage of this bundle recorded; None before the hash rule."""
    holdout = (metadata.get("lesion_finetune") or {}).get("holdout")
    return holdout.get("share") if isinstance(holdout, dict) else None


def earlier_training_keys(metadata: dict, root: Path) -> set[str]:
    """Image keys of boxes an earlier stage of this bundle trained on.

    Records with the hash rule list their held-out keys; the earlier rule (settings
    ``holdout`` = N: every N-th of the sorted boxed keys of the stage's files) is replayed.
    Box files are read relative to ``root`` (the repository)."""
    stages = list(metadata.get("lesion_finetune_earlier", []))
    if metadata.get("lesion_finetune"):
        stages.append(metadata["lesion_finetune"])
    seen: set[str] = set()
    for stage in stages:
        keys = sorted({k for f in stage.get("boxes", []) for k, v in read_lesions(root / f).items()
                       if v.box is not None})
        holdout = stage.get("holdout")
        if isinstance(holdout, dict):
            held = set(holdout.get("held", []))
        else:
            every = int(stage.get("settings", {}).get("holdout") or 0)
            held = {k for n, k in enumerate(keys) if every and n % every == every - 1}
        seen |= set(keys) - held
    return seen


def training_settings(args) -> dict:
    """The arguments that change what is trained (every one but :data:`NOT_SETTINGS`)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in NOT_SETTINGS}


def check_resume(saved: dict, settings: dict) -> None:
    """Refuse to resume a checkpoint made with other settings (names each difference)."""
    changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
    if changed:
        detail = "; ".join(f"{k}: {saved.get(k)!r} -> {settings.get(k)!r}" for k in changed)
        raise SystemExit(f"error: the checkpoint was made with other settings ({detail}); resume with the "
                         "same ones, or start a new run (--fresh or another --run-dir)")


def code_commit(root: Path) -> dict:
    """{"commit": HEAD's hash or None, "dirty": True if tracked files differ from it}."""
    def git(*cmd):
        try:
            return subprocess.run(["git", "-C", str(root), *cmd], check=False, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or None
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def hardware() -> dict:
    """The machine a run trained on, in words a reader can compare."""
    import keras

    info = {"machine": platform.machine(), "cpu_count": os.cpu_count(), "backend": keras.backend.backend(),
            "keras": keras.__version__, "python": platform.python_version()}
    if info["backend"] == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    return info


def update_summary(path: Path, name: str, record: dict) -> None:
    """Write ``record`` as candidate ``name`` into the summary file (created if absent), under a
    file lock so that runs in parallel do not lose each other's records."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"candidates-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(path.read_text()) if path.is_file() else {"format": SUMMARY_FORMAT, "candidates": {}}
        doc["candidates"][name] = record
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(path)


def read_summary(path: Path) -> dict:
    """{name: record} of a summary file."""
    doc = json.loads(Path(path).read_text())
    if doc.get("format") != SUMMARY_FORMAT:
        raise ValueError(f"{path}: not a candidate summary ({doc.get('format')!r})")
    return doc["candidates"]
