"""Normalisation modes, colour modes and the overlay's colours."""

import numpy as np
import pytest

from explain.overlay import blend, colorize, upsample
from explain.preprocess import EXPECTED_RANGE, NORMALIZATIONS, InputSpec, normalize, preprocess

RAMP = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (8, 1, 3))  # 8x256 grey ramp 0..255


@pytest.mark.parametrize("mode", NORMALIZATIONS)
def test_each_normalisation_maps_0_255_onto_its_range(mode):
    out = preprocess(RAMP, InputSpec(size=(8, 256), channels=3, color_mode="rgb", preprocessing=mode))
    assert out.dtype == np.float32 and out.shape == (8, 256, 3)
    low, high = EXPECTED_RANGE[mode]
    assert out.min() == pytest.approx(low, abs=1e-4)
    assert out.max() == pytest.approx(high, abs=1e-4)


def test_known_values():
    x = np.array([[[0.0, 127.5, 255.0]]], np.float32)
    np.testing.assert_allclose(normalize(x, "rescale"), [[[0, 0.5, 1]]])
    np.testing.assert_allclose(normalize(x, "xception"), [[[-1, 0, 1]]])
    np.testing.assert_allclose(normalize(x, "torch"),
                               [[[-0.485 / 0.229, (0.5 - 0.456) / 0.224, (1 - 0.406) / 0.225]]], rtol=1e-5)
    # caffe: RGB -> BGR, then minus the BGR mean.
    np.testing.assert_allclose(normalize(x, "caffe"), [[[255 - 103.939, 127.5 - 116.779, 0 - 123.68]]], rtol=1e-5)
    np.testing.assert_array_equal(normalize(x, "none"), x)


def test_normalize_runs_on_tensors_as_on_arrays():
    import tensorflow as tf

    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    for mode in NORMALIZATIONS:
        np.testing.assert_allclose(normalize(tf.constant(x), mode).numpy(), normalize(x, mode), rtol=1e-6)


def test_grayscale_mode_removes_the_colour_shortcut():
    tinted = np.zeros((10, 10, 3), np.uint8)
    tinted[..., 0], tinted[..., 1], tinted[..., 2] = 120, 100, 140  # an RGB-tinted grey image
    spec = InputSpec(size=(5, 5), channels=3, color_mode="grayscale", preprocessing="rescale")
    out = preprocess(tinted, spec)
    assert out.shape == (5, 5, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 1], out[..., 2])
    one_channel = preprocess(tinted, InputSpec(size=(5, 5), channels=1, preprocessing="rescale"))
    assert one_channel.shape == (5, 5, 1)


def test_resize_keeps_the_original_untouched():
    image = np.random.default_rng(1).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    copy = image.copy()
    out = preprocess(image, InputSpec(size=(64, 64)))
    assert out.shape == (64, 64, 3)
    np.testing.assert_array_equal(image, copy)


def test_invalid_specs_are_rejected():
    with pytest.raises(ValueError, match="preprocessing"):
        InputSpec(size=(8, 8), preprocessing="imagenet")
    with pytest.raises(ValueError, match="color_mode"):
        InputSpec(size=(8, 8), color_mode="bgr")
    with pytest.raises(ValueError, match="3-channel"):
        InputSpec(size=(8, 8), channels=1, preprocessing="torch")


def test_overlay_is_red_where_the_map_is_high_and_blue_where_low():
    heat = np.zeros((20, 20), np.float32)
    heat[:, 10:] = 1.0
    colour = colorize(heat)
    assert colour.dtype == np.uint8 and colour.shape == (20, 20, 3)
    r, g, b = colour[5, 15]
    assert r > 100 and r > 2 * b and r > g  # high -> red (JET top), not BGR-swapped blue
    r, g, b = colour[5, 5]
    assert b > 100 and b > 2 * r  # low -> blue
    grey = np.full((20, 20, 3), 128, np.uint8)
    over = blend(grey, heat, alpha=0.4)
    assert over[5, 15, 0] > over[5, 15, 2] and over[5, 5, 2] > over[5, 5, 0]
    np.testing.assert_array_equal(blend(grey, heat, alpha=0.0), grey)
    with pytest.raises(ValueError):
        blend(grey, heat, alpha=1.5)


def test_upsample_is_smooth_and_in_range():
    cam = np.zeros((4, 4), np.float32)
    cam[1, 1] = 1.0
    big = upsample(cam, (64, 48))
    assert big.shape == (64, 48) and big.min() >= 0 and big.max() <= 1
    assert len(np.unique(np.round(big, 3))) > 20  # interpolated, not nearest-neighbour blocks
    peak = np.unravel_index(np.argmax(big), big.shape)
    assert 10 <= peak[0] <= 30 and 6 <= peak[1] <= 22
