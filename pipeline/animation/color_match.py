"""Colour coherence for loopback animation: match each frame's colours to a reference.

Feeding outputs back into img2img lets colours drift frame by frame (saturation creeps
up, a tint builds), the drift Deforum counters with "Match Frame 0 LAB" (or HSV, or
RGB). Matching the histogram of each LAB channel to the reference frame's pulls
lightness and the two colour axes back separately, so contrast and hue return to the
reference while the picture's content (which pixel is lighter than which) stays as it
is; HSV matches hue, saturation and value instead, RGB each primary.

The conversions run in float32 (L 0..100, a/b about -127..127; H 0..360, S and V 0..1),
not in OpenCV's 8-bit LAB and HSV, whose round trip alone moves saturated colours by up
to 24 levels of 255, a loss a loop would pay again on every frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.animation.motion import check_rgb


def match_colors_lab(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``image`` with each LAB channel's histogram matched to ``reference``'s.

    Both are RGB uint8; their sizes may differ. Matching an image to itself returns it
    unchanged up to float rounding (at most one level).
    """
    check_rgb(image, "image")
    check_rgb(reference, "reference")
    source_lab = _to_lab(image)
    reference_lab = _to_lab(reference)
    matched = np.stack(
        [_match_channel(source_lab[..., c], reference_lab[..., c]) for c in range(3)], axis=-1
    )
    rgb = cv2.cvtColor(matched.astype(np.float32), cv2.COLOR_LAB2RGB)
    # matched channels can combine into colours outside sRGB: clip them to the gamut
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def match_colors(image: np.ndarray, reference: np.ndarray, space: str) -> np.ndarray:
    """``image`` with each channel's histogram matched to ``reference``'s, in ``space``:
    ``lab``, ``hsv`` or ``rgb``."""
    if space == "lab":
        return match_colors_lab(image, reference)
    check_rgb(image, "image")
    check_rgb(reference, "reference")
    if space == "rgb":
        matched = np.stack(
            [_match_channel(image[..., c], reference[..., c]) for c in range(3)], axis=-1
        )
        return np.clip(np.rint(matched), 0, 255).astype(np.uint8)
    if space != "hsv":
        raise ValueError(f"unknown colour space {space!r}")
    source_hsv, reference_hsv = _to_hsv(image), _to_hsv(reference)
    matched = np.stack(
        [_match_channel(source_hsv[..., c], reference_hsv[..., c]) for c in range(3)], axis=-1
    )
    rgb = cv2.cvtColor(matched.astype(np.float32), cv2.COLOR_HSV2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _to_hsv(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / np.float32(255.0), cv2.COLOR_RGB2HSV)


def _to_lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / np.float32(255.0), cv2.COLOR_RGB2LAB)


def _match_channel(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``source``'s values replaced by the reference values at the same CDF position.

    Each distinct source value goes to the reference value whose cumulative share of
    pixels equals its own, interpolating between the reference's distinct values. Only
    values that occur are used, so the CDF is strictly increasing and the mapping is
    well defined; equal values stay equal and the order of values is kept.
    """
    _, source_index, source_counts = np.unique(
        source.ravel(), return_inverse=True, return_counts=True
    )
    reference_values, reference_counts = np.unique(reference.ravel(), return_counts=True)
    source_cdf = np.cumsum(source_counts) / source.size
    reference_cdf = np.cumsum(reference_counts) / reference.size
    mapped = np.interp(source_cdf, reference_cdf, reference_values)
    return mapped[source_index].reshape(source.shape)
