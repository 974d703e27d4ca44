"""Model architectures: the full Xception and a compact Xception-style network.

Both end in GlobalAveragePooling -> Dense(softmax), the head for which
Grad-CAM on the logits equals the original CAM, and both use BatchNorm
momentum 0.9: with Keras' default 0.99 the moving statistics of a network
trained from scratch lag behind for hundreds of steps and evaluation sits at
chance while training accuracy climbs (measured here; see the notes).
"""

from __future__ import annotations

import keras
from keras import layers

BN_MOMENTUM = 0.9
#: The compact model's Grad-CAM layer (last spatial activation).
COMPACT_TARGET = "final_act"


def _bn(name=None):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def compact(size: int, num_classes: int, width: int = 32, dropout: float = 0.3,
            map_stride: int = 8) -> keras.Model:
    """Xception-style CNN: separable convs with residual 1x1 shortcuts, GAP, one Dense.

    Input (size, size, 3) in [0, 1]; output (num_classes,) softmax. The final
    spatial map (the Grad-CAM layer) is size / map_stride: 16x16 at 128 px
    with the default 8, 8x8 with 16. The finer map makes the forward pass
    ~20 % slower and keeps the heatmap inside the head: with 16 px cells,
    upsampling spreads the mass of a tumour near the skull onto the background.
    """
    if map_stride not in (8, 16):
        raise ValueError(f"map_stride must be 8 or 16, got {map_stride}")
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="stem_conv1")(inputs)
    x = _bn("stem_bn1")(x)
    x = layers.Activation("relu", name="stem_act1")(x)
    x = layers.Conv2D(width * 2, 3, padding="same", use_bias=False, name="stem_conv2")(x)
    x = _bn("stem_bn2")(x)
    x = layers.Activation("relu", name="stem_act2")(x)
    for i, filters in enumerate((width * 4, width * 8, width * 12), start=1):
        # The stem and the first two blocks halve the size (stride 8); the
        # third block halves it again only for map_stride 16.
        stride = 2 if i < 3 or map_stride == 16 else 1
        shortcut = layers.Conv2D(filters, 1, strides=stride, padding="same", use_bias=False,
                                 name=f"block{i}_shortcut")(x)
        shortcut = _bn(f"block{i}_shortcut_bn")(shortcut)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"block{i}_sepconv1")(x)
        x = _bn(f"block{i}_bn1")(x)
        x = layers.Activation("relu", name=f"block{i}_act1")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"block{i}_sepconv2")(x)
        x = _bn(f"block{i}_bn2")(x)
        x = layers.MaxPooling2D(3, strides=stride, padding="same", name=f"block{i}_pool")(x)
        x = layers.Add(name=f"block{i}_add")([x, shortcut])
        x = layers.Activation("relu", name=f"block{i}_out")(x)
    x = layers.SeparableConv2D(width * 16, 3, padding="same", use_bias=False, name="final_sepconv")(x)
    x = _bn("final_bn")(x)
    x = layers.Activation("relu", name=COMPACT_TARGET)(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="compact_xception")


def xception(size: int, num_classes: int) -> keras.Model:
    """keras.applications.Xception from scratch (no weights can be downloaded here)."""
    model = keras.applications.Xception(
        weights=None, input_shape=(size, size, 3), classes=num_classes, classifier_activation="softmax"
    )
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


ARCHITECTURES = {"compact": compact, "xception": xception}
TARGET_LAYERS = {"compact": COMPACT_TARGET, "xception": "block14_sepconv2_act"}
DEFAULT_SIZES = {"compact": 128, "xception": 299}
