"""Loopback image functions: 2D camera warp, seeded noise and LAB colour matching."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.animation.color_match import match_colors_lab
from pipeline.animation.motion import BORDERS, add_noise, warp_2d
from pipeline.errors import RotoscopeError

SIZE = 33  # odd, so the centre (fraction 0.5) is exactly pixel 16
MID = SIZE // 2
STILL = {"zoom": 1.0, "angle": 0.0, "translation_x": 0.0, "translation_y": 0.0}


def random_image(height: int = SIZE, width: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def marked(x: int, y: int) -> np.ndarray:
    """A black picture with one white pixel at column x, row y."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[y, x] = 255
    return image


def brightest(image: np.ndarray) -> tuple[int, int]:
    row, col = np.unravel_index(np.argmax(image[..., 0]), image.shape[:2])
    return int(col), int(row)


def warp(image: np.ndarray, **params: float | str) -> np.ndarray:
    return warp_2d(image, **{**STILL, **params})  # type: ignore[arg-type]


@pytest.mark.parametrize("angle", [0.0, 360.0, -720.0])
def test_identity_warp_is_an_exact_copy(angle: float) -> None:
    image = random_image()
    out = warp(image, angle=angle, border="wrap")
    assert out is not image
    np.testing.assert_array_equal(out, image)


def test_zoom_2_doubles_distances_from_the_centre() -> None:
    # Linear ramps: bilinear sampling reproduces them exactly, so every output pixel
    # tells which source position it came from.
    coords = np.arange(SIZE) - MID
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[..., 0] = 128 + 6 * coords[None, :]  # red encodes x
    image[..., 1] = 128 + 6 * coords[:, None]  # green encodes y
    out = warp(image, zoom=2.0).astype(int)
    assert tuple(out[MID, MID, :2]) == (128, 128)  # the centre stays put
    # output pixel at distance d shows the source pixel at distance d/2, so a source
    # pixel at distance d lands at 2d
    inner = slice(MID - 8, MID + 9)
    expected_x = 128 + 3 * coords[None, inner]
    expected_y = 128 + 3 * coords[inner, None]
    assert np.abs(out[inner, inner, 0] - expected_x).max() <= 1
    assert np.abs(out[inner, inner, 1] - expected_y).max() <= 1
    source = marked(MID + 4, MID - 3)
    landed = {(MID + 8 + dx, MID - 6 + dy) for dx in (-1, 0) for dy in (-1, 0)}
    assert brightest(warp(source, zoom=2.0)) in landed


def test_zoom_about_an_off_centre_point() -> None:
    image = marked(8, 8)
    out = warp(image, zoom=2.0, center_x=8.5 / SIZE, center_y=8.5 / SIZE)
    assert brightest(out) == (8, 8)
    assert out[8, 8, 0] == 255


def test_angle_90_turns_counter_clockwise() -> None:
    # counter-clockwise on screen: the top-left corner goes to the bottom-left
    out = warp(marked(0, 0), angle=90.0)
    assert brightest(out) == (0, SIZE - 1)
    assert out[SIZE - 1, 0, 0] >= 250
    out = warp(marked(SIZE - 1, 0), angle=90.0)  # top-right -> top-left
    assert brightest(out) == (0, 0)


def test_translation_moves_right_and_up() -> None:
    out = warp(marked(10, 10), translation_x=3.0, translation_y=-2.0, border="wrap")
    expected = marked(13, 8)
    np.testing.assert_array_equal(out, expected)


def test_translation_is_applied_before_zoom_like_deforum() -> None:
    out = warp(marked(MID, MID), zoom=2.0, translation_x=2.0)
    assert brightest(out) in {(MID + 4, MID), (MID + 3, MID)}


@pytest.mark.parametrize("border", BORDERS)
def test_border_modes_fill_the_uncovered_columns(border: str) -> None:
    image = random_image(seed=3)
    out = warp(image, translation_x=5.0, border=border)
    np.testing.assert_array_equal(out[:, 5:], image[:, :-5])  # the moved picture
    uncovered = out[:, :5]
    if border == "replicate":
        expected = np.repeat(image[:, :1], 5, axis=1)
    elif border == "reflect":
        expected = image[:, 5:0:-1]  # mirrored about column 0, which is not repeated
    elif border == "wrap":
        expected = image[:, -5:]  # wrap shows the opposite edge
    else:
        expected = np.zeros_like(uncovered)  # zeros: black
    np.testing.assert_array_equal(uncovered, expected)


def test_warp_rejects_bad_parameters() -> None:
    image = random_image()
    with pytest.raises(RotoscopeError, match="border"):
        warp(image, translation_x=1.0, border="mirror")
    with pytest.raises(RotoscopeError, match="zoom"):
        warp(image, zoom=0.0)
    with pytest.raises(RotoscopeError, match="angle"):
        warp(image, angle=float("nan"))
    with pytest.raises(ValueError, match="shape"):
        warp(image[..., 0].copy())
    with pytest.raises(TypeError, match="uint8"):
        warp(image.astype(np.float32))


def test_noise_is_seeded_and_has_the_requested_strength() -> None:
    gray = np.full((256, 256, 3), 128, np.uint8)
    first = add_noise(gray, 0.05, seed=7)
    np.testing.assert_array_equal(first, add_noise(gray, 0.05, seed=7))
    assert not np.array_equal(first, add_noise(gray, 0.05, seed=8))
    delta = first.astype(float) - 128
    assert abs(delta.std() - 0.05 * 255) < 0.3
    assert abs(delta.mean()) < 0.2
    # each channel gets its own noise
    assert not np.array_equal(first[..., 0], first[..., 1])


def test_zero_noise_returns_the_input_and_negative_noise_is_refused() -> None:
    image = random_image()
    out = add_noise(image, 0.0, seed=1)
    assert out is not image
    np.testing.assert_array_equal(out, image)
    with pytest.raises(RotoscopeError, match="noise"):
        add_noise(image, -0.1, seed=1)


def scene(seed: int = 5) -> np.ndarray:
    """A smooth, colourful picture (blurred colour fields over a gradient) kept away from
    0 and 255, so a drift applied to it loses nothing to clipping."""
    rng = np.random.default_rng(seed)
    fields = cv2.resize(rng.uniform(40, 200, (6, 6, 3)).astype(np.float32), (96, 64))
    ramp = np.linspace(-30, 30, 96, dtype=np.float32)[None, :, None]
    return np.clip(fields + ramp, 0, 255).astype(np.uint8)


def lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)


def test_match_colors_lab_undoes_a_colour_drift() -> None:
    reference = scene()
    drifted = np.clip(reference * np.array([1.1, 0.92, 0.85]) + [8, 0, -10], 0, 255)
    drifted = drifted.astype(np.uint8)
    before = np.abs(lab(drifted).mean((0, 1)) - lab(reference).mean((0, 1)))
    assert before.max() > 5  # the drift is real
    matched = match_colors_lab(drifted, reference)
    assert matched.shape == reference.shape and matched.dtype == np.uint8
    got, want = lab(matched), lab(reference)
    assert np.abs(got.mean((0, 1)) - want.mean((0, 1))).max() < 1.0
    quantiles = [5, 25, 50, 75, 95]
    for channel in range(3):
        got_q = np.percentile(got[..., channel], quantiles)
        want_q = np.percentile(want[..., channel], quantiles)
        assert np.abs(got_q - want_q).max() < 2.0


def test_match_colors_lab_keeps_the_reference_itself() -> None:
    reference = scene(seed=9)
    out = match_colors_lab(reference, reference)
    assert np.abs(out.astype(int) - reference).max() <= 1


def test_match_colors_lab_accepts_a_reference_of_another_size() -> None:
    reference = scene()
    small = cv2.resize(reference, (48, 32), interpolation=cv2.INTER_AREA)
    out = match_colors_lab(small, reference)
    assert out.shape == small.shape
