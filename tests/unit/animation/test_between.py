"""Frames between two frames by flow both ways: motion lands where it should, occluded and
uncovered areas come from the frame that shows them (no ghosts), and cuts are held."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.animation.between import in_betweens
from pipeline.testing.synthetic import make_texture

SIZE, SQUARE, LEFT, MOTION = 96, 40, 10, 10
TOP = (SIZE - SQUARE) // 2


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured square over a textured background (both still), as uint8."""
    background = (make_texture(SIZE, 3) * 255).round().astype(np.uint8)
    square = (make_texture(SQUARE * 3, 9)[:SQUARE, :SQUARE] * 255).round().astype(np.uint8)
    return background, square


def frame(scene: tuple[np.ndarray, np.ndarray], left: int) -> np.ndarray:
    background, square = scene
    image = background.copy()
    image[TOP : TOP + SQUARE, left : left + SQUARE] = square
    return image


def region(left: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[TOP : TOP + SQUARE, left : left + SQUARE] = True
    return mask


def test_a_moving_square_lands_halfway_and_leaves_no_ghost(scene) -> None:
    first, second = frame(scene, LEFT), frame(scene, LEFT + MOTION)
    truth = frame(scene, LEFT + MOTION // 2)
    (middle,) = in_betweens(first, second, [0.5])
    # where the square is: the offset whose window matches its texture best, to a sub-pixel
    _, square = scene
    offsets = np.arange(LEFT, LEFT + MOTION + 1)
    cost = np.array([
        np.abs(middle[TOP : TOP + SQUARE, x : x + SQUARE].astype(float) - square).mean()
        for x in offsets
    ])  # fmt: skip
    best = int(np.argmin(cost))
    left, mid, right = cost[best - 1], cost[best], cost[best + 1]
    found = offsets[best] + 0.5 * (left - right) / (left - 2 * mid + right)
    assert abs(found - (LEFT + MOTION / 2)) < 1.0
    # where the square was and will be, but is not now: the background, not a faded square
    fade = (first.astype(float) + second) / 2
    now = region(LEFT + MOTION // 2)
    for gone in (region(LEFT) & ~now, region(LEFT + MOTION) & ~now):
        ours = np.abs(middle.astype(float) - truth)[gone].mean()
        faded = np.abs(fade - truth)[gone].mean()
        assert ours < 0.6 * faded
    assert np.abs(middle.astype(float) - truth).mean() < 3  # the whole frame, on 0..255


def test_a_cut_is_held_not_blended(scene) -> None:
    first = frame(scene, LEFT)
    other = (make_texture(SIZE, 11) * 255).round().astype(np.uint8)
    early, late = in_betweens(first, other, [0.25, 0.75])
    assert np.array_equal(early, first) and np.array_equal(late, other)
