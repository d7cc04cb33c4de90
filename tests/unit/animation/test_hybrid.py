"""Hybrid video's image operations: the fitted motions and the composite through a mask."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.animation.flow import flow_pair
from pipeline.animation.hybrid import HybridStep, composite, composite_mask, fitted_motion
from pipeline.config.schema import HybridEqualize, HybridMask, HybridMotion


def texture(shift: int) -> np.ndarray:
    coarse = np.random.default_rng(1).integers(0, 255, (24, 24, 3)).astype(np.uint8)
    wide = cv2.resize(coarse, (192, 192), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(np.roll(wide, (shift, 2 * shift), axis=(0, 1))[32:160, 32:160])


def test_an_affine_motion_fitted_to_a_pan_is_that_pan() -> None:
    matrix = fitted_motion(flow_pair(texture(0), texture(2)), HybridMotion.affine)
    assert matrix.shape == (2, 3)
    np.testing.assert_allclose(matrix[:, :2], np.eye(2), atol=0.02)
    np.testing.assert_allclose(matrix[:, 2], [4.0, 2.0], atol=0.3)
    perspective = fitted_motion(flow_pair(texture(0), texture(2)), HybridMotion.perspective)
    np.testing.assert_allclose(perspective[:2, 2] / perspective[2, 2], [4.0, 2.0], atol=0.4)


def test_a_composite_keeps_the_picture_where_the_mask_is_white() -> None:
    picture = np.full((8, 8, 3), 200, np.uint8)
    video = np.zeros((8, 8, 3), np.uint8)
    assert np.array_equal(composite(picture, video, None, 0.0), picture)
    assert np.all(composite(picture, video, None, 0.25) == 150)
    mask = np.zeros((8, 8), np.float32)
    mask[:, :4] = 255
    out = composite(picture, video, mask, 1.0)
    assert np.all(out[:, :4] == 200) and np.all(out[:, 4:] == 0)


def test_the_difference_mask_is_white_where_picture_and_video_differ() -> None:
    picture = np.zeros((4, 4, 3), np.uint8)
    video = picture.copy()
    video[:2] = 255
    mask = composite_mask(
        HybridMask.difference, picture, video, HybridStep(), None, False, HybridEqualize.none,
        False,
    )  # fmt: skip
    assert mask is not None
    assert np.all(mask[:2] == 255) and np.all(mask[2:] == 0)
    inverted = composite_mask(
        HybridMask.difference, picture, video, HybridStep(), None, True, HybridEqualize.none,
        False,
    )  # fmt: skip
    assert inverted is not None and np.all(inverted[:2] == 0)
