"""The rest of a loopback frame: contrast, anti-blur, Perlin noise, colour spaces,
perspective flip, the depth-map cache, and the order LoopbackInputs applies them in."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.animation.camera3d import CameraStep3D
from pipeline.animation.color_match import match_colors
from pipeline.animation.depth_cache import DepthCache, preview
from pipeline.animation.flip import flip_matrix
from pipeline.animation.loopback import (
    AntiBlur,
    CameraStep,
    InputTools,
    LoopbackInputs,
    LoopbackSettings,
    PerlinShape,
    PerspectiveFlip,
)
from pipeline.animation.motion import add_noise, warp_2d
from pipeline.animation.perlin import perlin_envelope
from pipeline.animation.sharpen import scale_values, unsharp_mask
from pipeline.config.schema import ColorCoherence


def smooth_image(size: int = 48, seed: int = 0) -> np.ndarray:
    """A picture with soft shapes (random noise blurred), so sharpening has edges to find."""
    noise = np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 3) * 3 - 256, 0, 255).astype(np.uint8)


def test_contrast_scales_and_clips() -> None:
    image = np.array([[[10, 100, 250]]], np.uint8)
    np.testing.assert_array_equal(scale_values(image, 1.2), [[[12, 120, 255]]])  # not 44
    np.testing.assert_array_equal(scale_values(image, 1.0), image)


def test_anti_blur_is_the_unsharp_mask_by_hand() -> None:
    image = smooth_image()
    amount, kernel, sigma = 0.5, 5, 1.0
    blurred = cv2.GaussianBlur(image.astype(np.float32), (kernel, kernel), sigma)
    expected = np.clip(np.rint(image + amount * (image - blurred)), 0, 255)
    np.testing.assert_array_equal(unsharp_mask(image, amount, kernel, sigma, 0.0), expected)
    assert np.array_equal(unsharp_mask(image, 0.0, kernel, sigma, 0.0), image)  # off
    # a threshold keeps every pixel whose difference from the blur is below it
    kept = unsharp_mask(image, amount, kernel, sigma, threshold=3.0)
    flat = np.abs(image - blurred) < 3.0
    assert flat.any() and (~flat).any()
    np.testing.assert_array_equal(kept[flat], image[flat])
    np.testing.assert_array_equal(kept[~flat], expected[~flat])
    # sharpening raises the contrast of edges: the picture moves away from its blur
    assert np.abs(expected - blurred).mean() > np.abs(image - blurred).mean()


def test_perlin_noise_comes_in_patches() -> None:
    flat = np.full((64, 64, 3), 128, np.uint8)
    envelope = perlin_envelope(64, 64, 4, 4, octaves=2, persistence=0.5, seed=5)
    np.testing.assert_array_equal(envelope, perlin_envelope(64, 64, 4, 4, 2, 0.5, seed=5))
    assert not np.array_equal(envelope, perlin_envelope(64, 64, 4, 4, 2, 0.5, seed=6))
    perlin = add_noise(flat, 0.1, seed=5, envelope=envelope).astype(float) - 128
    white = add_noise(flat, 0.1, seed=5).astype(float) - 128
    # the same white noise, scaled by the envelope: weaker on average, uneven in blocks
    blocks = np.abs(perlin).reshape(8, 8, 8, 8, 3).mean(axis=(1, 3, 4))
    white_blocks = np.abs(white).reshape(8, 8, 8, 8, 3).mean(axis=(1, 3, 4))
    assert blocks.std() > 2 * white_blocks.std()
    assert np.abs(perlin).mean() < np.abs(white).mean()
    # one octave of gradient noise is smooth: neighbours differ little
    one = perlin_envelope(64, 64, 2, 2, octaves=1, persistence=0.5, seed=1)
    assert np.abs(np.diff(one, axis=1)).max() < 0.1 < one.max() - one.min()


@pytest.mark.parametrize("space", ["lab", "hsv", "rgb"])
def test_colour_match_pulls_a_tint_back(space: str) -> None:
    reference = smooth_image(seed=1)
    tinted = np.clip(reference.astype(int) + np.array([40, -20, 0]), 0, 255).astype(np.uint8)
    matched = match_colors(tinted, reference, space)

    def drift(image: np.ndarray) -> float:
        return float(np.abs(image.mean(axis=(0, 1)) - reference.mean(axis=(0, 1))).max())

    assert drift(matched) < drift(tinted) / 5
    assert np.abs(match_colors(reference, reference, space).astype(int) - reference).max() <= 1


def test_perspective_flip_turns_the_plane_about_the_centre() -> None:
    width, height = 40, 30
    np.testing.assert_allclose(flip_matrix(width, height, 0, 0, 0, 53), np.eye(3), atol=1e-9)
    # theta turns the picture in its own plane: 90 degrees about the centre
    turned = flip_matrix(width, height, 90, 0, 0, 53)
    centre = np.array([(width - 1) / 2, (height - 1) / 2, 1.0])
    np.testing.assert_allclose(turned @ centre, centre, atol=1e-6)
    corner = turned @ np.array([-0.5, -0.5, 1.0])
    np.testing.assert_allclose(corner[:2] / corner[2], centre[:2] + np.array([15, -20]), atol=1e-6)
    # gamma tilts it about the vertical axis: one side recedes (shorter), the other nears
    tilted = flip_matrix(width, height, 0, 0, 20, 53)
    ends = [
        tilted @ np.array([x, y, 1.0]) for x in (-0.5, width - 0.5) for y in (-0.5, height - 0.5)
    ]
    ys = [point[1] / point[2] for point in ends]
    left, right = ys[1] - ys[0], ys[3] - ys[2]
    assert abs(left - right) > 2 and max(left, right) > height > min(left, right)


def test_a_flip_follows_the_2d_move() -> None:
    image = smooth_image()
    flip = flip_matrix(48, 48, 10, 5, 5, 53)
    moved = warp_2d(image, zoom=1.1, angle=3, translation_x=2, translation_y=0, flip=flip)
    alone = warp_2d(image, zoom=1.1, angle=3, translation_x=2, translation_y=0)
    assert not np.array_equal(moved, alone)
    # without a move the flip alone applies
    just_flip = warp_2d(image, zoom=1, angle=0, translation_x=0, translation_y=0, flip=flip)
    expected = cv2.warpPerspective(image, flip, (48, 48), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    np.testing.assert_array_equal(just_flip, expected)


def test_depth_maps_are_cached_by_key_and_model(tmp_path: Path) -> None:
    depth = np.random.default_rng(0).uniform(1, 2, (10, 12)).astype(np.float32)
    cache = DepthCache(lambda key: tmp_path / f"{key}.png", "model A")
    first = cache.depth("frame1", lambda: depth)
    assert np.abs(first - depth).max() < 1e-4  # 16-bit levels
    again = cache.depth("frame1", lambda: pytest.fail("estimated again"))
    np.testing.assert_array_equal(again, first)  # exactly what an uninterrupted job used
    assert (cache.estimated, cache.read) == (1, 1)
    other = DepthCache(lambda key: tmp_path / f"{key}.png", "model B")
    assert other.depth("frame1", lambda: np.ones((10, 12), np.float32)).max() == 1.0
    assert other.estimated == 1  # another model's map is not reused
    gray = preview(tmp_path / "frame1.png")
    assert gray.shape == (10, 12, 3) and gray.max() == 255  # depth 1: near, white


def test_the_inputs_apply_deforums_order() -> None:
    previous = smooth_image(seed=3)
    reference = smooth_image(seed=4)
    settings = LoopbackSettings(color_coherence=ColorCoherence.rgb)
    inputs = LoopbackInputs(settings)
    inputs.output(reference)
    tools = InputTools(
        noise=0.03, perlin=PerlinShape(2, 0.5), contrast=0.9,
        anti_blur=AntiBlur(0.4, 5, 1.0, 0.0), flip=PerspectiveFlip(4, 0, 0, 53),
    )  # fmt: skip
    step = CameraStep(zoom=1.05, angle=1.0)
    got = inputs.next_input(previous, step, tools, seed=9)
    # by hand: move (2D, then flip), match colours, contrast, anti-blur, Perlin noise
    image = warp_2d(previous, zoom=1.05, angle=1.0, translation_x=0, translation_y=0,
                    flip=flip_matrix(48, 48, 4, 0, 0, 53))  # fmt: skip
    image = match_colors(image, reference, "rgb")
    image = unsharp_mask(scale_values(image, 0.9), 0.4, 5, 1.0, 0.0)
    envelope = perlin_envelope(48, 48, 8, 8, 2, 0.5, seed=9)
    np.testing.assert_array_equal(got, add_noise(image, 0.03, 9, envelope))


def test_a_3d_step_goes_through_the_depth_and_a_video_reference_wins() -> None:
    previous = smooth_image(seed=5)
    video_frame = smooth_image(seed=6)
    inputs = LoopbackInputs(LoopbackSettings(color_coherence=ColorCoherence.video))
    inputs.output(previous)
    near = np.ones((48, 48), np.float32)
    far = np.full((48, 48), 2.0, np.float32)
    step = CameraStep3D(translation_z=10.0)
    moved_near = inputs.next_input(previous, step, InputTools(), seed=1, depth=near)
    moved_far = inputs.next_input(previous, step, InputTools(), seed=1, depth=far)
    assert not np.array_equal(moved_near, moved_far)  # depth shapes the move
    matched = inputs.next_input(previous, step, InputTools(), 1, near, reference=video_frame)
    assert (
        np.abs(matched.mean((0, 1)) - video_frame.mean((0, 1))).max()
        < np.abs(moved_near.mean((0, 1)) - video_frame.mean((0, 1))).max()
    )
