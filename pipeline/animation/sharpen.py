"""Deforum's contrast multiplier and anti-blur: what a loopback input gets before its noise.

Feeding outputs back into img2img softens them a little on every frame; Deforum counters
that with an unsharp mask on each loopback input ("anti-blur": the picture plus
``amount`` times its difference from a Gaussian blur of it, left alone where that
difference is below ``threshold``), after scaling the pixel values by its contrast
schedule. Two deliberate differences, both where Deforum's uint8 arithmetic wraps
around: values scaled above 255 are clipped (Deforum's ``astype(uint8)`` turns 256 into
0), and the threshold compares the true difference (Deforum's ``img - blurred`` of two
uint8 arrays wraps, so a pixel darker than its blur always counts as high contrast).
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.animation.motion import check_rgb


def scale_values(image: np.ndarray, factor: float) -> np.ndarray:
    """Every pixel value times ``factor`` (Deforum's contrast), rounded and clipped."""
    check_rgb(image, "image")
    if factor == 1:
        return image.copy()
    return np.clip(np.rint(image.astype(np.float32) * np.float32(factor)), 0, 255).astype(np.uint8)


def unsharp_mask(
    image: np.ndarray, amount: float, kernel: int, sigma: float, threshold: float
) -> np.ndarray:
    """``image`` sharpened: ``(1 + amount) * image - amount * blur(image)``, where the blur
    is Gaussian with an odd ``kernel`` size and ``sigma`` (0: from the size, as OpenCV
    does), and pixels whose difference from the blur is below ``threshold`` (0..255)
    keep their value. ``amount`` 0 or less sharpens nothing (Deforum's ``amount > 0``)."""
    check_rgb(image, "image")
    if amount <= 0:
        return image.copy()
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"the anti-blur kernel must be an odd size, got {kernel}")
    pixels = image.astype(np.float32)
    blurred = cv2.GaussianBlur(pixels, (kernel, kernel), sigma)
    sharpened = np.clip(np.rint(pixels + np.float32(amount) * (pixels - blurred)), 0, 255)
    result = sharpened.astype(np.uint8)
    if threshold > 0:
        flat = np.abs(pixels - blurred) < threshold
        result[flat] = image[flat]
    return result
