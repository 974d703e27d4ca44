"""Train a classifier on the leak-free split and write a model bundle.

    python -m training.train --arch compact --out models/default
    python -m training.train --arch xception --epochs 30 --out models/xception   # GPU

A run folder (``--run-dir``, default ``runs/<out name>``) keeps ``last.keras``
(model + optimizer state), ``best.weights.h5`` and ``state.json`` after every
epoch; running the same command again resumes from there.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from explain.bundle import Bundle, save_bundle
from explain.preprocess import InputSpec

from . import data as D
from .models import ARCHITECTURES, DEFAULT_SIZES, TARGET_LAYERS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default="compact")
    p.add_argument("--size", type=int, help="input size in pixels (default: 128 compact, 299 xception)")
    p.add_argument("--epochs", type=int, default=26)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine decay)")
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--patience", type=int, default=8, help="early stopping on val accuracy")
    p.add_argument("--width", type=int, default=32, help="compact model base width")
    p.add_argument("--map-stride", type=int, choices=(8, 16), default=8,
                   help="compact model: input size / Grad-CAM map size (8: 16x16 at 128 px)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--data", help=f"dataset folder (default ${D.DATA_ENV} or ../shared/data/brain-tumor-mri)")
    p.add_argument("--csv", default="clean_split.csv", help="split file inside the dataset folder")
    p.add_argument("--limit", type=int, help="use at most N images per split (quick checks)")
    p.add_argument("--cache", default=str(D.ROOT / ".cache"), help="decoded-image cache folder ('' = none)")
    p.add_argument("--run-dir", help="checkpoint folder (default runs/<name of --out>)")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    return p.parse_args(argv)


class Checkpoint(keras.callbacks.Callback):
    """Per-epoch checkpoint, best-weights tracking, early stopping and an ETA line."""

    def __init__(self, run_dir: Path, state: dict, epochs: int, patience: int):
        super().__init__()
        self.run_dir, self.state, self.epochs, self.patience = run_dir, state, epochs, patience
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        s = self.state
        s["history"].append({"epoch": epoch + 1, "seconds": round(time.time() - self._start, 1), **logs})
        s["epoch"] = epoch + 1
        val = logs.get("val_accuracy", -1.0)
        improved = val > s["best_val_accuracy"] or (
            val == s["best_val_accuracy"] and logs.get("val_loss", math.inf) < s["best_val_loss"])
        if improved:
            s.update(best_val_accuracy=val, best_val_loss=logs.get("val_loss", math.inf),
                     best_epoch=epoch + 1, wait=0)
            self.model.save_weights(self.run_dir / "best.weights.h5")
        else:
            s["wait"] += 1
        self.model.save(self.run_dir / "last.keras")
        (self.run_dir / "state.json").write_text(json.dumps(s, indent=1))
        per_epoch = np.median([h["seconds"] for h in s["history"][-5:]])
        left = (self.epochs - epoch - 1) * per_epoch
        print(f"epoch {epoch + 1}/{self.epochs}  loss {logs.get('loss', 0):.4f}  "
              f"acc {logs.get('accuracy', 0):.4f}  val_loss {logs.get('val_loss', 0):.4f}  "
              f"val_acc {val:.4f}  best {s['best_val_accuracy']:.4f}@{s['best_epoch']}  "
              f"{per_epoch:.0f}s/epoch  ~{left / 60:.0f} min left", flush=True)
        if s["wait"] >= self.patience:
            print(f"early stop: no val accuracy gain for {self.patience} epochs", flush=True)
            self.model.stop_training = True
            s["stopped_early"] = True


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=D.ROOT, capture_output=True,
                              text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def build(args, steps_per_epoch: int, num_classes: int) -> keras.Model:
    size = args.size or DEFAULT_SIZES[args.arch]
    if args.arch == "compact":
        model = ARCHITECTURES["compact"](size, num_classes, width=args.width,
                                         map_stride=args.map_stride)
    else:
        model = ARCHITECTURES[args.arch](size, num_classes)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.lr / 10, decay_steps=args.epochs * steps_per_epoch,
        warmup_target=args.lr, warmup_steps=steps_per_epoch)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def main(argv=None) -> int:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    folder = D.data_dir(args.data)
    size = args.size or DEFAULT_SIZES[args.arch]
    spec = InputSpec(size=(size, size), channels=3, color_mode="grayscale", preprocessing="rescale")
    labels = list(D.LABELS)
    splits = {}
    for split in ("train", "val"):
        items = D.read_split(folder, split, args.csv)
        if args.limit and len(items) > args.limit:
            # An even stride keeps every class in a small subset (the csv is grouped by class folder).
            items = [items[int(i * len(items) / args.limit)] for i in range(args.limit)]
        splits[split] = items
    cache = Path(args.cache) if args.cache else None
    t0 = time.time()
    pixels = {k: D.load_pixels(folder, v, spec, cache) for k, v in splits.items()}
    ys = {k: np.array([labels.index(i.label) for i in v]) for k, v in splits.items()}
    print(f"data: {folder}  train {len(ys['train'])}  val {len(ys['val'])}  "
          f"input {size}x{size} grayscale->3ch  ({time.time() - t0:.0f}s to load)", flush=True)

    train = D.Batches(pixels["train"], ys["train"], spec, len(labels), args.batch_size, training=True,
                      seed=args.seed)
    val = D.Batches(pixels["val"], ys["val"], spec, len(labels), 64)

    run_dir = Path(args.run_dir or D.ROOT / "runs" / Path(args.out).name)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path, last_path = run_dir / "state.json", run_dir / "last.keras"
    if last_path.is_file() and state_path.is_file() and not args.fresh:
        state = json.loads(state_path.read_text())
        model = keras.saving.load_model(last_path)
        print(f"resuming {run_dir} at epoch {state['epoch']}", flush=True)
    else:
        state = {"epoch": 0, "best_val_accuracy": -1.0, "best_val_loss": math.inf, "best_epoch": 0,
                 "wait": 0, "history": [], "args": vars(args)}
        model = build(args, len(train), len(labels))
    if state["epoch"] < args.epochs and state["wait"] < args.patience:
        model.fit(train, validation_data=val, epochs=args.epochs, initial_epoch=state["epoch"],
                  callbacks=[Checkpoint(run_dir, state, args.epochs, args.patience)], verbose=0)
    model.load_weights(run_dir / "best.weights.h5")

    all_items = splits["train"] + splits["val"]
    metadata = {
        "architecture": args.arch,
        "params": int(model.count_params()),
        "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "training": {k: v for k, v in vars(args).items() if k not in ("out", "run_dir", "cache", "data")},
        "data": {"csv": args.csv, "fingerprint_sha256": D.fingerprint(all_items),
                 "train_images": len(splits["train"]), "val_images": len(splits["val"])},
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "train_seconds": round(sum(h["seconds"] for h in state["history"]), 1),
        "val_accuracy": state["best_val_accuracy"],
        "history": state["history"],
    }
    bundle = Bundle(model, labels, spec, TARGET_LAYERS[args.arch], 1.0, metadata)
    save_bundle(bundle, args.out)
    print(f"wrote {args.out}  (best epoch {state['best_epoch']}, val accuracy {state['best_val_accuracy']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
