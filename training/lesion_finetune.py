"""Fine-tune a bundle so that its Grad-CAM evidence lies on annotated lesions and its decision
needs them.

    python -m training.lesion_finetune --from models/default \\
        --boxes annotations/raw/train_T_*.json --out models/lesion \\
        --counterfactual-weight 1 --control-weight 1 --summary models/default/training/candidates.json

Loss = cross-entropy on every training image, plus on the boxed training images
(mixed into every batch, ``--boxed-per-batch``), with S = A @ W[:, y] the true
class's signed map and CAM = relu(S):

* ``--weight`` x (1 - share of the CAM mass inside the box);
* ``--point-weight`` x -log(softmax over the cells of S, summed over the cells
  the box touches): the map's maximum belongs in the box;
* ``--evidence-weight`` x relu(1 - max of S in the box): the box must hold
  *positive* evidence (without it the model can move its evidence by making S
  negative everywhere, and Grad-CAM, which shows positive evidence only, comes out empty);
* ``--removal-weight`` x -log(1 - p_y), hinged at ``--removal-margin``, on a copy
  of each boxed image with the box removed: the tumour class should lose its confidence;
* ``--counterfactual-weight`` x cross-entropy of the same lesion-removed copy against
  "no tumour": ``--removed-target CLASS=SHARE`` puts SHARE of the copy's target on
  "no tumour" and the rest on its class (0: no such copy; gliomas, whose boxes often miss
  the oedema, default to 0);
* ``--control-weight`` x cross-entropy, against the image's own class, of a copy with a
  region of the box's size removed elsewhere in the head: removing *something* must not
  mean "no tumour", only removing the lesion.

Copies are removed by a method drawn from ``--removal-methods`` (Telea inpainting, or a
noisy fill from the surrounding ring; never the audit's Navier-Stokes inpainting or blur,
so that the audit measures a removal the model has not seen), the box grown by a margin
drawn from ``--margins`` (px at the model input).

``--balance-classes`` draws the boxed images of a batch class by class (each
tumour class equally often) rather than in proportion to the boxes each class has.

For the bundle's head (GlobalAveragePooling -> Dense) Grad-CAM on the class logit equals
CAM, relu(A @ W[:, c]) up to the factor 1/HW, so the map the app shows is computed in the
forward pass and can be trained directly ("right for the right reasons"): moving its mass
into the box moves the logit's evidence there, since the logit is the map's mean.

Boxes come from annotation files of the *train* part of the split; a path that
is not a train image stops the run (the annotated test images stay unseen). A box is held
out by a hash of its image key (``training.lesion_record``; the same boxes in every
stage); held-out boxes and the val split give the figures candidates are selected on
(``training.select``). Each epoch the run writes its record into ``--summary``.
Checkpoints after every epoch (``last.keras`` with optimizer state, ``state.json`` with
the sampler's state and the settings); the same command resumes, other settings are refused.
Runs on the TensorFlow backend (a ``tf.GradientTape`` step) or on JAX (a jitted
stateless step), e.g. ``KERAS_BACKEND=jax`` on a GPU machine without TensorFlow;
``--write-pack FILE`` stores what training reads from the data folder in one
file and ``--pack FILE`` trains from it, for a machine without the data folder.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import keras
import numpy as np
from keras import ops
from PIL import Image

from explain.bundle import Bundle, load_bundle, save_bundle
from explain.evaluation.audit import NO_TUMOUR_LABELS
from explain.evaluation.lesions import read_lesions
from explain.metrics import classification as C
from explain.metrics import counterfactual as CF
from explain.metrics.plausibility import head_mask
from explain.model.layers import find_target_layer
from explain.preprocess import finish

from . import data as D
from . import lesion_record as R

EPS = 1e-6


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="source", required=True, help="bundle folder to start from")
    p.add_argument("--boxes", nargs="+", required=True, help="annotation files of train images")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=24, help="unboxed images per batch")
    p.add_argument("--boxed-per-batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (cosine decay to 0)")
    p.add_argument("--weight", type=float, default=1.0, help="weight of the box-mass loss")
    p.add_argument("--point-weight", type=float, default=0.5, help="weight of the box-peak loss")
    p.add_argument("--evidence-weight", type=float, default=1.0, help="weight of the positive-evidence loss")
    p.add_argument("--removal-weight", type=float, default=0.0,
                   help="weight of the lesion-removed copy's loss (0 = no copies)")
    p.add_argument("--removal-margin", type=float, default=0.0,
                   help="probability the removed copy may keep without loss (0.5: it need only lose the majority)")
    p.add_argument("--counterfactual-weight", type=float, default=0.0,
                   help="weight of the lesion-removed copy's cross-entropy against --removed-target")
    p.add_argument("--removed-target", nargs="+", default=["glioma=0", "meningioma=1", "pituitary=1"],
                   metavar="CLASS=SHARE", help="share of a lesion-removed copy's target on 'no tumour' "
                   "(0 = no counterfactual copy of that class)")
    p.add_argument("--control-weight", type=float, default=0.0,
                   help="weight of the control copy's cross-entropy (a same-size region elsewhere removed)")
    p.add_argument("--removal-methods", nargs="+", default=list(CF.TRAIN_REMOVALS), choices=CF.TRAIN_REMOVALS)
    p.add_argument("--margins", nargs="+", type=int, default=[0, 1, 2, 3],
                   help="px the box grows by before removal, drawn per copy")
    p.add_argument("--balance-classes", action="store_true", help="draw boxed images evenly per class")
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--holdout-share", type=float, default=0.125,
                   help="share of boxes held out by the hash of their image key (0 = none)")
    p.add_argument("--steps", type=int, help="steps per epoch (default: one pass over the unboxed images)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--data", help=f"dataset folder (default ${D.DATA_ENV} or ../shared/data/brain-tumor-mri)")
    p.add_argument("--cache", default=str(D.ROOT / ".cache"), help="decoded-image cache folder ('' = none)")
    p.add_argument("--write-pack", help="write the data training reads to this .npz and stop")
    p.add_argument("--pack", help="read the data from a --write-pack file instead of the data folder")
    p.add_argument("--run-dir", help="checkpoint folder (default runs/<name of --out>)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--stop-after", type=int, help="stop after this epoch (resume later with the same command)")
    p.add_argument("--summary", help="candidate summary JSON to write this run's record into")
    p.add_argument("--name", help="candidate name in the summary (default: the name of --out)")
    args = p.parse_args(argv)
    args.removed_target = dict(sorted(parse_target(t) for t in args.removed_target))
    return args


def parse_target(text: str) -> tuple[str, float]:
    """"CLASS=SHARE" -> (class, share in [0, 1])."""
    name, _, share = text.partition("=")
    try:
        value = float(share)
    except ValueError:
        raise SystemExit(f"error: --removed-target takes CLASS=SHARE, got {text!r}") from None
    if not name or not 0.0 <= value <= 1.0:
        raise SystemExit(f"error: --removed-target takes CLASS=SHARE with SHARE in [0, 1], got {text!r}")
    return name, value


def box_coverage(box, image_size: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """(h, w) float32 in [0, 1]: the box, given in original pixels of an image of
    ``image_size`` = (W, H), rasterised at the model input's ``input_size`` = (h, w)
    with fractional edge pixels (the app resizes without padding, so the mapping is
    a per-axis scale)."""
    (width, height), (h, w) = image_size, input_size
    x0, y0, x1, y1 = box
    sx, sy = w / width, h / height
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    cover_x = np.clip(np.minimum(xs + 1, x1 * sx) - np.maximum(xs, x0 * sx), 0, 1)
    cover_y = np.clip(np.minimum(ys + 1, y1 * sy) - np.maximum(ys, y0 * sy), 0, 1)
    return np.outer(cover_y, cover_x).astype(np.float32)


def to_map(coverage: np.ndarray, map_size: tuple[int, int]) -> np.ndarray:
    """(h, w) coverage -> (mh, mw) share of each map cell inside the lesion (area average)."""
    return cv2.resize(coverage, (map_size[1], map_size[0]), interpolation=cv2.INTER_AREA)


def remove_lesion(image: np.ndarray, mask: np.ndarray, grow: int = 2) -> np.ndarray:
    """(h, w, c) float32 in [0, 255], (h, w) float32 lesion coverage -> the image with the
    lesion (grown by ``grow`` px) inpainted (Telea, :func:`explain.metrics.counterfactual.remove_region`),
    same shape and dtype."""
    return CF.remove_region(image, CF.grow(mask > 0.05, grow), "inpaint_telea")


def pick_boxed(rng: np.random.Generator, box_labels: np.ndarray, n: int, balance: bool) -> np.ndarray:
    """int (n,) indices into the boxed images: uniform over images, or with ``balance``
    a uniform class first, then a uniform image of that class."""
    if not balance:
        return rng.choice(len(box_labels), size=n)
    classes = np.unique(box_labels)
    members = {c: np.flatnonzero(box_labels == c) for c in classes}
    return np.array([rng.choice(members[c]) for c in rng.choice(classes, size=n)])


def class_map(acts, kernel, labels):
    """Signed map S = A @ W[:, y] of each sample's ``labels`` class, (B, h, w) float32;
    Grad-CAM on the logit is relu(S) (up to 1/HW) for a GAP -> Dense head."""
    weights = ops.take(ops.transpose(kernel), labels, axis=0)  # (B, C)
    return ops.einsum("bhwc,bc->bhw", acts, weights)


def share_inside(cam, masks):
    """(B,) share of each map's mass inside its mask (0 for an all-zero map)."""
    return ops.sum(cam * masks, axis=(1, 2)) / (ops.sum(cam, axis=(1, 2)) + EPS)


def point_loss(signed, masks):
    """(B,) -log of the spatial softmax of S summed over the cells the box touches."""
    flat = ops.reshape(signed, (ops.shape(signed)[0], -1))
    inside = ops.reshape(ops.cast(masks > 0, signed.dtype), ops.shape(flat))
    return -ops.logsumexp(flat + ops.log(inside + EPS), axis=1) + ops.logsumexp(flat, axis=1)


def evidence_loss(signed, masks):
    """(B,) relu(1 - max of S over the cells the box touches): positive evidence in the box."""
    inside = ops.cast(masks > 0, signed.dtype)
    peak_in = ops.max(signed * inside - 1e4 * (1.0 - inside), axis=(1, 2))
    return ops.relu(1.0 - peak_in)


def removal_loss(probs, y_onehot, margin: float = 0.0):
    """(B,) relu(-log(1 - p) + log(1 - margin)), p the true class's probability: the
    lesion-removed copy must not keep the class; with ``margin`` m, a p up to m is free
    (the class need only lose its majority, m = 0.5, rather than all its probability)."""
    surprise = -ops.log(1.0 - ops.sum(probs * y_onehot, axis=-1) + EPS)
    return ops.relu(surprise + math.log(1.0 - margin))


#: Columns of the per-sample ``roles`` array: which loss terms a sample of the batch enters.
ROLES = ("clean", "boxed", "removed", "counterfactual", "control")
TERMS = ("ce", "mass_loss", "point_loss", "evidence_loss", "removal_loss", "counterfactual_loss", "control_loss")


def masked_mean(values, role):
    """Mean of ``values`` (B,) over the samples whose ``role`` (B,) is 1 (0 when there are none)."""
    return ops.sum(values * role) / ops.maximum(ops.sum(role), 1.0)


def combined_loss(acts, probs, kernel, y_onehot, targets, masks, roles, weights, smoothing, margin=0.0):
    """The training loss and its terms (:data:`TERMS`).

    acts (B, mh, mw, C) at the Grad-CAM layer; probs, y_onehot (the true class), targets (the
    counterfactual copies' target distributions) (B, K); masks (B, mh, mw) box coverage per map
    cell; roles float32 (B, 5) 0/1 per :data:`ROLES`: clean and boxed images enter the
    cross-entropy, boxed ones also the map terms, lesion-removed copies the removal hinge and
    the counterfactual cross-entropy, control copies the control cross-entropy.
    ``weights``: the six weights of the terms after the cross-entropy.
    """
    clean, boxed, removed, counterfactual, control = (roles[:, n] for n in range(len(ROLES)))
    per_ce = keras.losses.categorical_crossentropy(y_onehot, probs, label_smoothing=smoothing)
    per_target = keras.losses.categorical_crossentropy(targets, probs, label_smoothing=smoothing)
    signed = class_map(acts, kernel, ops.argmax(y_onehot, axis=-1))
    terms = [masked_mean(per_ce, clean)]
    for term in (1.0 - share_inside(ops.relu(signed), masks), point_loss(signed, masks),
                 evidence_loss(signed, masks)):
        terms.append(masked_mean(term, boxed))
    terms.append(masked_mean(removal_loss(probs, y_onehot, margin), removed))
    terms.append(masked_mean(per_target, counterfactual))
    terms.append(masked_mean(per_ce, control))
    loss = terms[0] + sum(w * t for w, t in zip(weights, terms[1:]))
    return loss, terms


def load_boxes(paths, train_paths: set[str]) -> dict[str, tuple]:
    """Image path -> box for every boxed entry; refuses images outside the train split."""
    boxes = {}
    for path in paths:
        for key, lesion in read_lesions(path).items():
            if key not in train_paths:
                raise SystemExit(f"error: {path}: {key} is not a train image of the split; "
                                 "lesion training uses train images only")
            if lesion.box is not None:
                boxes[key] = lesion.box
    return boxes


def load_data(args, spec, labels: list[str]) -> dict:
    """Everything training reads from the data folder: ``pixels`` (N, h, w, c) uint8 and
    ``y_train`` int (N,) of the train split, ``val_pixels``/``y_val`` of val, ``train_paths``
    (N,) str, and ``coverage`` {path: (h, w) float32} of every boxed image of ``args.boxes``."""
    folder = D.data_dir(args.data)
    cache = Path(args.cache) if args.cache else None
    train_items, val_items = D.read_split(folder, "train"), D.read_split(folder, "val")
    boxes = load_boxes(args.boxes, {i.path for i in train_items})
    coverage = {}
    for key, box in boxes.items():
        with Image.open(folder / key) as im:
            coverage[key] = box_coverage(box, im.size, spec.size)
    return {"pixels": D.load_pixels(folder, train_items, spec, cache),
            "val_pixels": D.load_pixels(folder, val_items, spec, cache),
            "y_train": np.array([labels.index(i.label) for i in train_items]),
            "y_val": np.array([labels.index(i.label) for i in val_items]),
            "train_paths": [i.path for i in train_items], "coverage": coverage}


def write_pack(path, data: dict) -> None:
    """One compressed .npz of :func:`load_data`'s result, to train where the data folder is not
    (a GPU machine): 52 MB for the 128 px default model's data."""
    keys = sorted(data["coverage"])
    np.savez_compressed(path, pixels=data["pixels"], val_pixels=data["val_pixels"], y_train=data["y_train"],
                        y_val=data["y_val"], train_paths=np.array(data["train_paths"]),
                        cover_keys=np.array(keys), cover=np.stack([data["coverage"][k] for k in keys]))


def read_pack(path) -> dict:
    """A :func:`write_pack` file -> the dict :func:`load_data` returns."""
    with np.load(path) as pack:
        data = {k: pack[k] for k in ("pixels", "val_pixels", "y_train", "y_val")}
        data["train_paths"] = [str(p) for p in pack["train_paths"]]
        data["coverage"] = dict(zip((str(k) for k in pack["cover_keys"]), pack["cover"]))
    return data


def target_output(model: keras.Model, name: str):
    """The symbolic output of the Grad-CAM layer ``name`` (a name, a nested path or "auto", as
    the app resolves it with :func:`explain.model.layers.find_target_layer`). The feature model
    is built on the top model's graph, so the layer must be one of its own layers."""
    path = find_target_layer(model, name)
    if len(path.layers) > 1:
        raise SystemExit(f"error: the Grad-CAM layer {path.name} is inside a nested model; CAM training "
                         "needs it at the top level of the model")
    return path.layer.output


class Trainer:
    """The combined loss and one optimisation step, on the TensorFlow or the JAX backend.

    TensorFlow: a ``tf.function`` with a gradient tape, updating the variables in
    place. JAX: a jitted pure step on (trainable, non-trainable, optimizer) values
    held here; :meth:`sync` writes them back into the variables (before saving).
    """

    def __init__(self, model: keras.Model, target_layer: str, weights: tuple[float, ...],
                 smoothing: float, margin: float = 0.0):
        head = model.layers[-1]
        if not isinstance(head, keras.layers.Dense):
            raise SystemExit(f"error: the last layer is {type(head).__name__}; CAM training needs a Dense head")
        self.model, self.kernel, self.weights, self.smoothing = model, head.kernel, weights, smoothing
        self.margin = margin
        self.features = keras.Model(model.input, [target_output(model, target_layer), model.output])
        # The optimizer was built on the model's variables and the JAX step pairs them by position.
        if [v.path for v in self.features.trainable_variables] != [v.path for v in model.trainable_variables]:
            raise SystemExit("error: the feature model orders the trainable variables differently")
        self.backend = keras.backend.backend()
        if self.backend == "tensorflow":
            import tensorflow as tf

            self._tf = tf
            # The batch size varies with the copies a batch draws: one trace for every size.
            self._step_fn = tf.function(self._tf_step, reduce_retracing=True)
        elif self.backend == "jax":
            import jax

            self._kernel_index = next(n for n, v in enumerate(self.features.trainable_variables)
                                      if v is self.kernel)
            self._step_fn = jax.jit(self._jax_step)
            self._state = None
        else:
            raise SystemExit(f"error: lesion training runs on TensorFlow or JAX, not {self.backend}")

    def step(self, x, y_onehot, targets, masks, roles) -> list[float]:
        """One optimisation step (arguments as :func:`combined_loss`'s); returns the loss terms."""
        batch = [np.asarray(a, np.float32) for a in (x, y_onehot, targets, masks, roles)]
        if self.backend == "tensorflow":
            return [float(t) for t in self._step_fn(*batch)]
        if self._state is None:
            self._state = ([v.value for v in self.features.trainable_variables],
                           [v.value for v in self.features.non_trainable_variables],
                           [v.value for v in self.model.optimizer.variables])
        self._state, terms = self._step_fn(self._state, *batch)
        return [float(t) for t in terms]

    def sync(self) -> None:
        """JAX: write the step's values back into the model's and optimizer's variables."""
        if self.backend != "jax" or self._state is None:
            return
        trainable, non_trainable, optimizer = self._state
        for variables, values in ((self.features.trainable_variables, trainable),
                                  (self.features.non_trainable_variables, non_trainable),
                                  (self.model.optimizer.variables, optimizer)):
            for variable, value in zip(variables, values):
                variable.assign(value)
        self._state = None

    def cams(self, x, labels) -> np.ndarray:
        """(B, mh, mw) float32 relu(S) of ``labels``' classes, inference mode."""
        self.sync()
        acts = self.features(np.asarray(x, np.float32), training=False)[0]
        return ops.convert_to_numpy(ops.relu(class_map(acts, self.kernel, np.asarray(labels))))

    def _tf_step(self, x, y_onehot, targets, masks, roles):
        with self._tf.GradientTape() as tape:
            acts, probs = self.features(x, training=True)
            loss, terms = combined_loss(acts, probs, self.kernel, y_onehot, targets, masks, roles,
                                        self.weights, self.smoothing, self.margin)
        variables = self.features.trainable_variables
        self.model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return terms

    def _jax_step(self, state, x, y_onehot, targets, masks, roles):
        import jax

        trainable, non_trainable, optimizer = state

        def loss_fn(trainable, non_trainable):
            (acts, probs), non_trainable = self.features.stateless_call(trainable, non_trainable, x,
                                                                        training=True)
            loss, terms = combined_loss(acts, probs, trainable[self._kernel_index], y_onehot, targets,
                                        masks, roles, self.weights, self.smoothing, self.margin)
            return loss, (terms, non_trainable)

        (_, (terms, non_trainable)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, non_trainable)
        trainable, optimizer = self.model.optimizer.stateless_apply(optimizer, grads, trainable)
        return (trainable, non_trainable, optimizer), terms


def localisation(trainer: Trainer, x: np.ndarray, labels: np.ndarray, masks: np.ndarray) -> dict:
    """Peak-cell-in-box share, mean mass share inside the box (at map resolution) and the
    share of empty maps (no positive evidence at all)."""
    cam = trainer.cams(x, labels)
    flat = cam.reshape(len(cam), -1)
    empty = float((flat.max(1) <= 0).mean())
    peak_in = masks.reshape(len(cam), -1)[np.arange(len(cam)), flat.argmax(1)] > 0
    inside = ops.convert_to_numpy(share_inside(cam, masks))
    return {"peak_in_box": float(peak_in.mean()), "mass_in_box": float(inside.mean()), "empty": empty}


def box_copies(image, cover, label: int, rng, args, no_tumour: int, labels: list[str]) -> list[tuple]:
    """The copies one boxed training image adds to the batch: [(image, target (K,), roles (5,))].

    image (h, w, c) float32 in [0, 255] and cover (h, w) its box coverage, both augmented.
    A lesion-removed copy when its class has a --removed-target share or the removal hinge is
    on; a control copy (a same-size region elsewhere in the head removed) with --control-weight.
    """
    eye = np.eye(len(labels), dtype=np.float32)
    share = args.removed_target.get(labels[label], 0.0) if args.counterfactual_weight > 0 else 0.0
    lesion = CF.grow(cover > 0.05, int(rng.choice(args.margins)))
    out = []
    if share > 0 or args.removal_weight > 0:
        target = (1.0 - share) * eye[label] + share * eye[no_tumour]
        roles = np.array([0, 0, args.removal_weight > 0, share > 0, 0], np.float32)
        out.append((CF.remove_region(image, lesion, str(rng.choice(args.removal_methods)), rng), target, roles))
    if args.control_weight > 0:
        region = CF.control_region(lesion, head_mask(image), rng, margin=2)
        if region is not None:
            control = CF.remove_region(image, region, str(rng.choice(args.removal_methods)), rng)
            out.append((control, eye[label], np.array([0, 0, 0, 0, 1], np.float32)))
    return out


def held_counterfactual_images(pixels: np.ndarray, covers: list[np.ndarray], keys: list[str]) -> dict:
    """Held-out boxes with the lesion removed by each of the audit's methods (never used in
    training) and the control region removed the same way: {method: (lesion-removed (N, h, w, c),
    control (M, h, w, c), indices (M,) of the images that have a control region)}."""
    out = {}
    for method in CF.AUDIT_REMOVALS:
        removed, controls, which = [], [], []
        for n, (image, cover, key) in enumerate(zip(pixels.astype(np.float32), covers, keys)):
            lesion = CF.grow(cover > 0.05, 1)
            removed.append(CF.remove_region(image, lesion, method))
            region = CF.control_region(lesion, head_mask(image), CF.key_rng(key), margin=1)
            if region is not None:
                controls.append(CF.remove_region(image, region, method))
                which.append(n)
        out[method] = (np.stack(removed), np.stack(controls) if controls else None, np.array(which, int))
    return out


def class_figures(y: np.ndarray, pred: np.ndarray, labels: list[str], prefix: str) -> dict:
    """Accuracy, balanced accuracy and the recall of every class with true images, of predictions
    ``pred`` (N,) int (:mod:`explain.metrics.classification`)."""
    recall = C.per_class(C.confusion_matrix(y, pred, len(labels)))["recall"]
    return {f"{prefix}accuracy": C.accuracy(y, pred), f"{prefix}balanced_accuracy": C.class_mean(recall),
            **{f"{prefix}recall_{lab}": float(r) for lab, r in zip(labels, recall) if not np.isnan(r)}}


def counterfactual_figures(predict, held_cf: dict, y_held: np.ndarray, labels: list[str],
                           no_tumour: int) -> dict:
    """Per audit removal method m: ``held_{kept,no_tumour}_{group}_{m}`` with group "mp"
    (meningioma and pituitary pooled) and "glioma", and ``held_control_kept_{m}``."""
    groups = {"mp": np.isin(y_held, [labels.index(c) for c in ("meningioma", "pituitary") if c in labels]),
              "glioma": y_held == (labels.index("glioma") if "glioma" in labels else -1)}
    out = {}
    for method, (removed, controls, which) in held_cf.items():
        pred = predict(removed).argmax(1)
        for group, rows in groups.items():
            if rows.any():
                out[f"held_kept_{group}_{method}"] = float((pred[rows] == y_held[rows]).mean())
                out[f"held_no_tumour_{group}_{method}"] = float((pred[rows] == no_tumour).mean())
        if controls is not None:
            out[f"held_control_kept_{method}"] = float((predict(controls).argmax(1) == y_held[which]).mean())
    return out


def candidate_record(args, argv, state: dict, status: str, extra: dict) -> dict:
    """This run's entry of the candidate summary."""
    history = state["history"]
    return {"status": status, "out": str(args.out), "run_dir": str(state.get("run_dir")),
            "command": "python -m training.lesion_finetune " + " ".join(argv if argv is not None else sys.argv[1:]),
            "settings": state["settings"], "code": state["code"], "resumes": state.get("resumes", []),
            "hardware": state["hardware"], "started": state["started"], "updated": _now(),
            "epochs_done": state["epoch"], "train_seconds": round(sum(h["seconds"] for h in history), 1),
            **extra, "start": state.get("start"), "history": history,
            "final": history[-1] if history else None}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = R.training_settings(args)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    source = load_bundle(args.source)
    spec, labels = source.spec, list(source.labels)
    no_tumour = next((n for n, lab in enumerate(labels) if lab.lower() in NO_TUMOUR_LABELS), None)
    if no_tumour is None and args.counterfactual_weight > 0:
        raise SystemExit("error: the bundle has no 'no tumour' class for the counterfactual copies")
    unknown = set(args.removed_target) - set(labels)
    if unknown:
        raise SystemExit(f"error: --removed-target names classes the bundle lacks: {sorted(unknown)}")
    share = R.recorded_share(source.metadata)
    if share is not None and share != args.holdout_share:
        raise SystemExit(f"error: {args.source} held out boxes with share {share}; the hold-out is fixed "
                         f"across stages, so --holdout-share must be {share}")
    t0 = time.time()
    data = read_pack(args.pack) if args.pack else load_data(args, spec, labels)
    train_paths = list(data["train_paths"])
    boxes = load_boxes(args.boxes, set(train_paths))
    keys = sorted(boxes)
    missing = [k for k in keys if k not in data["coverage"]]
    if missing:
        raise SystemExit(f"error: {args.pack} has no box coverage for {len(missing)} boxed images "
                         f"(e.g. {missing[0]}); write the pack with the same --boxes")
    if args.write_pack:
        write_pack(args.write_pack, data)
        print(f"wrote {args.write_pack}: {len(train_paths)} train, {len(data['y_val'])} val, {len(keys)} boxes")
        return 0
    used, held = R.split_holdout(keys, args.holdout_share)
    seen_before = sorted(R.earlier_training_keys(source.metadata, D.ROOT) & set(held))
    pixels, val_pixels, y_train, y_val = data["pixels"], data["val_pixels"], data["y_train"], data["y_val"]
    coverage = data["coverage"]
    index = {path: n for n, path in enumerate(train_paths)}
    print(f"data: train {len(train_paths)}  val {len(y_val)}  boxes {len(used)} used + "
          f"{len(held)} held out ({len(seen_before)} of them trained on by an earlier stage)  "
          f"({time.time() - t0:.0f}s to load)", flush=True)

    run_dir = Path(args.run_dir or D.ROOT / "runs" / Path(args.out).name)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path, last_path = run_dir / "state.json", run_dir / "last.keras"
    steps = args.steps or math.ceil(len(train_paths) / args.batch_size)
    code = R.code_commit(D.ROOT)
    if last_path.is_file() and state_path.is_file() and not args.fresh:
        state = json.loads(state_path.read_text())
        R.check_resume(state["settings"], settings)
        model = keras.saving.load_model(last_path)
        rng.bit_generator.state = state["rng"]
        state.setdefault("resumes", []).append({"epoch": state["epoch"], "code": code, "at": _now()})
        print(f"resuming {run_dir} at epoch {state['epoch']}", flush=True)
    else:
        state = {"epoch": 0, "history": [], "settings": settings, "code": code, "hardware": R.hardware(),
                 "started": _now(), "run_dir": str(run_dir)}
        model = source.model
        schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=args.epochs * steps)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss="categorical_crossentropy")
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    trainer = Trainer(model, source.target_layer,
                      (args.weight, args.point_weight, args.evidence_weight, args.removal_weight,
                       args.counterfactual_weight, args.control_weight),
                      args.label_smoothing, args.removal_margin)
    map_size = tuple(trainer.features.outputs[0].shape[1:3])
    eye = np.eye(len(labels), dtype=np.float32)

    held_rows = [index[k] for k in held]
    x_held = finish(pixels[held_rows], spec) if held else None
    y_held = y_train[held_rows]
    used_labels = y_train[[index[k] for k in used]]
    m_held = np.stack([to_map(coverage[k], map_size) for k in held]) if held else None
    held_cf = held_counterfactual_images(pixels[held_rows], [coverage[k] for k in held], held) if held else {}
    x_held_removed = finish(np.stack([remove_lesion(pixels[index[k]].astype(np.float32), coverage[k])
                                      for k in held]), spec) if held else None

    def evaluate() -> dict:
        trainer.sync()
        out = class_figures(y_val, model.predict(finish(val_pixels, spec), batch_size=64, verbose=0).argmax(1),
                            labels, "val_")
        if held:
            out.update({f"held_{k}": v for k, v in localisation(trainer, x_held, y_held, m_held).items()})
            rows = np.arange(len(held))
            p_kept = model.predict(x_held, batch_size=64, verbose=0)[rows, y_held]
            p_gone = model.predict(x_held_removed, batch_size=64, verbose=0)[rows, y_held]
            out.update({"held_p_true": float(p_kept.mean()), "held_p_true_lesion_removed": float(p_gone.mean())})
            if no_tumour is not None:
                out.update(counterfactual_figures(
                    lambda im: model.predict(finish(im, spec), batch_size=64, verbose=0), held_cf, y_held,
                    labels, no_tumour))
        return out

    extra = {"from": {"path": str(args.source), "weights_sha256": source.weights_digest(),
                      "trained": source.metadata.get("trained"),
                      "stages_before": len(source.metadata.get("lesion_finetune_earlier", []))
                      + bool(source.metadata.get("lesion_finetune"))},
             "holdout": {"rule": R.HOLDOUT_RULE, "share": args.holdout_share, "held": held,
                         "trained_by_earlier_stage": seen_before},
             "boxes_used": len(used), "boxes_held_out": len(held)}
    name = args.name or Path(args.out).name

    def record(status: str) -> None:
        if args.summary:
            R.update_summary(Path(args.summary), name, candidate_record(args, argv, state, status, extra))

    if state["epoch"] == 0 and not state["history"]:
        state["start"] = evaluate()
        print(f"start: {json.dumps(state['start'])}", flush=True)
        record("running")
    for epoch in range(state["epoch"], args.epochs):
        if args.stop_after is not None and epoch >= args.stop_after:
            record(f"stopped after epoch {epoch}")
            print(f"stopped after epoch {epoch} (--stop-after); the same command without it resumes")
            return 0
        t0 = time.time()
        order = np.random.default_rng(args.seed + epoch).permutation(len(train_paths))
        totals = np.zeros(len(TERMS))
        for s in range(steps):
            idx = order[s * args.batch_size:(s + 1) * args.batch_size]
            picks = pick_boxed(rng, used_labels, args.boxed_per_batch, args.balance_classes)
            images = [D.augment(pixels[i], rng) for i in idx]
            masks = [np.zeros(map_size, np.float32)] * len(idx)
            ys = list(y_train[idx])
            targets = [eye[y] for y in ys]
            roles = [np.array([1, 0, 0, 0, 0], np.float32)] * len(idx)
            copies = []
            for p in picks:
                label = int(y_train[index[used[p]]])
                image, cover = D.augment(pixels[index[used[p]]], rng, coverage[used[p]])
                images.append(image)
                masks.append(to_map(cover, map_size))
                ys.append(label)
                targets.append(eye[label])
                roles.append(np.array([1, 1, 0, 0, 0], np.float32))
                copies += [(label, *c) for c in box_copies(image, cover, label, rng, args, no_tumour, labels)]
            for label, image, target, role in copies:
                images.append(image)
                masks.append(np.zeros(map_size, np.float32))
                ys.append(label)
                targets.append(target)
                roles.append(role)
            losses = trainer.step(finish(np.stack(images), spec), eye[np.array(ys)], np.stack(targets),
                                  np.stack(masks), np.stack(roles))
            totals += [float(v) for v in losses]
            if (s + 1) % 50 == 0:
                print(f"epoch {epoch + 1} step {s + 1}/{steps} {time.time() - t0:.0f}s", flush=True)
        row = {"epoch": epoch + 1, "seconds": round(time.time() - t0, 1),
               **dict(zip(TERMS, (totals / steps).tolist())), **evaluate()}
        state["history"].append(row)
        state["epoch"] = epoch + 1
        state["rng"] = rng.bit_generator.state
        trainer.sync()
        model.save(last_path)
        model.save_weights(run_dir / f"epoch{epoch + 1}.weights.h5")
        state_path.write_text(json.dumps(state, indent=1))
        record("running" if epoch + 1 < args.epochs else "done")
        print(json.dumps(row), flush=True)

    metadata = dict(source.metadata)
    metadata.pop("evaluation", None)
    # A bundle fine-tuned again keeps the record of every earlier stage, oldest first.
    earlier = metadata.pop("lesion_finetune_earlier", [])
    if "lesion_finetune" in metadata:
        earlier.append(metadata.pop("lesion_finetune"))
    if earlier:
        metadata["lesion_finetune_earlier"] = earlier
    metadata["lesion_finetune"] = {
        "candidate": name, "summary": args.summary, "boxes": [str(p) for p in args.boxes],
        **extra, "settings": settings, "code": state["code"], "resumes": state.get("resumes", []),
        "hardware": state["hardware"], "start": state.get("start"), "history": state["history"],
        "train_seconds": round(sum(h["seconds"] for h in state["history"]), 1),
    }
    save_bundle(Bundle(model, labels, spec, source.target_layer, 1.0, metadata), args.out)
    print(f"wrote {args.out}; calibrate with python -m training.evaluate --model {args.out} --calibrate --write-metrics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
