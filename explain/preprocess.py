"""Turn a decoded RGB image into exactly the tensor the model was trained on.

Pipeline, each step a function so that training can stop after the cacheable
part and apply augmentation before the rest:

    rgb uint8 (H, W, 3)
      -> to_color_mode   uint8 (H, W, 1) for "grayscale" or (H, W, 3) for "rgb"
      -> resize          uint8 (h, w, c), the model's input size
      -> to_channels     uint8 (h, w, C), C = the model's input channels
      -> normalize       float32 (h, w, C), range set by the normalisation mode

Normalisation modes (``InputSpec.preprocessing``):

=========  ===========================================  =================
mode       formula on x in [0, 255]                      output range
=========  ===========================================  =================
rescale    x / 255 (Keras ``rescale=1./255``)           [0, 1]
xception   x / 127.5 - 1 (``xception.preprocess_input``) [-1, 1]
tf         same as xception                              [-1, 1]
torch      (x / 255 - ImageNet mean) / ImageNet std      about [-2.1, 2.6]
caffe      RGB->BGR, minus ImageNet BGR mean             about [-124, 152]
none       x unchanged (the model rescales itself)       [0, 255]
=========  ===========================================  =================

:func:`normalize` uses only arithmetic and slicing, so it runs unchanged on
numpy arrays and on backend tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

COLOR_MODES = ("grayscale", "rgb")
NORMALIZATIONS = ("rescale", "xception", "tf", "torch", "caffe", "none")

#: Value range each normalisation maps [0, 255] onto (used by the checks).
EXPECTED_RANGE = {
    "rescale": (0.0, 1.0),
    "xception": (-1.0, 1.0),
    "tf": (-1.0, 1.0),
    "torch": ((0 - 0.485) / 0.229, (1 - 0.406) / 0.225),
    "caffe": (-123.68, 255 - 103.939),
    "none": (0.0, 255.0),
}

_TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes a model input.

    size: (height, width) of the model input.
    channels: 1 or 3, the model's input channels.
    color_mode: "grayscale" (luma, replicated to ``channels``) or "rgb".
    preprocessing: one of :data:`NORMALIZATIONS`.
    """

    size: tuple[int, int]
    channels: int = 3
    color_mode: str = "grayscale"
    preprocessing: str = "rescale"

    def __post_init__(self):
        if self.color_mode not in COLOR_MODES:
            raise ValueError(f"color_mode must be one of {COLOR_MODES}, not {self.color_mode!r}")
        if self.preprocessing not in NORMALIZATIONS:
            raise ValueError(
                f"preprocessing must be one of {NORMALIZATIONS}, not {self.preprocessing!r}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if self.channels == 1 and self.color_mode == "rgb":
            raise ValueError("a 1-channel model needs color_mode 'grayscale'")
        if self.channels == 1 and self.preprocessing in ("torch", "caffe"):
            raise ValueError(f"{self.preprocessing!r} normalisation needs a 3-channel model")


def to_color_mode(rgb: np.ndarray, color_mode: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 1) luma for "grayscale", or unchanged for "rgb"."""
    if color_mode == "grayscale":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None]
    if color_mode == "rgb":
        return rgb
    raise ValueError(f"unknown color_mode {color_mode!r}")


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) uint8 -> (h, w, C) uint8. Area averaging when shrinking (no aliasing)."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    out = cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )
    return out if out.ndim == 3 else out[:, :, None]


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(h, w, 1|3) -> (h, w, channels); a single channel is replicated."""
    if image.shape[-1] == channels:
        return image
    if image.shape[-1] == 1:
        return np.repeat(image, channels, axis=-1)
    raise ValueError(f"cannot turn {image.shape[-1]} channels into {channels}")


def normalize(x, mode: str):
    """Map pixel values in [0, 255] (float) to the model's range; see the module table.

    Works on numpy arrays and backend tensors alike (arithmetic and slicing only).
    """
    if mode == "rescale":
        return x / 255.0
    if mode in ("xception", "tf"):
        return x / 127.5 - 1.0
    if mode == "torch":
        return (x / 255.0 - _TORCH_MEAN) / _TORCH_STD
    if mode == "caffe":
        return x[..., ::-1] - _CAFFE_MEAN_BGR
    if mode == "none":
        return x
    raise ValueError(f"unknown preprocessing {mode!r}; expected one of {NORMALIZATIONS}")


def prepare_pixels(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Cacheable part: (H, W, 3) uint8 RGB -> (h, w, 1|3) uint8 in the spec's colour mode and size."""
    return resize(to_color_mode(rgb, spec.color_mode), spec.size)


def finish(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(..., h, w, 1|3) uint8 or float in [0, 255] -> float32 (..., h, w, C) model input."""
    pixels = to_channels(np.asarray(pixels), spec.channels)
    return np.asarray(normalize(pixels.astype(np.float32), spec.preprocessing), dtype=np.float32)


def preprocess(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> float32 (h, w, C) model input. Same path as training."""
    return finish(prepare_pixels(rgb, spec), spec)


def as_model_batch(batch, input_shape) -> np.ndarray:
    """One image (h, w, C) or a batch (B, h, w, C) -> float32 (B, h, w, C); shape checked."""
    batch = np.asarray(batch, np.float32)
    if batch.ndim == len(input_shape):
        batch = batch[None]
    if batch.shape[1:] != tuple(input_shape):
        raise ValueError(f"expected images of shape {tuple(input_shape)}, got {batch.shape[1:]}")
    return batch
